"""Baseline without planner: libvirt's own PCI layout misnames a hot-plugged NIC.

This proves the harness can see the bug planner fixes. A pc domain with two NICs, a
video card and the usual devices boots with ``ens3 ens4``; a NIC hot-plugged without
an address lands behind every other device, in slot 9, and the guest calls it ``ens9``
instead of ``ens5``. All names come from the guest's own report (udev's net_id in the
guest), never from the domain XML.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .guest import Console, Guest, domain_xml

pytestmark = [pytest.mark.e2e, pytest.mark.libvirt]

HOTPLUG_MAC = "52:54:00:00:00:99"


def devices(disk: Path) -> str:
    """A typical small VM, with no addresses: libvirt assigns them."""
    return f"""
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>
    <controller type='virtio-serial'/>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/><source file='{disk}'/>
      <target dev='vda' bus='virtio'/><serial>boot</serial>
    </disk>
    <video><model type='vga'/></video>
    <memballoon model='virtio'/>
    <watchdog model='i6300esb' action='none'/>
    """


def test_hotplugged_nic_gets_slot_9_without_planner(
    conn, domain_name: str, guest: Guest, vm_dir: Path, console_log: Path
) -> None:
    started = time.monotonic()
    disk = vm_dir / "boot.img"
    subprocess.run(["truncate", "-s", "10M", str(disk)], check=True)
    dom = conn.defineXML(domain_xml(domain_name, guest, console_log, devices_xml=devices(disk)))
    console = Console(console_log)

    dom.create()
    boot = console.wait_for(lambda r: len(r.nics) == 2 and len(r.disks) == 1, timeout=60)
    boot_time = time.monotonic() - started
    # Video takes slot 2, so the NICs are at 3 and 4, as in a real VM.
    assert [n.pci for n in boot.nics] == ["0000:00:03.0", "0000:00:04.0"]
    assert [n.mac for n in boot.nics] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    assert boot.names == ["ens3", "ens4"]
    assert [(d.name, d.serial, d.size) for d in boot.disks] == [("vda", "boot", 20480)]

    # `virsh attach-device --live --config`, without an address: libvirt's first fit.
    nic = f"<interface type='user'><mac address='{HOTPLUG_MAC}'/><model type='virtio'/></interface>"
    nic_file = vm_dir / "nic.xml"
    nic_file.write_text(nic)
    virsh = ["virsh", "-c", conn.getURI(), "attach-device", domain_name, str(nic_file)]
    subprocess.run([*virsh, "--live", "--config"], check=True, capture_output=True)
    plugged = console.wait_for(lambda r: len(r.nics) == 3, timeout=30)
    print(
        f"\nscenario 1 (no planner) guest names: {' '.join(boot.names)}, then "
        f"{' '.join(plugged.names)}"
    )
    assert plugged.names == ["ens3", "ens4", "ens9"]  # the bug: not ens5
    (new,) = [n for n in plugged.nics if n.mac == HOTPLUG_MAC]
    assert (new.pci, new.slot, new.path) == ("0000:00:09.0", "ens9", "enp0s9")

    # The guest acknowledges a live unplug (acpiphp ejects the device).
    dom.detachDeviceFlags(nic, 1)  # VIR_DOMAIN_AFFECT_LIVE
    unplugged = console.wait_for(lambda r: len(r.nics) == 2, timeout=30)
    assert unplugged.names == ["ens3", "ens4"]
    assert HOTPLUG_MAC not in dom.XMLDesc(0)

    print(f"\nboot to first report: {boot_time:.1f}s, test: {time.monotonic() - started:.1f}s")
