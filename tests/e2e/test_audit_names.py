"""Guest truth for ``planner audit`` and ``planner relayout --all`` (issue 15).

1. The audit's predicted next name, for a plain ``virsh attach-device --live --config``
   (no address) and then for ``planner hotplug``, is the name the guest reports after
   each attach: on a laid-out pc domain (``ens5``, then ``ens6``) and on one with
   libvirt's default layout (``ens9``, then ``ens10``).
2. ``planner relayout --all --define`` on a host with three default domains (one of
   them running), then a cold boot of each, then ``planner hotplug``: ``ens5`` in every
   guest, as the audit said (for planner and for a plain attach alike). ``--only``
   keeps ``--all`` to this test's domains: the libvirtd is shared.

Every command runs as the CLI in a subprocess; every name comes from the guest's own
report. Guests boot one at a time (TCG on shared cores).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from . import scenario
from .guest import Console, Guest, domain_xml
from .scenario import AFFECT_LIVE, XML_INACTIVE, boot_report, planner, run_planner, wait_nics

pytestmark = [pytest.mark.e2e, pytest.mark.libvirt]

AFFECT_CONFIG = 2
VIRSH_MAC = "52:54:00:00:00:99"


def devices(disk: Path) -> str:
    """The baseline's small VM (tests/e2e/test_guest_baseline.py), no addresses."""
    return f"""
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>
    <controller type='virtio-serial'/>
    {scenario.disk_xml(disk, "vda", "boot")}
    <video><model type='vga'/></video>
    <memballoon model='virtio'/>
    <watchdog model='i6300esb' action='none'/>
    """


def audit(conn, name: str) -> dict:
    proc = run_planner("audit", "-c", conn.getURI(), name, "--json")
    assert proc.returncode in (0, 1), proc.stderr
    (row,) = json.loads(proc.stdout)["domains"]
    return row


def plain_attach(dom) -> None:
    """``virsh attach-device --live --config`` of a NIC without an address."""
    nic = f"<interface type='user'><mac address='{VIRSH_MAC}'/><model type='virtio'/></interface>"
    dom.attachDeviceFlags(nic, AFFECT_LIVE | AFFECT_CONFIG)


def names_of(row: dict) -> tuple[str, str, str]:
    virsh = row["next_virsh"]
    return (
        row["next_planner"]["guest_name"],
        virsh["live"]["guest_name"],
        virsh["config"]["guest_name"],
    )


@pytest.mark.parametrize("laid_out", [True, False], ids=["laid-out", "default"])
def test_the_audit_predicts_the_guest_names_of_both_attach_paths(
    conn, domain_name, guest: Guest, vm_dir, console_log, laid_out
) -> None:
    started = time.monotonic()
    xml = domain_xml(
        domain_name, guest, console_log, devices_xml=devices(scenario.make_disk(vm_dir, "boot", 10))
    )
    if laid_out:
        dom = scenario.relayout_define_start(conn, xml, vm_dir)
    else:
        dom = conn.defineXML(xml)
        dom.create()
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    assert boot.names == ["ens3", "ens4"]

    first = audit(conn, domain_name)
    assert [n["guest_name"] for n in first["nics"]] == boot.names
    if laid_out:
        assert (first["verdict"], names_of(first)) == ("ok", ("ens5", "ens5", "ens5"))
    else:
        assert (first["verdict"], names_of(first)[1:]) == ("at-risk", ("ens9", "ens9"))
    # A plain attach first (laid out: ens5 too; default: the baseline's ens9), then planner.
    plain_attach(dom)
    virsh_seen = wait_nics(console, 3).names[-1]
    second = audit(conn, domain_name)
    result = scenario.hotplug(conn, domain_name, "--user")
    planner_seen = wait_nics(console, 4).names[-1]
    planner_predicted, virsh_predicted = second, first
    report = console.latest()
    said_planner = planner_predicted["next_planner"]["guest_name"]
    said_virsh = virsh_predicted["next_virsh"]["live"]["guest_name"]
    print(
        f"\naudit truth ({'laid out' if laid_out else 'default layout'}): boot "
        f"{' '.join(boot.names)}; audit said planner {said_planner}, virsh {said_virsh}; "
        f"guest saw planner {planner_seen}, virsh {virsh_seen}; now {' '.join(report.names)}; "
        f"test {time.monotonic() - started:.1f}s"
    )
    assert result["guest_name"] == planner_seen
    assert planner_seen == planner_predicted["next_planner"]["guest_name"]
    assert virsh_seen == virsh_predicted["next_virsh"]["live"]["guest_name"]
    assert virsh_seen == virsh_predicted["next_virsh"]["config"]["guest_name"]
    assert virsh_seen == ("ens5" if laid_out else "ens9")


@pytest.fixture
def three_domains(conn):
    prefix = f"planner-test-{uuid.uuid4().hex[:8]}-"
    names = [prefix + x for x in ("a", "b", "c")]
    yield prefix, names
    import libvirt

    for name in names:
        try:
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            continue


def test_relayout_all_then_a_cold_boot_gives_ens5_in_every_guest(
    conn, three_domains, guest: Guest, vm_dir
) -> None:
    started = time.monotonic()
    prefix, names = three_domains
    doms, consoles = [], []
    for name in names:
        log = vm_dir / f"{name}.log"
        disk = scenario.make_disk(vm_dir, name, 10)
        doms.append(conn.defineXML(domain_xml(name, guest, log, devices_xml=devices(disk))))
        consoles.append(Console(log))
    doms[0].create()  # one of them running: the relayout applies at its next cold boot
    assert boot_report(consoles[0], nics=2, disks=1).names == ["ens3", "ens4"]

    out = planner("relayout", "-c", conn.getURI(), "--all", "--define", "--only", prefix + "*")
    assert out.splitlines() == [
        f"{names[0]}: defined (takes effect at the next cold boot (destroy + start))",
        f"{names[1]}: defined",
        f"{names[2]}: defined",
        "3 domain(s): 3 defined",
    ]
    assert all("urn:libvirt-nic-planner:layout:1" in d.XMLDesc(XML_INACTIVE) for d in doms)

    seen = {}
    for name, dom, console in zip(names, doms, consoles):
        if dom.isActive():
            dom.destroy()
            console.path.rename(console.path.with_suffix(".before-relayout.log"))
        dom.create()
        boot = boot_report(console, nics=2, disks=1)
        row = audit(conn, name)
        result = scenario.hotplug(conn, name, "--user")
        plugged = wait_nics(console, 3)
        seen[name] = (boot.names, result["guest_name"], plugged.names)
        assert (row["verdict"], names_of(row)) == ("ok", ("ens5", "ens5", "ens5"))
        dom.destroy()  # one guest at a time
    print(
        "\nrelayout --all --define, cold boot, planner hotplug: "
        + "; ".join(f"{n[len(prefix) :]}: {' '.join(s[2])}" for n, s in seen.items())
        + f"; test {time.monotonic() - started:.1f}s"
    )
    for boot_names, predicted, names_after in seen.values():
        assert boot_names == ["ens3", "ens4"]
        assert (predicted, names_after) == ("ens5", ["ens3", "ens4", "ens5"])
