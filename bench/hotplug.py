"""Row 4, hot-plug: `planner hotplug` of a NIC into a running TCG domain.

Against `virsh attach-device --live --config` of the same XML at the same address, and a
one-line python libvirt script making the same call; in process, planner.hotplug() against
a bare attachDeviceFlags(), and the overhead of a dry run. Needs libvirtd with the QEMU
driver (`bash tests/host-setup.sh`); skipped without it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from pathlib import Path

from lxml import etree

import planner
from planner import relayout

from .harness import Line, Row, fmt_ratio, interleaved, med, ms, pair_ratio, run_child, timed
from .install import Venv

HP_DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <interface type='user'>
      <mac address='52:54:00:be:{tag}:01'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:be:{tag}:02'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
  </devices>
</domain>
"""
PY_ATTACH = (
    "import sys, libvirt; d = libvirt.open(sys.argv[1]).lookupByName(sys.argv[2]); "
    "d.attachDeviceFlags(open(sys.argv[3]).read(), libvirt.VIR_DOMAIN_AFFECT_LIVE | "
    "libvirt.VIR_DOMAIN_AFFECT_CONFIG)"
)
HP_NIC = (
    "<interface type='user'><mac address='52:54:00:be:{tag}:03'/>"
    "<model type='virtio'/></interface>\n"
)


def _qemu_ticks(name: str) -> int | None:
    try:
        pid = Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def _settle(names: list[str], timeout: float = 8.0) -> None:
    """Wait until the guests' firmware has stopped using the CPU (no OS: it then idles)."""
    start = time.monotonic()
    last = [_qemu_ticks(n) for n in names]
    if None in last:
        time.sleep(2.0)
        return
    quiet = 0
    while time.monotonic() - start < timeout and quiet < 2:
        time.sleep(0.25)
        now = [_qemu_ticks(n) for n in names]
        if None in now:
            return
        quiet = quiet + 1 if max(b - a for a, b in zip(last, now)) <= 2 else 0
        last = now


def domain_xmls(dom) -> dict[str, str]:
    """The live and the persistent XML, read as planner's hot-plug reads them."""
    import libvirt

    out = {}
    if dom.isActive():
        out["live"] = dom.XMLDesc(0)
    if dom.isPersistent():
        out["config"] = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    return out


def _hotplug_ops(doms, files, uri: str, venv: Venv, tmp: Path, virsh: str | None, cpu: dict):
    """The timed operations of one round, each on its own fresh domain.

    Whole-process variants append the child's CPU time to cpu[variant].
    """
    import libvirt

    hotplug = planner.hotplug
    env = dict(venv.env, LIBVIRT_DEFAULT_URI=uri)
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    planner_cli = [str(venv.script), "hotplug", "-c", uri]
    name = {v: d.name() for v, d in doms.items()}
    spare_nic = HP_NIC.format(tag="ff")
    return {
        "cli": lambda: cpu["cli"].append(
            run_child([*planner_cli, name["cli"], str(files["cli"][0])], env, tmp)
        ),
        "cli-dry-run": lambda: run_child(
            [*planner_cli, "--dry-run", name["cli"], str(files["cli"][0])], env, tmp
        ),
        "virsh": lambda: cpu["virsh"].append(
            run_child(
                [
                    virsh or "virsh",
                    "-c",
                    uri,
                    "attach-device",
                    name.get("virsh", "-"),
                    str(files.get("virsh", files["cli"])[1]),
                    "--live",
                    "--config",
                ],
                env,
                tmp,
            )
        ),
        "pyscript": lambda: cpu["pyscript"].append(
            run_child(
                [
                    str(venv.python),
                    "-c",
                    PY_ATTACH,
                    uri,
                    name["pyscript"],
                    str(files["pyscript"][1]),
                ],
                env,
                tmp,
            )
        ),
        "inproc": lambda: hotplug(doms["inproc"], files["inproc"][0].read_text()),
        "libvirt": lambda: doms["libvirt"].attachDeviceFlags(
            files["libvirt"][1].read_text(), flags
        ),
        "inproc-dry-run": lambda: hotplug(doms["inproc"], spare_nic, dry_run=True),
        "reads": lambda: domain_xmls(doms["inproc"]),
    }


