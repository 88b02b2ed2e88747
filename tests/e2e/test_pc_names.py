"""Guest truth on i440fx: with planner, NICs get the names ens3, ens4, ens5... in order.

Issue 4's scenarios 2-7 (scenario 1, the baseline without planner, is in
test_guest_baseline.py). Every domain is the baseline's small VM, rewritten by
``planner relayout`` before it is defined, and every hot-plug goes through the
``planner hotplug`` CLI in a subprocess. All names and disks come from the guest's
own reports (udev's net_id and /sys/block in the guest), never from the domain XML;
where the XML matters (``planner show``, unplug) it is checked against the guest.

Each test boots its own domain (the ``domain_name`` fixture undefines it afterwards);
only the cached guest kernel and initrd are shared.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

from . import scenario
from .guest import Console, Guest, domain_xml
from .scenario import (
    AFFECT_CONFIG,
    AFFECT_LIVE,
    CHANGE_TIMEOUT,
    MB,
    ROOT,
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


# --- the domain ----------------------------------------------------------------------


def devices(disks: str) -> str:
    """The baseline's small VM (no addresses) with ``disks`` in place of its disk."""
    return f"""
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>
    <controller type='virtio-serial'/>
    {disks}
    <video><model type='vga'/></video>
    <memballoon model='virtio'/>
    <watchdog model='i6300esb' action='none'/>
    """


def relayout_define_start(
    conn, name: str, guest: Guest, vm_dir: Path, console_log: Path, disks: str
):
    """The small VM with ``disks``, laid out by ``planner relayout``, defined and started."""
    xml = domain_xml(name, guest, console_log, devices_xml=devices(disks))
    return scenario.relayout_define_start(conn, xml, vm_dir)


def interfaces(xml: str) -> list[etree._Element]:
    return etree.fromstring(xml.encode()).findall("./devices/interface")


def slot_of(el: etree._Element) -> int | None:
    a = el.find("address")
    return int(a.get("slot"), 16) if a is not None and a.get("type") == "pci" else None


def show_names(dom, vm_dir: Path) -> dict[str, str]:
    """``planner show --json`` on the live XML: {PCI address: predicted guest name}."""
    live = vm_dir / "live.xml"
    live.write_text(dom.XMLDesc(0))
    slots = json.loads(planner("show", "--json", str(live)))["slots"]
    return {f"0000:{s['address']}": s["guest_name"] for s in slots if s["role"] == "nic"}


def done(started: float, boot: float | None = None) -> None:
    boot_note = f"boot to first report: {boot:.1f}s, " if boot is not None else ""
    print(f"\n{boot_note}test: {time.monotonic() - started:.1f}s")


# --- the scenarios -------------------------------------------------------------------


def test_2_hotplugged_nic_is_ens5(conn, domain_name, guest: Guest, vm_dir, console_log) -> None:
    started = time.monotonic()
    disks = disk_xml(make_disk(vm_dir, "boot", 10), "vda", "boot")
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log, disks)
    console = Console(console_log)

    boot = boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    assert boot.names == ["ens3", "ens4"]
    assert [n.mac for n in boot.nics] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    assert show_names(dom, vm_dir) == {n.pci: n.name for n in boot.nics}

    result = hotplug(conn, domain_name, "--user")
    plugged = wait_nics(console, 3)
    print(f"\nscenario 2 guest names: {' '.join(boot.names)}, then {' '.join(plugged.names)}")
    assert plugged.names == ["ens3", "ens4", "ens5"]  # not ens9 as in the baseline
    assert (plugged.nics[2].pci, plugged.nics[2].slot) == ("0000:00:05.0", "ens5")
    assert (result["address"], result["guest_name"]) == ("0000:00:05.0", "ens5")
    # planner show, on what libvirt now reports, predicts what the guest says.
    assert show_names(dom, vm_dir) == {n.pci: n.name for n in plugged.nics}
    done(started, boot_time)


