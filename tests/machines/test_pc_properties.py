"""Property tests: relayout over generated pc domains keeps every layout invariant.

The generator (``pc_domains``, in tests/strategies.py, where the libvirt oracle's
property draws from it too) writes domains the way orchestrators and libvirt do: NICs of every
type and model, virtio disks (in any target order), SCSI/SATA/IDE disks,
controllers (virtio-serial, SCSI, USB with ich9 companions, IDE, pci-root,
pci-bridges with devices behind them), memballoon, watchdog, rng, video, sound,
PCI hostdevs, pci-serial with its mirrored console, virtio input, 9p filesystems,
vsock, shmem, channels. Some devices carry addresses, some do not; numbers are
hex or decimal, attributes single- or double-quoted; comments and namespaced
elements are sprinkled in. Every generated domain is one libvirt 9.0 accepts
(see the libvirt-backed property at the end, which defines them).
"""

from __future__ import annotations

import re

import pytest
from domains import address, defined, device_keys, devices_of, libvirt_order_differences, tree
from hypothesis import HealthCheck, assume, given, settings
from lxml import etree
from strategies import Case, pc_domains

from planner import devices, relayout
from planner.xmldoc import Document

NS = "{urn:libvirt-nic-planner:layout:1}"


# --- reading the output independently of planner -------------------------------------------


def _primary_video(els):
    videos = [el for el in els if el.tag == "video"]
    primary = [v for v in videos if v.find("model[@primary='yes']") is not None]
    return (primary or videos or [None])[0]


def _fixed_address(el, primary_video) -> tuple[int, int, int] | None:
    if el.tag == "controller" and el.get("type") == "ide" and el.get("index", "0") == "0":
        return (0, 1, 1)
    if (
        el.tag == "controller"
        and el.get("type") == "usb"
        and el.get("index", "0") == "0"
        and el.get("model", "piix3-uhci") == "piix3-uhci"
    ):
        return (0, 1, 2)
    if el is primary_video:
        return (0, 2, 0)
    return None


def _disk_index(name: str) -> int:
    index = -1
    for ch in name[2:]:
        index = (index + 1) * 26 + ord(ch) - ord("a")
    return index


def _expected_additions(root) -> list[tuple]:
    """The devices libvirt would add at define time, which relayout must make explicit."""
    els = devices_of(root)
    have = {(c.get("type"), int(c.get("index", "0"), 0)) for c in els if c.tag == "controller"}
    wanted: list[tuple[str, int]] = []

    def drive_controller(el, per):
        a = el.find("address")
        if a is not None and a.get("type") == "drive":
            return int(a.get("controller", "0"))
        return max(_disk_index(el.find("target").get("dev")), 0) // per

    for bus, per in (("scsi", 7), ("sata", 6)):
        used = [
            drive_controller(el, per)
            for el in els
            if el.tag == "disk" and el.find("target").get("bus") == bus
        ]
        wanted += [(bus, i) for i in range(max(used, default=-1) + 1)]
    for el in els:
        if el.tag in ("channel", "console") and el.find("target").get("type") == "virtio":
            a = el.find("address")
            wanted.append(
                (
                    "virtio-serial",
                    int(a.get("controller", "0"))
                    if a is not None and a.get("type") == "virtio-serial"
                    else 0,
                )
            )
    added = []
    for ctype, index in wanted:
        if (ctype, index) not in have:
            have.add((ctype, index))
            added.append(("controller", ctype, index))
    if not any(el.tag == "memballoon" for el in els):
        added.append(("memballoon", "virtio", None))
    return added


def _canon(el) -> tuple:
    """An element as a comparable value: whitespace-only text and tails are ignored."""
    if not isinstance(el.tag, str):
        return ("#" + type(el).__name__, (el.text or "").strip())
    return (
        el.tag,
        tuple(sorted(el.attrib.items())),
        (el.text or "").strip(),
        tuple(_canon(c) for c in el),
    )


def _strip_pci_address(el) -> None:
    for a in el.findall("address"):
        if a.get("type") == "pci":
            el.remove(a)