def run(quick: bool, tmp: Path, uri: str, venv: Venv) -> Row:
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.open(uri)
    except Exception as exc:  # noqa: BLE001 - ImportError or libvirtError: no daemon
        return skipped(f"libvirt unavailable at {uri} ({' '.join(str(exc).split())})")
    hotplug = planner.hotplug
    virsh = shutil.which("virsh")
    lines: list[Line] = []
    rounds = 1 if quick else 7
    run_id = uuid.uuid4().hex[:6]
    variants = ["cli", "virsh", "pyscript", "inproc", "libvirt"]
    if not virsh:
        variants.remove("virsh")
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    dry, reads = [], []
    checks: list[str] = []
    made: list = []

    def cleanup() -> None:
        for dom in made:
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        made.clear()

    try:
        for r in range(rounds):
            doms, files = {}, {}
            for i, v in enumerate(variants):
                name = f"planner-bench-{run_id}-{r}-{v}"
                tag = f"{(r * 8 + i) % 256:02x}"
                dom = conn.defineXML(relayout(HP_DOMAIN.format(name=name, tag=tag)).xml)
                made.append(dom)
                dom.create()
                doms[v] = dom
                nic = HP_NIC.format(tag=tag)
                planned = hotplug(dom, nic, dry_run=True)  # untimed: the address planner picks
                files[v] = (tmp / f"{name}.xml", tmp / f"{name}-addr.xml", planned.address)
                files[v][0].write_text(nic)
                files[v][1].write_text(planned.xml)
            _settle([d.name() for d in doms.values()])
            ops = _hotplug_ops(doms, files, uri, venv, tmp, virsh, cpu)
            if r == 0:  # warm-up of the CLI path: bytecode, libvirt-python import
                ops["cli-dry-run"]()
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                times[v].append(timed(ops[v]))
            for v, dom in doms.items():  # each NIC landed where planner said, live and config
                want = files[v][2]
                for xml in domain_xmls(dom).values():
                    addrs = etree.fromstring(xml.encode()).iterfind("devices/interface/address")
                    if not any(
                        int(a.get("slot"), 16) == want.slot and int(a.get("bus"), 16) == want.bus
                        for a in addrs
                    ):
                        checks.append(f"round {r} {v}: no NIC at {want}")
            # In-process overhead: XMLDesc reads + planning, nothing attached (dry run).
            for _ in range(3 if quick else 10):
                got = interleaved({"dry": ops["inproc-dry-run"], "reads": ops["reads"]}, 2, False)
                dry += got["dry"]
                reads += got["reads"]
            cleanup()
    finally:
        cleanup()
        conn.close()
    out: dict = {
        "rounds": rounds,
        **{f"{v}_s": x for v, x in times.items()},
        **{f"cpu_{v}_s": x for v, x in cpu.items() if x},
        "dry_run_s": dry,
        "xmldesc_reads_s": reads,
        "address_check_failures": checks,
    }
    if virsh:
        r = pair_ratio(times["cli"], times["virsh"])
        out["cli_vs_virsh"] = r
        lines.append(
            Line(
                4,
                f"hot-plug, whole process: planner hotplug vs virsh attach-device --live --config "
                f"({rounds} fresh domains each)",
                ms(med(times["cli"])),
                ms(med(times["virsh"])),
                fmt_ratio(r),
                "≤ 1.5×",
                r["ratio"] <= 1.5,
            )
        )
    r = pair_ratio(times["cli"], times["pyscript"])
    out["cli_vs_pyscript"] = r
    if virsh:
        out["pyscript_vs_virsh"] = pair_ratio(times["pyscript"], times["virsh"])
    lines.append(
        Line(
            4,
            "hot-plug, whole process: planner hotplug vs a 1-line python3 libvirt script making "
            "the same attachDeviceFlags call",
            ms(med(times["cli"])),
            ms(med(times["pyscript"])),
            fmt_ratio(r),
            "",
            None,
        )
    )
    r = pair_ratio(times["inproc"], times["libvirt"])
    out["inproc_vs_attach"] = r
    lines.append(
        Line(
            4,
            "hot-plug, in process: planner.hotplug() vs dom.attachDeviceFlags() "
            "at the same address",
            ms(med(times["inproc"])),
            ms(med(times["libvirt"])),
            fmt_ratio(r),
            "",
            None,
        )
    )
    td, tr = med(dry), med(reads)
    lines.append(
        Line(
            4,
            "hot-plug overhead in process: dry run (lock, 2× XMLDesc, parse, plan) vs nothing "
            "/ of which XMLDesc",
            f"{ms(td)} / {ms(tr)}",
            "0",
            f"+{ms(td)}",
            "< 20 ms",
            td < 0.020,
        )
    )
    note = (
        "Row 4: `planner hotplug` = the console script of row 2's venv (with .pyc); the script "
        "runs with that venv's python. TCG domains (type='qemu', 128 MiB, ACPI, 2 user-mode "
        "virtio NICs, no OS), "
        f"relayouted, defined and started fresh for every attach, {rounds} round(s), the order of "
        "the variants rotating each round; the NIC is `<interface type='user'>` without an address "
        "for planner and with the address planner picks (from a dry run) for virsh, the script and "
        "attachDeviceFlags; after each round every "
        "NIC is checked at that address in the live and the persistent XML"
        + (f" (failures: {'; '.join(checks)})" if checks else " (all found)")
        + (
            f". The one-line python3 script alone is {fmt_ratio(out['pyscript_vs_virsh'])} virsh"
            if virsh
            else ""
        )
        + ". Child CPU time (user+sys), medians: "
        + ", ".join(f"{v} {ms(med(x))}" for v, x in cpu.items() if x)
        + f". The dry run's {ms(td)} split: libvirt's two XMLDesc calls and isActive/isPersistent "
        f"{ms(tr)}, planner {ms(max(td - tr, 0))}."
        + ("" if virsh else " virsh is not installed: the whole-process comparison is skipped.")
    )
    return Row("hotplug", tuple(lines), (note,), out)


def skipped(reason: str) -> Row:
    line = Line(4, "hot-plug: skipped", "-", "-", "-", "≤ 1.5×", None)
    return Row("hotplug", (line,), (f"Row 4 skipped: {reason}.",), {"skipped": reason})
