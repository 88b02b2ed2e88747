"""q35: NIC root ports first in the guest's scan order, spare ports empty, valid tree."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from planner import relayout
from planner.choice import choose
from planner.errors import NoRoomError
from planner.machines import read_topology
from planner.relayout import nic_names
from planner.topology import Role
from planner.xmldoc import Document

NIC_MODELS = ("virtio", "e1000e", "e1000", "rtl8139")
OTHERS = {
    "disk": "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/{i}.img'/>"
    "<target dev='vd{letter}' bus='virtio'/></disk>",
    "sata": "<disk type='file' device='cdrom'><target dev='sd{letter}' bus='sata'/>"
    "<readonly/></disk>",
    "rng": "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
    "balloon": "<memballoon model='virtio'/>",
    "watchdog": "<watchdog model='i6300esb'/>",
    "serial": "<controller type='virtio-serial'/>",
    "channel": "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
    "</channel>",
    "xhci": "<controller type='usb' model='qemu-xhci'/>",
    "tablet": "<input type='tablet' bus='virtio'/>",
    "sound": "<sound model='ich9'/>",
    "video": "<video><model type='vga'/></video>",
    "port": "<controller type='pci' model='pcie-root-port'/>",
}
SINGLE = {"balloon", "watchdog", "serial", "xhci", "video", "sound"}


def q35_domain(nics: list[str], others: list[str]) -> str:
    devices, disks, satas = [], 0, 0
    for model in nics:
        devices.append(f"<interface type='user'><model type='{model}'/></interface>")
    for i, kind in enumerate(others):
        letter = ""
        if kind == "disk":
            letter, disks = "abcdefghij"[disks], disks + 1
        elif kind == "sata":
            letter, satas = "abcdefghij"[satas], satas + 1
        devices.append(OTHERS[kind].format(i=i, letter=letter))
    body = "\n    ".join(devices)
    return f"""<domain type='qemu'>
  <name>q</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    {body}
  </devices>
</domain>
"""


@st.composite
def domains(draw):
    nics = draw(st.lists(st.sampled_from(NIC_MODELS), max_size=6))
    kinds = draw(st.lists(st.sampled_from(sorted(OTHERS)), max_size=12))
    seen, others = set(), []
    for k in kinds:
        if k in SINGLE and k in seen:
            continue
        if k in ("disk", "sata") and kinds[: len(others)].count(k) >= 8:
            continue
        seen.add(k)
        others.append(k)
    spare = draw(st.integers(min_value=0, max_value=6))
    return q35_domain(nics, others), spare


def _output_topology(xml: str):
    return read_topology(Document.parse(xml))


@given(domains())
def test_q35_layout_invariants(case):
    xml, spare = case
    result = relayout(xml, spare_ports=spare)
    out = _output_topology(result.xml)
    plan, layout = result.plan, result.plan.layout

    # No two PCI functions collide, and every PCI device has an explicit address.
    addrs = [d.address for d in out.devices]
    assert None not in addrs
    assert len(set(addrs)) == len(addrs)

    # The controller tree is valid: every bus exists; root ports sit on pcie-root.
    for d in out.devices:
        assert d.address.bus in out.buses
        if d.provides_bus is not None and out.buses[d.provides_bus].model == "pcie-root-port":
            assert d.address.bus == 0 and d.provides_bus > 0

    # NIC ports come first in the guest's scan order: enp1s0..enpNs0 in document order.
    names = [name for _, _, name in nic_names(plan)]
    assert names == [f"enp{i}s0" for i in range(1, len(names) + 1)]

    # Spare NIC ports and spare ports for other devices are empty.
    nic_buses = [a.bus for _, a, _ in nic_names(plan)]
    spares = [p for p in layout.nic_ports if p not in nic_buses]
    assert len(spares) >= max(spare, 1)
    used = {d.address.bus for d in out.devices}
    assert not used & set(spares)
    assert not used & set(layout.spare_other_ports)
    # ... and no non-NIC device sits on a NIC port.
    assert all(d.role is Role.NIC for d in out.devices if d.address.bus in layout.nic_ports)

    # Idempotent, byte for byte.
    assert relayout(result.xml).xml == result.xml


def test_nics_get_enp1_and_enp2_and_the_watchdog_needs_no_bridge():
    xml = q35_domain(["virtio", "virtio"], ["serial", "disk", "balloon", "watchdog", "video"])
    result = relayout(xml)
    assert [n for _, _, n in nic_names(result.plan)] == ["enp1s0", "enp2s0"]
    assert "pcie-to-pci-bridge" not in result.xml
    assert result.plan.layout.nic_ports[:2] == (1, 2)


def test_hotplug_takes_the_first_empty_nic_port_and_a_disk_a_spare_port():
    result = relayout(q35_domain(["virtio", "virtio"], ["disk"]), spare_ports=2)
    topo = _output_topology(result.xml)
    lay = result.plan.layout
    nic = choose([topo], "interface")
    assert nic.address.bus == lay.nic_ports[2] and nic.address.slot == 0
    disk = choose([topo], "disk")
    assert disk.address.bus == lay.spare_other_ports[0]


def test_hotplug_refuses_when_no_nic_port_is_left():
    result = relayout(q35_domain(["virtio"], []), spare_ports=1)
    xml = result.xml.replace(
        "</devices>",
        f"<interface type='user'><address type='pci' domain='0' "
        f"bus='{result.plan.layout.nic_ports[1]}' slot='0' function='0'/></interface></devices>",
    )
    try:
        choose([_output_topology(xml)], "interface")
    except NoRoomError as exc:
        assert "root ports cannot be added" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected NoRoomError")


def test_existing_root_ports_are_reused_and_indexed_explicitly():
    xml = q35_domain(["virtio"], ["port", "port", "disk"])
    result = relayout(xml, spare_ports=1)
    assert result.xml.count("model='pcie-root-port'") >= 2
    out = _output_topology(result.xml)
    for el in Document.parse(result.xml).root.iter("controller"):
        if el.get("type") == "pci":
            assert el.get("index") is not None
    assert [n for _, _, n in nic_names(result.plan)] == ["enp1s0"]
    assert len(out.buses) == len(set(out.buses))
