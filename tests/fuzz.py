"""Seeded mutants of real domain XML, and a worker that feeds them to planner.

Two kinds of mutant, both from the repository's samples and corpus:

- **structure-aware**: the document is parsed and one to three edits are made where
  planner looks: numbers in addresses, indexes and metadata (huge, negative, octal,
  malformed), disk target names, controller models, machine types, duplicated or
  deleted devices, a planner layout record with hostile fields;
- **byte-level**: flipped, inserted or deleted bytes, truncation, a repeated chunk.

The worker runs each mutant through ``relayout`` (twice: planner must accept and keep
its own output) and ``show``, under a per-input time limit and an address-space limit,
and prints one JSON line per failure. It is a separate process so that a runaway
allocation hits the limit there, not in pytest.
"""

from __future__ import annotations

import contextlib
import json
import random
import resource
import signal
import sys
import time
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
# The worker runs as a script, with tests/ first on sys.path: put the tree it belongs
# to before any installed planner, so it fuzzes this checkout's code.
if str(ROOT) not in sys.path[:1]:
    sys.path.insert(0, str(ROOT))
SECONDS = 2.0  # per input, for relayout + relayout of the output + show
MEGABYTES = 200  # address space an input may add to the worker

NUMBERS = [
    "0", "1", "2", "7", "8", "0x1f", "0x20", "31", "32", "0xff", "255", "256", "0x100",
    "-1", "010", "0x0x5", "0o5", " 5 ", "5 ", "+5", "1_0", "99999999999", "100000000",
    "4294967296", "", "abc", "0xffffffff", "1e3", "\u0663", "0X1F", "00000000000000000001",
]  # fmt: skip
WORDS = ["", "sdzzzzzzz", "vd" + "z" * 40, "hda", "vdaaa", "sd", "xvdq", "fda", "vd", "x" * 300]
PCI_MODELS = [
    "pci-root", "pcie-root", "pci-bridge", "dmi-to-pci-bridge", "pcie-root-port",
    "pcie-switch-upstream-port", "pcie-switch-downstream-port", "pci-expander-bus",
    "pcie-expander-bus", "pcie-to-pci-bridge", "", "bogus",
]  # fmt: skip
MACHINES = ["pc", "q35", "pc-i440fx-7.2", "pc-q35-7.2", "virt", "isapc", "", "microvm", "pc-1.0"]
ADDRESS_ATTRS = ["domain", "bus", "slot", "function", "multifunction", "type", "controller"]
NS = "urn:libvirt-nic-planner:layout:1"
LAYOUT_FIELDS = {
    "policy": ["nic-start", "nic-slots", "spare-ports", "spare-other-ports", "acpi-index"],
    "nics": ["bus", "first-slot", "slots", "ports"],
    "others": ["bus", "first-slot", "ports", "spare-ports"],
}


def seeds() -> list[bytes]:
    """The documents mutants are made from: samples and the corpus, in a stable order."""
    files = sorted((ROOT / "samples").glob("*.xml"))
    files += sorted((ROOT / "tests" / "corpus").glob("**/*.xml"))
    return [p.read_bytes() for p in files]


def _number(rng: random.Random) -> str:
    return rng.choice(NUMBERS)


def _devices(root) -> list:
    devs = root.find("devices")
    return [] if devs is None else [el for el in devs if isinstance(el.tag, str)]


def _set_random_number(rng, root) -> None:
    els = [el for el in root.iter() if isinstance(el.tag, str) and el.attrib]
    if els:
        el = rng.choice(els)
        el.set(rng.choice(list(el.attrib)), _number(rng))


def _address(rng, root) -> None:
    devs = _devices(root)
    if devs:
        el = rng.choice(devs)
        for old in el.findall("address"):
            el.remove(old)
        attrs = {"type": rng.choice(["pci", "pci", "pci", "drive", "isa", ""])}
        for name in rng.sample(ADDRESS_ATTRS[:5], rng.randint(1, 5)):
            attrs[name] = _number(rng) if name != "multifunction" else rng.choice(["on", "off"])
        etree.SubElement(el, "address", attrs)


def _disk_name(rng, root) -> None:
    targets = root.findall("devices/disk/target")
    if targets:
        t = rng.choice(targets)
        t.set("dev", rng.choice(WORDS))
        if rng.random() < 0.5:
            t.set("bus", rng.choice(["scsi", "sata", "virtio", "ide", "usb", ""]))


def _drive_address(rng, root) -> None:
    disks = root.findall("devices/disk") + root.findall("devices/hostdev")
    if disks:
        el = rng.choice(disks)
        for old in el.findall("address"):
            el.remove(old)
        etree.SubElement(el, "address", {"type": "drive", "controller": _number(rng)})