def _match_devices(before, after) -> tuple[list[tuple], list]:
    """Pair each input device with its output element; the rest of the output are additions.

    Compares with every device's own PCI <address> stripped: nothing else may differ.
    """
    ins = [el for el in before.find("devices")] if before.find("devices") is not None else []
    outs = [el for el in after.find("devices")]
    ins_c, outs_c = [], []
    for el in ins:
        c = etree.fromstring(etree.tostring(el)) if isinstance(el.tag, str) else el
        if isinstance(el.tag, str):
            _strip_pci_address(c)
        ins_c.append(_canon(c))
    for el in outs:
        c = etree.fromstring(etree.tostring(el)) if isinstance(el.tag, str) else el
        if isinstance(el.tag, str):
            _strip_pci_address(c)
        outs_c.append(_canon(c))
    pairs, added, i = [], [], 0
    for el, c in zip(outs, outs_c):
        if i < len(ins) and c == ins_c[i]:
            pairs.append((ins[i], el))
            i += 1
        else:
            added.append(el)
    assert i == len(ins), (
        f"input device {ins_c[i] if i < len(ins) else None} changed or went missing"
    )
    return pairs, added


def check_invariants(case: Case, xml: str) -> None:
    before, after = tree(case.xml), tree(xml)
    nic_start = case.policy.get("nic_start", 3)
    pairs, added = _match_devices(before, after)
    out_els = devices_of(after)
    primary = _primary_video(out_els)

    # nothing outside <devices> changes but <metadata>, and only by the planner element
    def rest(root):
        out = []
        for child in root:
            if child.tag in ("devices", "metadata"):
                continue
            out.append(_canon(child))
        return out

    assert rest(after) == rest(before)
    assert after.attrib == before.attrib
    meta_in, meta_out = before.find("metadata"), after.find("metadata")
    kept = [_canon(c) for c in meta_out if c.tag != f"{NS}layout"]
    assert kept == ([_canon(c) for c in meta_in] if meta_in is not None else [])

    # the additions are exactly the devices libvirt would have added at define
    got = []
    for el in added:
        assert isinstance(el.tag, str), "planner added a comment"
        key = (
            el.tag,
            el.get("type") if el.tag == "controller" else el.get("model"),
            int(el.get("index"), 0) if el.tag == "controller" else None,
        )
        got.append(key)
    assert sorted(got, key=str) == sorted(_expected_additions(before), key=str)

    # every PCI-capable device is addressed, and no two functions collide
    seen: dict[tuple[int, int, int], str] = {}
    slots: dict[tuple[int, int], list] = {}
    for el in out_els:
        a = address(el)
        if devices.is_pci(el):
            assert a is not None, f"<{el.tag}> has no PCI address"
        if a is None or el.tag == "console":
            continue
        assert a not in seen, f"<{el.tag}> and <{seen[a]}> share {a}"
        seen[a] = el.tag
        slots.setdefault(a[:2], []).append(el)
        if a[0] == 0:
            assert a[1] != 0, "nothing goes to the host bridge's slot"
            if a[1] in (1, 2):
                assert _fixed_address(el, primary) == a, f"<{el.tag}> in the chipset's slot {a}"
    for (bus, slot), els in slots.items():
        if (bus, slot) == (0, 1):
            continue  # the PIIX3: its function 0, the ISA bridge, is built in
        functions = {address(el)[2]: el for el in els}
        assert 0 in functions, f"slot {bus}:{slot} has no function 0"
        if len(els) > 1:
            assert functions[0].find("address").get("multifunction") == "on"

    # NICs: contiguous from nic-start, in document order, one whole slot each
    nics = [el for el in out_els if el.tag == "interface" and devices.is_pci(el)]
    assert [address(el) for el in nics] == [(0, nic_start + i, 0) for i in range(len(nics))]
    assert not any(el.find("address").get("multifunction") == "on" for el in nics)

    # the recorded NIC range, and nothing else inside it
    layout = after.find(f"metadata/{NS}layout")
    first = int(layout.find(f"{NS}nics").get("first-slot"), 16)
    capacity = int(layout.find(f"{NS}nics").get("slots"))
    others = int(layout.find(f"{NS}others").get("first-slot"), 16)
    assert first == nic_start
    assert capacity == max(case.policy.get("nic_slots", 8), len(nics) + 1)
    assert others == first + capacity
    for el in out_els:
        a = address(el)
        if el.tag != "interface" and a and a[0] == 0 and _fixed_address(el, primary) is None:
            assert a[1] >= others, f"<{el.tag}> at {a} is below the non-NIC block"

    # fixed devices sit where the chipset wants them
    for el in out_els:
        fixed = _fixed_address(el, primary)
        if fixed is not None and devices.is_pci(el):
            assert address(el) == fixed

    # devices behind a bridge stay; addressed devices on bus 0 keep their relative order;
    # unaddressed virtio disks keep their target order (vda before vdb)
    primary_in = _primary_video(devices_of(before))
    moved = [
        (address(i), address(o))
        for i, o in pairs
        if i.tag != "interface"
        and address(i)
        and address(i)[0] == 0
        and _fixed_address(i, primary_in) is None
    ]
    assert sorted(moved) == sorted(moved, key=lambda m: m[1])
    for i, o in pairs:
        if i.tag not in ("interface",) and address(i) and address(i)[0] != 0:
            assert address(o) == address(i)
    fresh_disks = [
        o for i, o in pairs if i.tag == "disk" and devices.is_pci(i) and address(i) is None
    ]
    by_name = sorted(fresh_disks, key=lambda el: _disk_index(el.find("target").get("dev")))
    assert sorted(fresh_disks, key=address) == by_name

    # hostdev source addresses are byte-identical
    def sources(text: str) -> list[str]:
        doc = Document.parse(text)
        out = []
        for el in devices_of(doc.root):
            src = el.find("source/address") if el.tag in ("hostdev", "interface") else None
            if src is not None:
                s = doc.span(src)
                out.append(text[s.start : s.start_end])
        return out

    assert sources(xml) == sources(case.xml)

    # byte-faithful: every input line survives, in order, except that a PCI address line
    # becomes another one at the same indentation and an empty device tag may open up to
    # take its address (what is added in between, the tree comparison above has checked)
    added_lines = _lines_survive(case.xml.splitlines(), xml.splitlines())
    # and what is added is written in the quote style most of the document uses
    majority = "'" if case.xml.count("='") > case.xml.count('="') else '"'
    other = '="' if majority == "'" else "='"
    assert not [line for line in added_lines if other in line], (
        f"added markup not in {majority} quotes"
    )


