"""Guest truth on q35: with planner, NICs are enp1s0, enp2s0, ... and a hot-plug takes the next.

Issue 5's guest-truth scenarios. The domain is the issue's: q35 with two virtio NICs
(user networking), a virtio-serial controller, a virtio disk (serial ``boot``), a
virtio memballoon, an i6300esb watchdog and a vga card, without addresses or explicit
controllers. All names and disks come from the guest's own reports (udev's net_id and
/sys/block in the guest), never from the domain XML. Hot-plugs with planner go through
the ``planner hotplug`` CLI in a subprocess.

On q35 the guest names a NIC ``enp<bus>s0`` after the bus number it gives the NIC's
pcie-root-port while it enumerates the PCI tree depth first: not libvirt's controller
index. So ``planner show``'s predictions are compared with the guest per MAC address,
after every change (scenario 5), not per PCI address.

Each test boots its own domain (the ``domain_name`` fixture undefines it afterwards);
only the cached guest kernel and initrd are shared.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from lxml import etree

from . import scenario
from .guest import Console, Guest, GuestReport, domain_xml
from .scenario import (
    AFFECT_CONFIG,
    AFFECT_LIVE,
    CHANGE_TIMEOUT,
    MB,
    XML_INACTIVE,
    boot_report,
    disk_xml,
    hotplug,
    make_disk,
    planner,
    run_planner,
    wait_nics,
)

pytestmark = [pytest.mark.e2e, pytest.mark.libvirt]

EXIT_NO_ROOM = 3
BOOT_MACS = ["52:54:00:00:00:01", "52:54:00:00:00:02"]
LAYOUT_NS = {"planner": "urn:libvirt-nic-planner:layout:1"}
MAC = re.compile(r"\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")


# --- the domain ----------------------------------------------------------------------


def devices(boot_disk: Path) -> str:
    """Issue 5's q35 VM, with no addresses and no explicit controllers."""
    return f"""
    <interface type='user'><mac address='{BOOT_MACS[0]}'/><model type='virtio'/></interface>
    <interface type='user'><mac address='{BOOT_MACS[1]}'/><model type='virtio'/></interface>
    <controller type='virtio-serial'/>
    {disk_xml(boot_disk, "vda", "boot")}
    <video><model type='vga'/></video>
    <memballoon model='virtio'/>
    <watchdog model='i6300esb' action='none'/>
    """


def q35_xml(name: str, guest: Guest, vm_dir: Path, console_log: Path) -> Path:
    """Write the domain XML to vm_dir/domain.xml and return its path."""
    path = vm_dir / "domain.xml"
    xml = domain_xml(
        name, guest, console_log, machine="q35", devices_xml=devices(make_disk(vm_dir, "boot", 10))
    )
    path.write_text(xml)
    return path


def relayout_define_start(
    conn, name: str, guest: Guest, vm_dir: Path, console_log: Path, *relayout_args: str
):
    """Issue 5's VM, laid out by ``planner relayout``, defined and started."""
    xml = q35_xml(name, guest, vm_dir, console_log).read_text()
    return scenario.relayout_define_start(conn, xml, vm_dir, *relayout_args)


def guest_names(report: GuestReport) -> dict[str, str]:
    """{MAC: name} as the guest reports it."""
    return {n.mac: n.name for n in report.nics}


def show_names(dom, vm_dir: Path) -> dict[str, str]:
    """``planner show --json`` on the live XML: {MAC: predicted guest name}."""
    live = vm_dir / "live.xml"
    live.write_text(dom.XMLDesc(0))
    slots = json.loads(planner("show", "--json", str(live)))["slots"]
    out = {}
    for s in slots:
        if s["role"] == "nic":
            (mac,) = MAC.findall(s["device"])
            out[mac] = s["guest_name"]
    return out


def assert_show_matches_guest(dom, vm_dir: Path, report: GuestReport) -> None:
    """Scenario 5: what ``planner show`` predicts is what the guest says, NIC by NIC."""
    assert show_names(dom, vm_dir) == guest_names(report)


def new_nic(report: GuestReport, known: set[str]):
    (nic,) = [n for n in report.nics if n.mac not in known]
    return nic


