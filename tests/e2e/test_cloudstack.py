"""Guest truth, CloudStack's way: the agent hook at every start, CloudStack's plug-NIC choice.

CloudStack's KVM agent writes a domain without PCI addresses (``LibvirtVMDef``), runs the
libvirt XML transformer hook on it, and starts it as a transient domain (``createXML``).
Plug-NIC attaches to the running domain only, and the next start regenerates the XML
from CloudStack's database with the plugged NIC after the others. These tests do the same
with the test guest: the hook is the shipped Groovy script, run by ``agent_hook.groovy``
as the agent runs it; the plug-NIC slot choice is CloudStack's, re-implemented below.

The guest reports the names udev gives its NICs on its serial console; every name here
comes from there. Each test starts its own transient domain, destroyed afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudstack.hook import transform, vm_xml
from lxml import etree

from .guest import Console, Guest, console_xml, os_xml
from .scenario import boot_report, hotplug, make_disk, wait_nics

pytestmark = [pytest.mark.e2e, pytest.mark.libvirt]

MACS = [f"02:00:5d:8e:00:{i:02x}" for i in range(1, 9)]


# --- CloudStack ------------------------------------------------------------------------


def cloudstack_xml(
    name: str, guest: Guest, vm_dir: Path, console_log: Path, nics: int, machine="pc"
):
    """The domain CloudStack's agent would generate (as samples/cloudstack-2nic.xml), booting
    the test guest: ``nics`` virtio NICs first (user-mode networking: the test host has no
    cloudbr bridges), virtio-serial with the guest-agent channel, a virtio root disk, an
    IDE (q35: SATA) cdrom, video, balloon and watchdog, and no PCI address."""
    root = vm_dir / "root.img"
    if not root.exists():
        make_disk(vm_dir, "root", 10)
    return vm_xml(
        name,
        MACS[:nics],
        machine=machine,
        net="user",
        domain_type="qemu",
        os_xml=os_xml(guest, machine),
        serial_xml=console_xml(console_log),
        disk=str(root),
        disk_format="raw",
        disk_cache=None,
        channel_dir=str(vm_dir),
        uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
    )


MAX_PCI_SLOT = 0x1F


def cloudstack_plug_nic(dom, mac: str) -> int | None:
    """CloudStack's plug-NIC on a running domain, after its fix for ``ens9``.

    Re-implements apache/cloudstack
    plugins/hypervisors/kvm/src/main/java/com/cloud/hypervisor/kvm/resource/wrapper/
    LibvirtPlugNicCommandWrapper.java: ``execute`` reads the plugged NICs from the live XML
    (``LibvirtComputingResource.getInterfaces``, i.e. LibvirtDomainXMLParser: each NIC's
    slot is its ``<address>``'s ``slot``), and ``findNextAvailablePciSlot`` takes the highest
    slot held by a NIC (``getHighestNicSlot``, 0 if none), then the lowest slot above it, up
    to 0x1f, that no ``<address type='pci'>`` anywhere in the live XML uses, on any bus
    (``getUsedPciSlots``, ``getFirstFreeSlotAbove``). ``InterfaceDef.toString`` writes it
    with ``bus='0x00'``, and ``vm.attachDevice`` attaches it to the running domain only.
    Returns the slot, or None when libvirt was left to choose.
    """
    root = etree.fromstring(dom.XMLDesc(0).encode())
    nic_slots = []
    for nic in root.findall("./devices/interface"):
        if nic.find("mac").get("address").lower() == mac.lower():
            return None  # "found existing nic for mac": nothing to do
        address = nic.find(".//address")
        slot = address.get("slot") if address is not None else None
        nic_slots.append(int(slot.removeprefix("0x"), 16) if slot else None)
    used = {
        int(a.get("slot"), 0)  # Integer.decode
        for a in root.iter("address")
        if a.get("type") == "pci" and a.get("slot")
    }
    highest = max([s for s in nic_slots if s is not None], default=0)
    slot = next((s for s in range(highest + 1, MAX_PCI_SLOT + 1) if s not in used), None)
    address = (
        f"<address type='pci' domain='0x0000' bus='0x00' slot='0x{slot:02x}' function='0x0'/>\n"
        if slot is not None
        else ""
    )
    dom.attachDevice(
        f"<interface type='user'>\n<mac address='{mac}'/>\n<model type='virtio'/>\n"
        f"<link state='up'/>\n{address}</interface>\n"
    )
    return slot


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def transient_name(conn) -> Iterator[str]:
    """A unique domain name; a transient domain of that name is destroyed afterwards."""
    name = f"planner-test-{uuid.uuid4().hex[:8]}"
    yield name
    import libvirt

    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    persistent = dom.isPersistent()
    if dom.isActive():
        dom.destroy()
    if persistent:
        dom.undefine()


def start(conn, xml: str):
    """CloudStack's ``startVM``: a transient domain (``createXML``, no flags)."""
    dom = conn.createXML(xml, 0)
    assert not dom.isPersistent()
    return dom


def through_hook(xml: str, work: Path) -> str:
    """The XML the agent starts after the hook; the hook must have laid it out."""
    laid_out, outcome = transform(xml, work)
    assert outcome.warns == [], outcome.log
    assert "<planner:layout" in laid_out
    return laid_out


def fresh_console(console_log: Path, label: str) -> Console:
    """A new log for the next boot, so that no report of the last one can pass for it."""
    if console_log.exists():
        console_log.rename(console_log.with_name(f"console-{label}.log"))
    return Console(console_log)


def done(label: str, started: float) -> None:
    print(f"{label}: test {time.monotonic() - started:.1f}s")


# --- the flows -------------------------------------------------------------------------


def test_hook_then_cloudstack_plug_nic_gives_ens5_ens6_and_keeps_them(
    conn, transient_name, guest: Guest, vm_dir, console_log, tmp_path
) -> None:
    started = time.monotonic()
    xml = cloudstack_xml(transient_name, guest, vm_dir, console_log, nics=2)
    dom = start(conn, through_hook(xml, tmp_path / "hook-1"))
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    assert boot.names == ["ens3", "ens4"]
    assert [n.mac for n in boot.nics] == MACS[:2]

    assert cloudstack_plug_nic(dom, MACS[2]) == 5
    plugged = wait_nics(console, 3)
    assert plugged.names == ["ens3", "ens4", "ens5"]
    assert cloudstack_plug_nic(dom, MACS[3]) == 6
    again = wait_nics(console, 4)
    assert again.names == ["ens3", "ens4", "ens5", "ens6"]
    assert [n.mac for n in again.nics] == MACS[:4]

    # Stop; CloudStack regenerates the XML with the plugged NICs; the hook lays it out again.
    dom.destroy()
    console = fresh_console(console_log, "first-start")
    xml = cloudstack_xml(transient_name, guest, vm_dir, console_log, nics=4)
    dom = start(conn, through_hook(xml, tmp_path / "hook-2"))
    restart = boot_report(console, nics=4, disks=1)
    print(
        f"\nCloudStack with the hook: {' '.join(boot.names)}; plug-NIC: {' '.join(plugged.names)}"
        f"; again: {' '.join(again.names)}; after a restart: {' '.join(restart.names)}"
    )
    assert restart.names == ["ens3", "ens4", "ens5", "ens6"]
    assert [n.mac for n in restart.nics] == MACS[:4]
    done("hook + CloudStack plug-NIC", started)


def test_hook_then_planner_hotplug_gives_ens5(
    conn, transient_name, guest: Guest, vm_dir, console_log, tmp_path
) -> None:
    started = time.monotonic()
    xml = cloudstack_xml(transient_name, guest, vm_dir, console_log, nics=2)
    start(conn, through_hook(xml, tmp_path / "hook"))
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    assert boot.names == ["ens3", "ens4"]

    result = hotplug(conn, transient_name, "--user", "--mac", MACS[2], "--live")
    plugged = wait_nics(console, 3)
    print(f"\nCloudStack with the hook, planner hotplug: {' '.join(plugged.names)}")
    assert plugged.names == ["ens3", "ens4", "ens5"]
    assert (result["address"], result["guest_name"]) == ("0000:00:05.0", "ens5")
    done("hook + planner hotplug", started)


def test_baseline_without_hook_cloudstack_plug_nic_gives_ens9(
    conn, transient_name, guest: Guest, vm_dir, console_log
) -> None:
    """Without the hook, libvirt puts virtio-serial, disk, balloon and watchdog at 5-8,
    right after the NICs, and CloudStack's choice can only go above them."""
    started = time.monotonic()
    dom = start(conn, cloudstack_xml(transient_name, guest, vm_dir, console_log, nics=2))
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    assert boot.names == ["ens3", "ens4"]

    assert cloudstack_plug_nic(dom, MACS[2]) == 9
    plugged = wait_nics(console, 3)
    names = " ".join(plugged.names)
    print(f"\nCloudStack without the hook: {' '.join(boot.names)}; plug-NIC: {names}")
    assert plugged.names == ["ens3", "ens4", "ens9"]  # the bug the hook fixes
    done("baseline without the hook", started)


def test_q35_hook_then_planner_hotplug_gives_enp3s0(
    conn, transient_name, guest: Guest, vm_dir, console_log, tmp_path
) -> None:
    started = time.monotonic()
    xml = cloudstack_xml(transient_name, guest, vm_dir, console_log, nics=2, machine="q35")
    start(conn, through_hook(xml, tmp_path / "hook"))
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    assert boot.names == ["enp1s0", "enp2s0"]

    result = hotplug(conn, transient_name, "--user", "--mac", MACS[2], "--live")
    plugged = wait_nics(console, 3)
    print(f"\nCloudStack q35 with the hook, planner hotplug: {' '.join(plugged.names)}")
    assert plugged.names == ["enp1s0", "enp2s0", "enp3s0"]
    assert result["guest_name"] == "enp3s0"
    done("q35 hook + planner hotplug", started)
