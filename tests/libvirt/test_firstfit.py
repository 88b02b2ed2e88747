"""planner.firstfit against libvirt itself: where a device without an address lands.

Each case defines and starts a TCG domain without a guest OS (i440fx with <acpi/>, or
q35), predicts from its live and persistent XML where libvirt will put a NIC or a
virtio disk attached without an address, then attaches it as ``virsh attach-device
--live --config`` does (``attachDeviceFlags(LIVE|CONFIG)``) and reads back where
libvirt put it, in the live and in the persistent XML. Where libvirt refuses the live
part (no hot-pluggable slot), LIVE and CONFIG are attached separately: the persistent
choice does not depend on the live one (libvirt copies the device before either).
"""

from __future__ import annotations

import os

import pytest
from lxml import etree

from planner.firstfit import connect_type, guest_name, predict_from_xml
from planner.machines import read_topology
from planner.pci import PciAddress
from planner.relayout import relayout
from planner.xmldoc import Document

pytestmark = pytest.mark.libvirt

AFFECT_LIVE, AFFECT_CONFIG, XML_INACTIVE = 1, 2, 2
NEW_MAC = "52:54:00:aa:00:01"
NEW_NIC = f"<interface type='user'><mac address='{NEW_MAC}'/><model type='virtio'/></interface>"
RESULTS: list[str] = []
VGA = "<video><model type='vga'/></video>\n"


def nic(i: int, addr: str = "") -> str:
    return (
        f"<interface type='user'><mac address='52:54:00:00:00:{i:02x}'/>"
        f"<model type='virtio'/>{addr}</interface>\n"
    )


def pci(bus: int, slot: int, fn: int = 0, multi: bool = False) -> str:
    m = " multifunction='on'" if multi else ""
    return f"<address type='pci' domain='0' bus='{bus:#x}' slot='{slot:#x}' function='{fn}'{m}/>"