def layout_ports(xml: str) -> tuple[list[int], list[int]]:
    """(NIC ports, spare non-NIC ports) from the layout planner records in <metadata>."""
    root = etree.fromstring(xml.encode())
    lay = root.find("metadata/planner:layout", LAYOUT_NS)
    nics = lay.find("planner:nics", LAYOUT_NS).get("ports").split()
    spare = lay.find("planner:others", LAYOUT_NS).get("spare-ports").split()
    return [int(p) for p in nics], [int(p) for p in spare]


def bus_of(address: str) -> int:
    """The bus of ``0000:03:00.0``."""
    return int(address.split(":")[1], 16)


def done(label: str, started: float, boot: float) -> None:
    print(f"\n{label}: boot to first report: {boot:.1f}s, test: {time.monotonic() - started:.1f}s")


# --- the scenarios -------------------------------------------------------------------


def test_1_baseline_without_planner(conn, domain_name, guest: Guest, vm_dir, console_log) -> None:
    """libvirt 9.0's own q35 layout: ``enp3s0 enp4s0``, and a hot-plugged NIC is ``enp9s0``.

    libvirt gives every PCIe device a pcie-root-port of its own, on pcie-root slot 2
    functions 0-7 in index order. The i6300esb watchdog is conventional PCI, so libvirt
    adds a pcie-to-pci-bridge (index 8) for it and puts that bridge behind root port 1
    (00:02.0), the first port. The guest enumerates depth first: port 1 is bus 1, the
    bridge behind it bus 2, so the NICs' ports (indexes 2 and 3) become buses 3 and 4.
    libvirt also adds one empty root port for a later hot-plug (index 9, at 00:02.7,
    the guest's bus 9), and a NIC attached without an address goes there: ``enp9s0``.
    """
    started = time.monotonic()
    dom = conn.defineXML(q35_xml(domain_name, guest, vm_dir, console_log).read_text())
    console = Console(console_log)
    dom.create()
    boot = boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    assert [n.mac for n in boot.nics] == BOOT_MACS
    assert boot.names == ["enp3s0", "enp4s0"]
    assert [n.pci for n in boot.nics] == ["0000:03:00.0", "0000:04:00.0"]
    assert [(d.name, d.serial, d.size) for d in boot.disks] == [("vda", "boot", 10 * MB)]
    # The cause, in libvirt's XML: the bridge for the watchdog sits on the first port.
    live = etree.fromstring(dom.XMLDesc(0).encode())
    (bridge,) = live.findall("./devices/controller[@model='pcie-to-pci-bridge']")
    assert bridge.find("address").get("bus") == "0x01"
    assert [el.find("address").get("bus") for el in live.findall("./devices/interface")] == [
        "0x02",
        "0x03",
    ]
    assert_show_matches_guest(dom, vm_dir, boot)

    # What `virsh attach-device --live --config` does, without an address.
    mac = "52:54:00:00:00:99"
    nic = f"<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>"
    dom.attachDeviceFlags(nic, AFFECT_LIVE | AFFECT_CONFIG)
    plugged = wait_nics(console, 3)
    print(
        f"\nscenario 1 (no planner) guest names: {' '.join(boot.names)}, "
        f"then {' '.join(plugged.names)}"
    )
    assert plugged.names == ["enp3s0", "enp4s0", "enp9s0"]  # not enp5s0
    assert new_nic(plugged, set(BOOT_MACS)).mac == mac
    assert_show_matches_guest(dom, vm_dir, plugged)
    done("scenario 1", started, boot_time)