def _controller(rng, root) -> None:
    devs = root.find("devices")
    if devs is None:
        return
    attrs = {"type": rng.choice(["pci", "pci", "usb", "scsi", "virtio-serial", "sata"])}
    if rng.random() < 0.8:
        attrs["index"] = _number(rng)
    if attrs["type"] == "pci":
        attrs["model"] = rng.choice(PCI_MODELS)
    elif attrs["type"] == "usb":
        attrs["model"] = rng.choice(["ich9-ehci1", "ich9-uhci1", "qemu-xhci", "piix3-uhci"])
    etree.SubElement(devs, "controller", attrs)


def _machine(rng, root) -> None:
    typ = root.find("os/type")
    if typ is not None:
        typ.set("machine", rng.choice(MACHINES))
        if rng.random() < 0.2:
            typ.set("arch", rng.choice(["aarch64", "i686", "", "x86_64"]))


def _duplicate(rng, root) -> None:
    devs = _devices(root)
    if devs:
        el = rng.choice(devs)
        for _ in range(rng.choice([1, 1, 2, 40])):
            el.addnext(etree.fromstring(etree.tostring(el)))


def _delete(rng, root) -> None:
    els = [el for el in root.iter() if isinstance(el.tag, str) and el is not root]
    if els:
        el = rng.choice(els)
        el.getparent().remove(el)


def _layout_record(rng, root) -> None:
    meta = root.find("metadata")
    if meta is None:
        meta = etree.Element("metadata")
        root.insert(min(2, len(root)), meta)
    for old in meta.findall(f"{{{NS}}}layout"):
        meta.remove(old)
    lay = etree.SubElement(
        meta,
        f"{{{NS}}}layout",
        {"version": "0.1.0", "machine": rng.choice(["pc", "q35", "virt", ""])},
        nsmap={"planner": NS},
    )
    for tag, fields in LAYOUT_FIELDS.items():
        if rng.random() < 0.9:
            el = etree.SubElement(lay, f"{{{NS}}}{tag}")
            for name in fields:
                if rng.random() < 0.7:
                    many = " ".join(_number(rng) for _ in range(rng.randint(0, 4)))
                    el.set(name, many if name == "ports" else _number(rng))


STRUCTURE_EDITS = [
    _set_random_number,
    _address,
    _disk_name,
    _drive_address,
    _controller,
    _machine,
    _duplicate,
    _delete,
    _layout_record,
]


def structure_mutant(rng: random.Random, seed: bytes) -> bytes:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(seed, parser)
    for _ in range(rng.randint(1, 3)):
        rng.choice(STRUCTURE_EDITS)(rng, root)
    return etree.tostring(root)


def byte_mutant(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(5)
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(i, rng.choice(b"<>&'\"/=0x9\x00\xff"))
        elif op == 2:
            del data[i : i + rng.randint(1, 20)]
        elif op == 3:
            del data[i:]
        else:
            j = min(len(data), i + rng.randint(1, 200))
            data[i:i] = data[i:j] * rng.randint(1, 5)
    return bytes(data)


def mutants(seed: int, count: int):
    """(number, bytes) of ``count`` mutants; the same seed gives the same mutants."""
    rng = random.Random(seed)
    docs = seeds()
    for n in range(count):
        doc = docs[n % len(docs)]
        make = structure_mutant if rng.random() < 0.75 else byte_mutant
        yield n, make(rng, doc)


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout


def _check(data: bytes) -> str | None:
    """None if planner handled the input within the rules, else what went wrong."""
    from planner import relayout
    from planner.errors import PlannerError
    from planner.report import show

    with contextlib.suppress(PlannerError):
        show(data)
    try:
        first = relayout(data)
    except PlannerError:
        return None
    try:
        second = relayout(first.xml)
    except PlannerError as exc:
        return f"rejects its own output: {exc}"
    if second.changed:
        return "not idempotent: a relayout of the output changes it"
    return None


def _vm_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * resource.getpagesize()


def work(seed: int, count: int) -> int:
    """Run the mutants; print one JSON line per failure, and a summary line last."""
    import planner.relayout  # noqa: F401 - imported before the limit is set
    import planner.report  # noqa: F401

    limit = _vm_bytes() + MEGABYTES * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    failures = 0
    started = time.monotonic()
    for n, data in mutants(seed, count):
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, SECONDS)
        try:
            problem = _check(data)
        except _Timeout:
            problem = f"took more than {SECONDS} s"
        except MemoryError:
            problem = f"needed more than {MEGABYTES} MB"
        except Exception as exc:  # noqa: BLE001 - the point: anything but planner's own errors
            problem = f"{type(exc).__name__}: {exc}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if problem:
            failures += 1
            record = {"n": n, "problem": problem[:300], "seconds": time.monotonic() - t0}
            record["input"] = data.decode("utf-8", "replace")[:20000]
            print(json.dumps(record), flush=True)
    summary = {"summary": True, "count": count, "failures": failures}
    summary["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(work(int(sys.argv[1]), int(sys.argv[2])))