def domain(name: str, machine: str, devices: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <features><acpi/></features>
  <devices>
{devices}
  </devices>
</domain>
"""


def small_vm(disk_image: str) -> str:
    """The project's small VM, no addresses: 2 NICs, virtio-serial, a disk, vga, balloon,
    watchdog."""
    return (
        nic(1)
        + nic(2)
        + "<controller type='virtio-serial'/>\n"
        + f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{disk_image}'/><target dev='vda' bus='virtio'/></disk>\n"
        "<video><model type='vga'/></video>\n<memballoon model='virtio'/>\n"
        "<watchdog model='i6300esb' action='none'/>\n"
    )


def fill_pc_bus0(first: int, last: int) -> str:
    """virtio-serial controllers at 00:first..00:last (cheap devices that take a slot)."""
    return "".join(
        f"<controller type='virtio-serial' index='{i}'>{pci(0, s)}</controller>\n"
        for i, s in enumerate(range(first, last + 1))
    )


def where(xml: str, kind: str) -> PciAddress | None:
    root = etree.fromstring(xml.encode())
    if kind == "interface":
        els = [
            el
            for el in root.iterfind("devices/interface")
            if el.find("mac").get("address") == NEW_MAC
        ]
    else:
        els = [el for el in root.iterfind("devices/disk") if el.find("target").get("dev") == "vdz"]
    if not els:
        return None
    a = els[0].find("address")
    return PciAddress(*(int(a.get(k), 16) for k in ("domain", "bus", "slot", "function")))


@pytest.fixture
def image(tmp_path):
    tmp_path.chmod(0o755)

    def make(name: str) -> str:
        path = tmp_path / f"{name}.raw"
        path.write_bytes(b"")
        path.chmod(0o666)
        os.truncate(path, 1 << 20)
        return str(path)

    return make


def run_case(conn, label, xml, kind, device, setup=None, separately=False, model="virtio"):
    dom = conn.defineXML(xml)
    dom.create()
    if setup is not None:
        setup(dom)
    live_xml, config_xml = dom.XMLDesc(0), dom.XMLDesc(XML_INACTIVE)
    predicted = predict_from_xml(live_xml, config_xml, kind, model)
    if separately:
        if predicted.live is None:
            with pytest.raises(Exception, match="No more available PCI slots"):
                dom.attachDeviceFlags(device, AFFECT_LIVE)
        else:
            dom.attachDeviceFlags(device, AFFECT_LIVE)
        dom.attachDeviceFlags(device, AFFECT_CONFIG)
    else:
        dom.attachDeviceFlags(device, AFFECT_LIVE | AFFECT_CONFIG)
    actual = (where(dom.XMLDesc(0), kind), where(dom.XMLDesc(XML_INACTIVE), kind))
    line = (
        f"{label}: predicted live {predicted.live} config {predicted.config}; "
        f"libvirt live {actual[0]} config {actual[1]}"
    )
    RESULTS.append(line)
    print(f"\nfirst-fit {line}")
    assert (predicted.live, predicted.config) == actual, line
    return predicted, actual, dom, (live_xml, config_xml)


def _topo(xml: str):
    return read_topology(Document.parse(xml))


def disk_device(image) -> str:
    return (
        f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{image('new')}'/><target dev='vdz' bus='virtio'/></disk>"
    )


# --- i440fx ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["interface", "disk"])
def test_pc_libvirt_default_layout_next_device_goes_to_slot_9(conn, domain_name, image, kind):
    xml = domain(domain_name, "pc", small_vm(image("vda")))
    device = NEW_NIC if kind == "interface" else disk_device(image)
    predicted, _, dom, before = run_case(conn, f"pc default layout, {kind}", xml, kind, device)
    assert predicted.live == PciAddress(0, 0, 9, 0)  # ens9: the problem planner exists for
    if kind == "interface":  # the guest's name, as tests/e2e/test_guest_baseline.py sees it
        assert guest_name(_topo(before[0]), predicted.live) == "ens9"


@pytest.mark.parametrize("kind", ["interface", "disk"])
def test_pc_laid_out_next_device_fills_the_nic_range(conn, domain_name, image, kind):
    xml = relayout(domain(domain_name, "pc", small_vm(image("vda")))).xml
    device = NEW_NIC if kind == "interface" else disk_device(image)
    predicted, *_ = run_case(conn, f"pc laid out, {kind}", xml, kind, device)
    assert predicted.live == PciAddress(0, 0, 5, 0)


def test_pc_hole_only_in_the_config_live_and_config_differ(conn, domain_name, image):
    """ens4 detached from the config only: the config reuses slot 4, live goes to 6."""
    xml = relayout(domain(domain_name, "pc", nic(1) + nic(2) + nic(3) + VGA)).xml

    def detach_config(dom):
        (el,) = [
            e
            for e in etree.fromstring(dom.XMLDesc(XML_INACTIVE).encode()).iterfind(
                "devices/interface"
            )
            if e.find("address").get("slot") == "0x04"
        ]
        dom.detachDeviceFlags(etree.tostring(el, encoding="unicode"), AFFECT_CONFIG)

    predicted, *_ = run_case(
        conn, "pc hole in config only", xml, "interface", NEW_NIC, detach_config
    )
    assert (predicted.live.slot, predicted.config.slot) == (6, 4)


def test_pc_unplug_the_guest_never_acknowledged(conn, domain_name, image):
    """LIVE|CONFIG detach of ens4 with no guest OS: pending live, gone from the config."""
    xml = relayout(domain(domain_name, "pc", nic(1) + nic(2) + nic(3) + VGA)).xml

    def detach_both(dom):
        (el,) = [
            e
            for e in etree.fromstring(dom.XMLDesc(0).encode()).iterfind("devices/interface")
            if e.find("address").get("slot") == "0x04"
        ]
        dom.detachDeviceFlags(etree.tostring(el, encoding="unicode"), AFFECT_LIVE | AFFECT_CONFIG)

    predicted, *_ = run_case(conn, "pc pending unplug", xml, "interface", NEW_NIC, detach_both)
    assert (predicted.live.slot, predicted.config.slot) == (6, 4)


def test_pc_without_video_nothing_keeps_slot_2(conn, domain_name):
    """libvirt 9.0 reserves slot 2 only for a primary video: the NIC took it at define,
    the memballoon 3, so the next device gets 4."""
    xml = domain(domain_name, "pc", nic(1))
    predicted, *_ = run_case(conn, "pc without video", xml, "interface", NEW_NIC)
    assert predicted.live == predicted.config == PciAddress(0, 0, 4, 0)


def test_pc_bus_0_before_a_pci_bridge(conn, domain_name):
    devs = (
        "<controller type='pci' index='1' model='pci-bridge'/>\n"
        + nic(1)
        + "<video><model type='vga'/></video>\n"
    )
    predicted, *_ = run_case(
        conn, "pc with pci-bridge", domain(domain_name, "pc", devs), "interface", NEW_NIC
    )
    assert predicted.live.bus == 0


def test_pc_bus_0_full_goes_behind_the_pci_bridge(conn, domain_name):
    devs = (
        f"<controller type='pci' index='1' model='pci-bridge'>{pci(0, 0x1F)}</controller>\n"
        + "<video><model type='vga'/>"
        + pci(0, 2)
        + "</video>\n"
        + fill_pc_bus0(3, 0x1E)
        + "<memballoon model='none'/>\n"
    )
    predicted, *_ = run_case(
        conn, "pc bus 0 full, pci-bridge", domain(domain_name, "pc", devs), "interface", NEW_NIC
    )
    assert predicted.live == predicted.config == PciAddress(0, 1, 1, 0)


def test_pc_one_free_slot_live_takes_it_the_config_adds_a_bridge(conn, domain_name):
    devs = (
        "<video><model type='vga'/>"
        + pci(0, 2)
        + "</video>\n"
        + fill_pc_bus0(3, 0x1E)
        + "<memballoon model='none'/>\n"
    )
    predicted, _, dom, before = run_case(
        conn, "pc one free slot", domain(domain_name, "pc", devs), "interface", NEW_NIC
    )
    assert predicted.live == PciAddress(0, 0, 0x1F, 0)
    assert predicted.config == PciAddress(0, 1, 1, 0)
    (bridge,) = predicted.added
    assert (bridge.index, bridge.model, bridge.address) == (
        1,
        "pci-bridge",
        PciAddress(0, 0, 0x1F, 0),
    )
    root = etree.fromstring(dom.XMLDesc(XML_INACTIVE).encode())
    (ctrl,) = root.findall("devices/controller[@model='pci-bridge']")
    assert ctrl.find("address").get("slot") == "0x1f"


def test_pc_bus_0_full_no_bridge_libvirt_refuses_both(conn, domain_name):
    devs = (
        "<video><model type='vga'/>"
        + pci(0, 2)
        + "</video>\n"
        + fill_pc_bus0(3, 0x1F)
        + "<memballoon model='none'/>\n"
    )
    dom = conn.defineXML(domain(domain_name, "pc", devs))
    dom.create()
    predicted = predict_from_xml(dom.XMLDesc(0), dom.XMLDesc(XML_INACTIVE))
    assert (predicted.live, predicted.config) == (None, None)
    with pytest.raises(Exception):  # noqa: B017 - libvirt.libvirtError
        dom.attachDeviceFlags(NEW_NIC, AFFECT_LIVE)
    with pytest.raises(Exception):  # noqa: B017
        dom.attachDeviceFlags(NEW_NIC, AFFECT_CONFIG)
    RESULTS.append("pc bus 0 full: predicted live None config None; libvirt refused both")
    print(f"\nfirst-fit {RESULTS[-1]}")


# --- q35 -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["interface", "disk"])
def test_q35_libvirt_default_layout_uses_the_spare_root_port(conn, domain_name, image, kind):
    xml = domain(domain_name, "q35", small_vm(image("vda")))
    device = NEW_NIC if kind == "interface" else disk_device(image)
    predicted, _, dom, before = run_case(conn, f"q35 default layout, {kind}", xml, kind, device)
    assert predicted.live.slot == 0 and predicted.live.bus > 0
    if kind == "interface":  # as tests/e2e/test_q35_names.py's baseline guest says
        assert guest_name(_topo(before[0]), predicted.live) == "enp9s0"


def test_q35_a_conventional_pci_nic_goes_behind_the_pcie_to_pci_bridge(conn, domain_name, image):
    """An e1000 is conventional PCI: not into a root port, but into the pcie-to-pci-bridge
    libvirt added for the watchdog (slot 1 taken by it)."""
    xml = domain(domain_name, "q35", small_vm(image("vda")))
    e1000 = NEW_NIC.replace("virtio", "e1000")
    predicted, *_ = run_case(
        conn, "q35 default layout, e1000", xml, "interface", e1000, model="e1000"
    )
    assert predicted.live.slot == 2 and predicted.live.bus > 0


def test_q35_laid_out_first_empty_port(conn, domain_name, image):
    xml = relayout(domain(domain_name, "q35", small_vm(image("vda")))).xml
    predicted, *_ = run_case(conn, "q35 laid out", xml, "interface", NEW_NIC)
    assert predicted.live == PciAddress(0, 3, 0, 0)  # the first spare NIC port: enp3s0


def _q35_ports(ports: list[tuple[int, int, str]], nics: dict[int, int]) -> str:
    """Root ports (index, function of 00:02, extra target XML) and NICs {port index: mac}."""
    out = "<controller type='usb' model='none'/>\n<memballoon model='none'/>\n"
    out += "<video><model type='vga'/>" + pci(0, 1) + "</video>\n"
    for index, fn, target in ports:
        out += (
            f"<controller type='pci' index='{index}' model='pcie-root-port'>{target}"
            + pci(0, 2, fn, multi=fn == 0)
            + "</controller>\n"
        )
    for port, mac in nics.items():
        out += nic(mac, pci(port, 0))
    return out


def test_q35_all_ports_taken_live_fails_the_config_gains_a_port(conn, domain_name):
    devs = _q35_ports([(1, 0, ""), (2, 1, "")], {1: 1, 2: 2})
    predicted, _, dom, before = run_case(
        conn,
        "q35 all ports taken",
        domain(domain_name, "q35", devs),
        "interface",
        NEW_NIC,
        separately=True,
    )
    assert predicted.live is None
    assert predicted.config == PciAddress(0, 3, 0, 0)
    topo = _topo(before[1])  # the persistent XML before the attach: 2 ports
    assert guest_name(topo, predicted.config, predicted.added) == "enp3s0"
    (port,) = predicted.added
    assert (port.model, port.address) == ("pcie-root-port", PciAddress(0, 0, 2, 2))
    root = etree.fromstring(dom.XMLDesc(XML_INACTIVE).encode())
    (new,) = root.findall("devices/controller[@index='3']")
    assert new.find("address").get("function") == "0x2"


def test_q35_a_port_without_hotplug_serves_the_config_only(conn, domain_name):
    devs = _q35_ports([(1, 0, ""), (2, 1, "<target hotplug='off'/>"), (3, 2, "")], {1: 1})
    predicted, *_ = run_case(
        conn, "q35 hotplug='off' port", domain(domain_name, "q35", devs), "interface", NEW_NIC
    )
    assert (predicted.live.bus, predicted.config.bus) == (3, 2)


# --- pure ------------------------------------------------------------------------------


def _addressed(machine: str, devices: str) -> str:
    return domain("x", machine, devices)


def test_pure_pc_one_free_slot_without_libvirt():
    """The same prediction from hand-written XML (no daemon): live 00:1f, config 01:01."""
    xml = _addressed(
        "pc",
        "<controller type='pci' index='0' model='pci-root'/>\n"
        + "<video><model type='vga'/>"
        + pci(0, 2)
        + "</video>\n"
        + fill_pc_bus0(3, 0x1E),
    )
    ff = predict_from_xml(xml, xml)
    assert (ff.live, ff.config) == (PciAddress(0, 0, 0x1F, 0), PciAddress(0, 1, 1, 0))
    assert [(a.index, a.model, a.address) for a in ff.added] == [
        (1, "pci-bridge", PciAddress(0, 0, 0x1F, 0))
    ]


def test_pure_q35_hotplug_off_and_not_running():
    devs = _q35_ports([(1, 0, ""), (2, 1, "<target hotplug='off'/>"), (3, 2, "")], {1: 1})
    xml = _addressed("q35", "<controller type='pci' index='0' model='pcie-root'/>\n" + devs)
    assert predict_from_xml(xml, xml)[:2] == (PciAddress(0, 3, 0, 0), PciAddress(0, 2, 0, 0))
    assert predict_from_xml(None, xml)[:2] == (None, PciAddress(0, 2, 0, 0))
    assert predict_from_xml(xml, None)[:2] == (PciAddress(0, 3, 0, 0), None)


def test_connect_types():
    assert connect_type("pc", "interface", "virtio") == "pci"
    assert connect_type("q35", "interface", "virtio") == "pcie"
    assert connect_type("q35", "interface", "e1000e") == "pcie"
    assert connect_type("q35", "interface", "e1000") == "pci"
    assert connect_type("q35", "interface", "virtio-transitional") == "pci"
    assert connect_type("q35", "disk") == "pcie"


def test_zz_summary():
    """Prints every comparison made in this run (pytest -s)."""
    print("\nfirst-fit summary:\n" + "\n".join(RESULTS))