def test_3_nic_after_data_disk_is_ens5(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    disks = disk_xml(make_disk(vm_dir, "boot", 10), "vda", "boot")
    relayout_define_start(conn, domain_name, guest, vm_dir, console_log, disks)
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    assert boot.names == ["ens3", "ens4"]

    data = vm_dir / "data.xml"
    data.write_text(disk_xml(make_disk(vm_dir, "data", 30), "vdb", "data"))
    disk_result = hotplug(conn, domain_name, str(data))
    with_disk = console.wait_for(lambda r: len(r.disks) == 2, timeout=CHANGE_TIMEOUT)
    assert [(d.name, d.serial, d.size) for d in with_disk.disks] == [
        ("vda", "boot", 10 * MB),
        ("vdb", "data", 30 * MB),
    ]
    # The disk went above the other devices, out of the NIC range (slots 3-10).
    assert with_disk.disks[1].pci == disk_result["address"]
    assert int(disk_result["address"].split(":")[2].split(".")[0], 16) > 0x0A
    assert with_disk.names == ["ens3", "ens4"]

    hotplug(conn, domain_name, "--user")
    plugged = wait_nics(console, 3)
    print(
        f"\nscenario 3 guest names: {' '.join(plugged.names)}; disks: "
        + ", ".join(f"{d.name} serial={d.serial}" for d in plugged.disks)
    )
    assert plugged.names == ["ens3", "ens4", "ens5"]
    assert [(d.name, d.serial) for d in plugged.disks] == [("vda", "boot"), ("vdb", "data")]
    done(started, boot_time)


def test_4_hotplugged_nic_keeps_ens5_after_restart(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    disks = disk_xml(make_disk(vm_dir, "boot", 10), "vda", "boot")
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log, disks)
    console = Console(console_log)
    boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started

    hotplug(conn, domain_name, "--user")
    plugged = wait_nics(console, 3)
    assert plugged.names == ["ens3", "ens4", "ens5"]

    dom.destroy()
    # A fresh log, so that no report of the first boot can pass for one of the second.
    console_log.rename(vm_dir / "console-first-boot.log")
    dom.create()
    reboot = boot_report(console, nics=3, disks=1)
    print(f"\nscenario 4 guest names at the second boot: {' '.join(reboot.names)}")
    assert reboot.names == ["ens3", "ens4", "ens5"]
    assert [n.mac for n in reboot.nics] == [n.mac for n in plugged.nics]
    done(started, boot_time)


def test_5_unplug_then_refill(conn, domain_name, guest: Guest, vm_dir, console_log) -> None:
    """ens3 ens4 ens5, unplug ens4 (live and config): after-last skips the hole (ens6),
    the default policy (lowest) fills it (ens4)."""
    started = time.monotonic()
    disks = disk_xml(make_disk(vm_dir, "boot", 10), "vda", "boot")
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log, disks)
    console = Console(console_log)
    boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started
    hotplug(conn, domain_name, "--user")
    assert wait_nics(console, 3).names == ["ens3", "ens4", "ens5"]

    # `virsh detach-device --live --config` with the NIC at slot 4 as the live XML has it.
    (ens4,) = [el for el in interfaces(dom.XMLDesc(0)) if slot_of(el) == 4]
    dom.detachDeviceFlags(etree.tostring(ens4, encoding="unicode"), AFFECT_LIVE | AFFECT_CONFIG)
    unplugged = wait_nics(console, 2)  # the guest's acpiphp ejected it
    assert unplugged.names == ["ens3", "ens5"]
    wait_until(
        "slot 4 is free in the live XML",
        lambda: 4 not in [slot_of(el) for el in interfaces(dom.XMLDesc(0))],
    )
    assert [slot_of(el) for el in interfaces(dom.XMLDesc(XML_INACTIVE))] == [3, 5]

    after_last = hotplug(conn, domain_name, "--user", "--policy", "after-last")
    filled_after = wait_nics(console, 3)
    assert filled_after.names == ["ens3", "ens5", "ens6"]  # the hole at 4 stays
    assert after_last["guest_name"] == "ens6"

    lowest = hotplug(conn, domain_name, "--user")  # default policy: lowest
    refilled = wait_nics(console, 4)
    print(
        f"\nscenario 5 guest names: {' '.join(unplugged.names)} after the unplug, "
        f"{' '.join(filled_after.names)} after after-last, "
        f"{' '.join(refilled.names)} after the default policy"
    )
    assert refilled.names == ["ens3", "ens4", "ens5", "ens6"]
    assert lowest["guest_name"] == "ens4"
    done(started, boot_time)


def test_6_concurrent_hotplugs(conn, domain_name, guest: Guest, vm_dir, console_log) -> None:
    started = time.monotonic()
    disks = disk_xml(make_disk(vm_dir, "boot", 10), "vda", "boot")
    dom = relayout_define_start(conn, domain_name, guest, vm_dir, console_log, disks)
    console = Console(console_log)
    boot_report(console, nics=2, disks=1)
    boot_time = time.monotonic() - started

    argv = [
        sys.executable,
        "-m",
        "planner",
        "hotplug",
        "-c",
        conn.getURI(),
        domain_name,
        "--user",
        "--json",
    ]
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, f"a concurrent planner hotplug exited {p.returncode}:\n{err}"
    predicted = sorted(json.loads(out)["guest_name"] for out, _ in outputs)
    assert predicted == ["ens5", "ens6", "ens7", "ens8"]

    plugged = wait_nics(console, 6)
    print(f"\nscenario 6 guest names: {' '.join(plugged.names)}")
    assert plugged.names == ["ens3", "ens4", "ens5", "ens6", "ens7", "ens8"]
    assert len({n.mac for n in plugged.nics}) == 6
    # Exactly four NICs were added: none is pending anywhere that the guest has yet to see.
    assert sorted(slot_of(el) for el in interfaces(dom.XMLDesc(0))) == [3, 4, 5, 6, 7, 8]
    assert sorted(slot_of(el) for el in interfaces(dom.XMLDesc(XML_INACTIVE))) == [3, 4, 5, 6, 7, 8]
    done(started, boot_time)


def test_7_first_disk_in_document_order_stays_vda(
    conn, domain_name, guest: Guest, vm_dir, console_log
) -> None:
    started = time.monotonic()
    disks = disk_xml(make_disk(vm_dir, "first", 10), "vda", "first") + disk_xml(
        make_disk(vm_dir, "second", 20), "vdb", "second"
    )
    relayout_define_start(conn, domain_name, guest, vm_dir, console_log, disks)
    console = Console(console_log)
    boot = boot_report(console, nics=2, disks=2)
    boot_time = time.monotonic() - started
    print(
        "\nscenario 7 guest disks: "
        + ", ".join(f"{d.name} serial={d.serial} size={d.size}" for d in boot.disks)
    )
    assert [(d.name, d.serial, d.size) for d in boot.disks] == [
        ("vda", "first", 10 * MB),
        ("vdb", "second", 20 * MB),
    ]
    assert boot.names == ["ens3", "ens4"]
    done(started, boot_time)
