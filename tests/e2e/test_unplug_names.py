"""Guest truth for unplug: `planner unplug` frees a NIC's name, and `planner hotplug` gives it back.

Issue 15's unplug scenarios. The guest's /init ejects a device on the ACPI (i440fx) or
PCIe native (q35) unplug request and reports its NICs on the console, so these tests see
QEMU delete the device and libvirt emit DEVICE_REMOVED: `planner unplug` must report
``removed`` (seen by the event), not time out. All names come from the guest's reports.
Both commands run as the CLI in a subprocess.
"""

from __future__ import annotations

import json
import time

import pytest

from . import scenario
from .guest import Console, Guest, domain_xml
from .scenario import (
    XML_INACTIVE,
    boot_report,
    disk_xml,
    hotplug,
    make_disk,
    planner,
    wait_nics,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.libvirt]

MACS = ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"]


def devices(boot_disk, nics: int) -> str:
    return (
        "".join(
            f"<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>\n"
            for mac in MACS[:nics]
        )
        + "<controller type='virtio-serial'/>\n"
        + disk_xml(boot_disk, "vda", "boot")
        + "<video><model type='vga'/></video>\n<memballoon model='virtio'/>\n"
    )


def start(conn, name, guest: Guest, vm_dir, console_log, machine: str, nics: int):
    xml = domain_xml(
        name,
        guest,
        console_log,
        machine=machine,
        devices_xml=devices(make_disk(vm_dir, "boot", 10), nics),
    )
    return scenario.relayout_define_start(conn, xml, vm_dir)


def unplug(conn, name: str, match: str, *args: str) -> str:
    return planner("unplug", "-c", conn.getURI(), name, match, *args)


def interface_macs(xml: str) -> list[str]:
    from lxml import etree

    root = etree.fromstring(xml.encode())
    return [el.find("mac").get("address") for el in root.iterfind("devices/interface")]


def test_pc_unplug_ens4_then_hotplug_gives_ens4_back_and_a_restart_keeps_the_names(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    dom = start(conn, domain_name, guest, vm_dir, console_log, "pc", 3)
    console = Console(console_log)
    boot = boot_report(console, nics=3, disks=1)
    assert boot.names == ["ens3", "ens4", "ens5"]
    assert [n.mac for n in boot.nics] == MACS

    t0 = time.monotonic()
    out = unplug(conn, domain_name, "ens4")
    unplug_s = time.monotonic() - t0
    assert out == f"interface {MACS[1]} at 0000:00:04.0 (ens4) removed\n"
    unplugged = wait_nics(console, 2)
    assert unplugged.names == ["ens3", "ens5"]
    assert [n.mac for n in unplugged.nics] == [MACS[0], MACS[2]]
    # Gone from both definitions: nothing pending anywhere.
    assert interface_macs(dom.XMLDesc(0)) == interface_macs(dom.XMLDesc(XML_INACTIVE))
    assert MACS[1] not in interface_macs(dom.XMLDesc(0))

    result = hotplug(conn, domain_name, "--user")
    refilled = wait_nics(console, 3)
    assert (result["address"], result["guest_name"]) == ("0000:00:04.0", "ens4")
    assert refilled.names == ["ens3", "ens4", "ens5"]
    new_mac = refilled.nics[1].mac
    assert new_mac not in MACS

    dom.destroy()
    console_log.rename(vm_dir / "console-first-boot.log")
    dom.create()
    reboot = boot_report(console, nics=3, disks=1)
    print(
        f"\npc unplug/refill guest names: {' '.join(boot.names)} at boot; "
        f"{' '.join(unplugged.names)} after `planner unplug ens4` ({unplug_s:.1f}s); "
        f"{' '.join(refilled.names)} after `planner hotplug`; "
        f"{' '.join(reboot.names)} after destroy + start; test {time.monotonic() - started:.1f}s"
    )
    assert reboot.names == ["ens3", "ens4", "ens5"]
    assert [n.mac for n in reboot.nics] == [MACS[0], new_mac, MACS[2]]


def test_q35_unplug_enp2s0_and_hotplug_again_gives_enp2s0(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    dom = start(conn, domain_name, guest, vm_dir, console_log, "q35", 2)
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    assert boot.names == ["enp1s0", "enp2s0"]

    t0 = time.monotonic()
    out = json.loads(unplug(conn, domain_name, "enp2s0", "--json"))
    unplug_s = time.monotonic() - t0
    assert (out["status"], out["guest_name"], out["mac"]) == ("removed", "enp2s0", MACS[1])
    assert out["observed_by"] in ("event", "absent")
    assert (out["live"], out["config"]) == (True, True)
    unplugged = wait_nics(console, 1)
    assert unplugged.names == ["enp1s0"]
    wait_until(
        "the NIC is gone from the live XML", lambda: len(interface_macs(dom.XMLDesc(0))) == 1
    )

    result = hotplug(conn, domain_name, "--user")
    refilled = wait_nics(console, 2)
    print(
        f"\nq35 unplug/refill guest names: {' '.join(boot.names)} at boot; "
        f"{' '.join(unplugged.names)} after `planner unplug enp2s0` ({unplug_s:.1f}s, "
        f"seen by {out['observed_by']}); {' '.join(refilled.names)} after `planner hotplug`; "
        f"test {time.monotonic() - started:.1f}s"
    )
    assert result["guest_name"] == "enp2s0"
    assert refilled.names == ["enp1s0", "enp2s0"]
    assert refilled.nics[1].mac not in MACS
