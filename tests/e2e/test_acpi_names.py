"""Guest truth for ACPI index naming: ``relayout --acpi-index`` and ``hotplug`` give eno<N>.

Issue 6's scenarios. The small VM (two virtio NICs on user networking, a VGA card)
is rewritten with ``planner relayout --acpi-index`` before it is defined; every
hot-plug goes through the ``planner hotplug`` CLI in a subprocess. The names are the
guest's own: ``onboard=`` is udev's net_id ID_NET_NAME_ONBOARD, which systemd's default
NamePolicy puts first, and it comes from the ACPI index the guest firmware reports.

1. After relayout the guest shows ``eno1 eno2``; ``planner hotplug DOM --user`` adds
   ``eno3``.
2. After ``eno2`` is unplugged (live and config), the next hot-plug with the default
   policy (``lowest``) gets ``eno2`` again.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree

from .guest import Console, Guest, GuestReport, domain_xml
from .scenario import (
    AFFECT_CONFIG,
    AFFECT_LIVE,
    BOOT_TIMEOUT,
    CHANGE_TIMEOUT,
    XML_INACTIVE,
    hotplug,
    interface_xml,
    planner,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.libvirt]


DEVICES = """
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>
    <video><model type='vga'/></video>
"""


def onboard(report: GuestReport) -> list[str]:
    """The guest's ACPI-index names (ID_NET_NAME_ONBOARD), in PCI order."""
    return [n.onboard for n in report.nics]


def by_mac(report: GuestReport) -> dict[str, str]:
    return {n.mac: n.onboard for n in report.nics}


def acpi_indexes(xml: str) -> dict[str, int]:
    """MAC -> ACPI index of every interface in a domain XML."""
    out = {}
    for el in etree.fromstring(xml.encode()).findall("./devices/interface"):
        a = el.find("acpi")
        if a is not None:
            out[el.find("mac").get("address")] = int(a.get("index"))
    return out


@pytest.mark.parametrize("machine", ["pc", "q35"])
def test_acpi_index_names_eno1_eno2_then_hotplug_eno3_and_refill_eno2(
    conn, domain_name: str, guest: Guest, vm_dir: Path, console_log: Path, machine: str
) -> None:
    started = time.monotonic()
    original = vm_dir / "domain.xml"
    original.write_text(domain_xml(domain_name, guest, console_log, machine, devices_xml=DEVICES))
    laid_out = vm_dir / "domain-acpi.xml"
    planner("relayout", "--acpi-index", str(original), "-o", str(laid_out))
    assert acpi_indexes(laid_out.read_text()) == {"52:54:00:00:00:01": 1, "52:54:00:00:00:02": 2}
    dom = conn.defineXML(laid_out.read_text())
    dom.create()
    console = Console(console_log)

    # 1. relayout --acpi-index: the guest names the NICs eno1 eno2.
    boot = console.wait_for(lambda r: len(r.nics) == 2, timeout=BOOT_TIMEOUT)
    boot_time = time.monotonic() - started
    print(
        f"\n[{machine}] after relayout --acpi-index: guest onboard= {onboard(boot)}, "
        f"names {boot.names}"
    )
    assert by_mac(boot) == {"52:54:00:00:00:01": "eno1", "52:54:00:00:00:02": "eno2"}
    assert boot.names == ["eno1", "eno2"]

    # planner hotplug DOM --user: eno3, as planner predicts.
    first = hotplug(conn, domain_name, "--user")
    assert first["guest_name"] == "eno3"
    plugged = console.wait_for(lambda r: len(r.nics) == 3, timeout=CHANGE_TIMEOUT)
    print(
        f"[{machine}] after planner hotplug --user: guest onboard= {onboard(plugged)}, "
        f"planner predicted {first['guest_name']}"
    )
    assert plugged.names == ["eno1", "eno2", "eno3"]
    (new,) = [n for n in plugged.nics if n.mac not in by_mac(boot)]
    assert (new.onboard, new.name) == ("eno3", "eno3")
    if machine == "pc":  # on q35 the guest's bus number is not libvirt's controller index
        assert new.pci == first["address"]
    assert acpi_indexes(dom.XMLDesc(XML_INACTIVE))[new.mac] == 3  # the next boot keeps it

    # 2. Unplug eno2 (live and config), wait until the guest and libvirt let it go.
    gone = "52:54:00:00:00:02"
    dom.detachDeviceFlags(interface_xml(dom, gone), AFFECT_LIVE | AFFECT_CONFIG)
    unplugged = console.wait_for(lambda r: len(r.nics) == 2, timeout=CHANGE_TIMEOUT)
    print(f"[{machine}] after unplugging eno2: guest onboard= {onboard(unplugged)}")
    assert unplugged.names == ["eno1", "eno3"]
    wait_until("libvirt drops eno2 from the live XML", lambda: interface_xml(dom, gone) is None)
    assert interface_xml(dom, gone, XML_INACTIVE) is None

    # The default policy (lowest) fills the hole: eno2 again.
    second = hotplug(conn, domain_name, "--user")
    assert second["guest_name"] == "eno2"
    refilled = console.wait_for(lambda r: len(r.nics) == 3, timeout=CHANGE_TIMEOUT)
    print(
        f"[{machine}] after planner hotplug --user again: guest onboard= {onboard(refilled)}, "
        f"planner predicted {second['guest_name']}"
    )
    (again,) = [n for n in refilled.nics if n.mac not in by_mac(unplugged)]
    assert (again.onboard, again.name) == ("eno2", "eno2")
    if machine == "pc":
        assert again.pci == second["address"] == "0000:00:04.0"  # eno2's old slot, too
    assert sorted(n.name for n in refilled.nics) == ["eno1", "eno2", "eno3"]
    assert sorted(acpi_indexes(dom.XMLDesc(XML_INACTIVE)).values()) == [1, 2, 3]

    print(
        f"[{machine}] boot to first report: {boot_time:.1f}s, "
        f"test: {time.monotonic() - started:.1f}s"
    )