_PCI_LINE = re.compile(r"(\s*)<address\s[^>]*type=['\"]pci['\"][^>]*/>")


def _lines_survive(old: list[str], new: list[str]) -> list[str]:
    """Check every old line survives in new, in order; return the new lines in between."""

    def same(was: str, now: str) -> bool:
        if was == now or now == re.sub(r"\s*/>$", ">", was):
            return True
        a, b = _PCI_LINE.fullmatch(was), _PCI_LINE.fullmatch(now)
        return bool(a and b and a.group(1) == b.group(1))

    j, added = 0, []
    for line in old:  # a greedy subsequence match: every old line in order
        while j < len(new) and not same(line, new[j]):
            added.append(new[j])
            j += 1
        assert j < len(new), f"input line lost or changed: {line!r}"
        j += 1
    return added + new[j:]


# --- the properties ----------------------------------------------------------------------

# The number of examples comes from the profile (tests/conftest.py): 500 in CI, 50 locally.
PROPERTY_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(pc_domains())
def test_relayout_keeps_every_layout_invariant(case):
    result = relayout(case.xml, **case.policy)
    # a rare domain fills bus 0 and spills into a new pci-bridge: the invariants below are
    # those of a bus 0 with room (overflow: see the idempotence property and the corpus)
    assume(not result.plan.new_controllers)
    assert result.plan.warnings == ()
    check_invariants(case, result.xml)


@PROPERTY_SETTINGS
@given(pc_domains())
def test_relayout_is_idempotent_byte_for_byte(case):
    once = relayout(case.xml, **case.policy).xml
    twice = relayout(once)
    assert twice.xml == once
    assert not twice.changed


@pytest.mark.libvirt
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=pc_domains())
def test_generated_domains_and_their_relayout_define_in_libvirt_as_planned(conn, case):
    result = relayout(case.xml, **case.policy)
    theirs, ours = libvirt_order_differences(conn, case.xml, result.xml)  # defines the input
    assert ours == theirs
    with defined(conn, result.xml) as (_, dumped):
        kept = device_keys(dumped)
        nic_range = result.plan.layout.nic_slots
        for el in devices_of(dumped):
            a = address(el)
            if el.tag != "interface" and a and a[0] == 0:
                assert a[1] not in nic_range, f"libvirt put <{el.tag}> into the NIC range"
    planned = device_keys(result.xml)
    assert {key: kept.get(key) for key in planned} == planned