def test_2_relayout_then_hotplugged_nic_is_enp3s0(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log)
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    assert [n.mac for n in boot.nics] == BOOT_MACS
    assert boot.names == ["enp1s0", "enp2s0"]
    assert [(d.name, d.serial) for d in boot.disks] == [("vda", "boot")]
    assert_show_matches_guest(dom, vm_dir, boot)

    result = hotplug(conn, domain_name, "--user")
    plugged = wait_nics(console, 3)
    print(f"\nscenario 2 guest names: {' '.join(boot.names)}, then {' '.join(plugged.names)}")
    assert plugged.names == ["enp1s0", "enp2s0", "enp3s0"]  # not enp9s0 as in the baseline
    assert new_nic(plugged, set(BOOT_MACS)).name == "enp3s0"
    assert result["guest_name"] == "enp3s0"
    assert_show_matches_guest(dom, vm_dir, plugged)

    # One more: the spare NIC ports follow in order.
    hotplug(conn, domain_name, "--user")
    again = wait_nics(console, 4)
    print(f"scenario 2 guest names after a second hot-plug: {' '.join(again.names)}")
    assert again.names == ["enp1s0", "enp2s0", "enp3s0", "enp4s0"]
    assert_show_matches_guest(dom, vm_dir, again)
    done("scenario 2", started, boot_time)


def test_3_disk_hotplug_takes_no_nic_port(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log)
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    assert boot.names == ["enp1s0", "enp2s0"]
    assert_show_matches_guest(dom, vm_dir, boot)
    nic_ports, spare_other = layout_ports(dom.XMLDesc(0))

    data = vm_dir / "data.xml"
    data.write_text(disk_xml(make_disk(vm_dir, "data", 30), "vdb", "data"))
    disk = hotplug(conn, domain_name, str(data))
    with_disk = console.wait_for(lambda r: len(r.disks) == 2, timeout=CHANGE_TIMEOUT)
    assert [(d.name, d.serial, d.size) for d in with_disk.disks] == [
        ("vda", "boot", 10 * MB),
        ("vdb", "data", 30 * MB),
    ]
    assert with_disk.names == ["enp1s0", "enp2s0"]
    # In the XML: a spare port for non-NIC devices. In the guest: a bus past the NIC range
    # (the NIC ports are the first root ports the guest enumerates: buses 1..len).
    assert bus_of(disk["address"]) in spare_other
    assert bus_of(disk["address"]) not in nic_ports
    assert bus_of(with_disk.disks[1].pci) > len(nic_ports)
    assert_show_matches_guest(dom, vm_dir, with_disk)

    hotplug(conn, domain_name, "--user")
    plugged = wait_nics(console, 3)
    disks = ", ".join(f"{d.name} serial={d.serial} pci={d.pci}" for d in plugged.disks)
    print(f"\nscenario 3 guest names: {' '.join(plugged.names)}; disks: {disks}")
    assert plugged.names == ["enp1s0", "enp2s0", "enp3s0"]
    assert [(d.name, d.serial) for d in plugged.disks] == [("vda", "boot"), ("vdb", "data")]
    assert_show_matches_guest(dom, vm_dir, plugged)
    done("scenario 3", started, boot_time)


def test_4_no_spare_port_left_fails_cleanly(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log, "--spare-ports", "1")
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    assert boot.names == ["enp1s0", "enp2s0"]
    assert_show_matches_guest(dom, vm_dir, boot)
    assert len(layout_ports(dom.XMLDesc(0))[0]) == 3  # two NICs and one spare

    hotplug(conn, domain_name, "--user")
    plugged = wait_nics(console, 3)
    assert plugged.names == ["enp1s0", "enp2s0", "enp3s0"]
    assert_show_matches_guest(dom, vm_dir, plugged)

    live_before, config_before = dom.XMLDesc(0), dom.XMLDesc(XML_INACTIVE)
    proc = run_planner("hotplug", "-c", conn.getURI(), domain_name, "--user")
    print(
        f"\nscenario 4 guest names: {' '.join(plugged.names)}; "
        f"the next hot-plug: exit {proc.returncode}, stderr {proc.stderr!r}"
    )
    assert proc.returncode == EXIT_NO_ROOM, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("planner: error: ")
    assert "root ports cannot be added to a running guest" in line
    assert proc.stdout == ""
    assert dom.XMLDesc(0) == live_before
    assert dom.XMLDesc(XML_INACTIVE) == config_before
    # The guest saw nothing change either.
    time.sleep(2)
    after = console.latest()
    assert after is not None and after.seq == plugged.seq
    assert after.names == ["enp1s0", "enp2s0", "enp3s0"]
    assert_show_matches_guest(dom, vm_dir, after)
    done("scenario 4", started, boot_time)
