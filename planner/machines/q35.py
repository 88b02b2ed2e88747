"""q35 (``q35``, ``pc-q35-*``, PCIe): one pcie-root-port per device, NIC ports first in scan order.

On q35 devices are hot-plugged into pcie-root-ports; pcie-root itself takes no
hot-plug and a running guest cannot gain root ports. The guest names a NIC
``enp<bus>s0``, where ``<bus>`` is the bus number it gives the NIC's root port
while it enumerates the PCI tree depth first, in address order. So the root
ports are placed on pcie-root (slot 2 functions 0-7, then slot 3, ..., as
libvirt packs them) in this order:

    NIC ports        one per NIC, in document order: guest buses 1..n
    spare NIC ports  empty, for NICs hot-plugged later (--spare-ports)
    other ports      the other devices, in their original order; a
                     pcie-to-pci-bridge stays on its port, with its devices
    spare ports      empty, for other devices hot-plugged later

Integrated devices libvirt pins on pcie-root (primary video 01.0, ICH9 USB 1d,
ICH9 sound 1b.0, SATA 1f.2, a dmi-to-pci-bridge) stay where they are.

Hot-plug: a device goes into an empty pcie-root-port of its part of the layout.
A running guest cannot gain root ports, so when the NIC ports are all taken the
hot-plug is refused rather than spilling into ports kept for other devices; a
domain never laid out has no ports to spare and is refused too. Every NIC gets
the path name ``enp<bus>s<slot>``: pcie-root has no ACPI hot-plug slots.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

from lxml import etree

from .. import devices
from ..errors import ImpossibleError, NoRoomError
from ..layout import LayoutRecord, ints
from ..names import path_name
from ..pci import MAX_BUS, MAX_SLOT, PciAddress, parse_index
from ..plan import NewController, Placement, Plan
from ..policy import Policy
from ..topology import Device, Role, Topology, occupied

name = "q35"
root_model = "pcie-root"
# virtio, e1000e and igb connect as PCIe (qemuDomainDeviceCalculatePCIConnectFlags)
pcie = True
builtin_sata0 = True  # the ICH9 AHCI controller 0 at 1f.2 is part of the chipset
# Functions the chipset holds that no device element shows, which libvirt reserves
# (qemuDomainValidateDevicePCISlotsQ35): the ICH9 LPC bridge 1f.0 and SMBus 1f.3.
reserved = (PciAddress(0, 0, 0x1F, 0), PciAddress(0, 0, 0x1F, 3))
_TYPES = re.compile(r"^(q35|pc-q35-.*)$")
ROOT_PORT = "pcie-root-port"
FIRST_PORT_SLOT = 2  # slot 1 is the primary video's
USB2_SLOT, USB2_SLOT_2 = 0x1D, 0x1A  # ICH9 USB2 controllers 0: 1d, or 1a if 1d is held
# qemuDomainValidateDevicePCISlotsQ35: the first dmi-to-pci-bridge without an address
# goes to 00:1e.0 if that slot is free (measured: a second one, first-fit).
DMI_SLOT = 0x1E


def matches(machine_type: str) -> bool:
    return bool(_TYPES.match(machine_type))


def owns_record(recorded: str | None) -> bool:
    return recorded == name


@dataclass(frozen=True)
class Q35Layout:
    """``nic_ports`` are the controller indexes of the root ports that form the NIC
    range, in the guest's enumeration order; ``other_ports`` hold other devices and
    ``spare_other_ports`` are kept empty for hot-plugged non-NIC devices."""

    machine: ClassVar[str] = name
    policy: Policy
    nic_ports: tuple[int, ...] = ()
    other_ports: tuple[int, ...] = ()
    spare_other_ports: tuple[int, ...] = ()

    @property
    def nic_slots(self) -> range:
        """Slots of bus 0 kept for NICs: none, NICs have root ports of their own."""
        return range(0)

    def policy_attrs(self) -> dict[str, str]:
        p = self.policy
        return {"spare-ports": str(p.spare_ports), "spare-other-ports": str(p.spare_other_ports)}

    def nics_attrs(self) -> dict[str, str]:
        return {"ports": " ".join(map(str, self.nic_ports))}

    def others_attrs(self) -> dict[str, str]:
        return {
            "ports": " ".join(map(str, self.other_ports)),
            "spare-ports": " ".join(map(str, self.spare_other_ports)),
        }

    def as_json(self) -> dict:
        return {
            "nic_ports": list(self.nic_ports),
            "other_ports": list(self.other_ports),
            "spare_other_ports": list(self.spare_other_ports),
        }


def read_layout(policy: Policy, nics: etree._Element, others: etree._Element) -> Q35Layout:
    return Q35Layout(
        policy,
        nic_ports=ints(nics.get("ports")),
        other_ports=ints(others.get("ports")),
        spare_other_ports=ints(others.get("spare-ports")),
    )


def fixed_address(el: etree._Element, primary_video, index: int | None = None) -> PciAddress | None:
    """Integrated devices libvirt pins on pcie-root (qemuDomainValidateDevicePCISlotsQ35).

    The ICH9 SATA controller 0 at 1f.2, the primary video at 01.0, the ICH9 USB2
    controllers 0 at 1d, an ICH9 sound card at 1b.0.
    """
    if el.tag == "controller":
        ctype = el.get("type")
        if index is None:
            index = parse_index(el.get("index", "0"))
        if ctype == "sata" and index == 0:
            return PciAddress(0, 0, 0x1F, 2)
        model = el.get("model", "")
        if ctype == "usb" and index == 0 and model in devices.USB2_FUNCTIONS:
            return PciAddress(0, 0, 0x1D, devices.USB2_FUNCTIONS[model])
    if el is primary_video:
        return PciAddress(0, 0, 1, 0)
    if el.tag == "sound" and el.get("model") == "ich9":
        return PciAddress(0, 0, 0x1B, 0)
    return None


def implicit_devices(devs: etree._Element, quote: str) -> list[tuple[str, str, str]]:
    """libvirt gives a q35 domain without a USB controller a qemu-xhci one
    (qemuDomainDefAddDefaultDevices; qemu_postparse.c in newer libvirt), which takes a
    root port like any device."""
    q = quote
    if any(c.get("type") == "usb" for c in devs.findall("controller")):
        return []
    return [
        (
            "controller",
            "qemu-xhci",
            f"<controller type={q}usb{q} index={q}0{q} model={q}qemu-xhci{q}/>",
        )
    ]


def nic_name(addr: PciAddress, bus_numbers: dict[int, int], func: str) -> str:
    """Always the path name: the guest's number of the NIC's bus, not libvirt's index."""
    return path_name(addr, bus_numbers, func)


def free_slots(topo: Topology, layout: LayoutRecord | None, used: set[tuple[int, int]]):
    """Empty root ports, those of the NIC range marked ``nic-reserved``."""
    nic_ports = set(layout.nic_ports) if layout else set()
    busy = {bus for bus, _ in used}
    return [
        {"slots": f"port {i}", "role": "nic-reserved" if i in nic_ports else "free"}
        for i, b in sorted(topo.buses.items())
        if b.model == ROOT_PORT and i not in busy
    ]


# --- hot-plug -------------------------------------------------------------------------


def derived_layout(topos: list[Topology]) -> tuple[Q35Layout, tuple[str, ...]]:
    raise NoRoomError(
        f"{name} domain has no planner layout: relayout it first "
        "(`planner relayout --domain NAME --define`, effective at next boot)"
    )


def choose(topos: list[Topology], layout: Q35Layout, kind: str, policy: str) -> PciAddress:
    """An empty root port of the device's part of the layout, at slot 0 of its bus."""
    used = {bus for bus, _ in occupied(topos)}
    if kind == "interface":
        ports = list(layout.nic_ports)
        if policy == "after-last":
            nic_buses = {
                d.address.bus for t in topos for d in t.devices if d.role is Role.NIC and d.address
            }
            last = max((i for i, p in enumerate(ports) if p in nic_buses), default=-1)
            ports = ports[last + 1 :]
        free = [p for p in ports if p not in used]
        if not free:
            raise NoRoomError(
                "no empty NIC root port left (root ports cannot be added to a "
                "running guest; relayout with more spare NIC ports for the next boot)",
                limit=len(layout.nic_ports),
            )
    else:
        free = [p for p in layout.spare_other_ports if p not in used]
        if not free:
            raise NoRoomError(
                "no spare root port left for a non-NIC device "
                "(root ports cannot be added to a running guest)",
                limit=len(layout.spare_other_ports),
            )
    return PciAddress(0, free[0], 0, 0)


# --- the cold layout ------------------------------------------------------------------


def plan(topo: Topology, policy: Policy) -> Plan:
    # Root ports on pcie-root that are PCI devices: one with a non-PCI address (libvirt
    # keeps <address type='isa'/>) is no device of the plan and is left alone.
    ports = {
        d.provides_bus
        for d in topo.devices
        if d.provides_bus is not None
        and topo.buses[d.provides_bus].model == ROOT_PORT
        and (d.address is None or d.address.bus == 0)
    }
    ports &= {d.provides_bus for d in topo.devices}  # not one whose address is not PCI
    port_dev = {d.provides_bus: d for d in topo.devices if d.provides_bus in ports}
    on_bus: dict[int, list[Device]] = defaultdict(list)
    for d in topo.devices:
        if d.address is not None:
            on_bus[d.address.bus].append(d)

    placements: dict[int, Placement] = {}  # id(device) -> placement
    # libvirt pins the primary video to 01.0 and the first ICH9 sound card to 1b.0 only while
    # no device of the domain holds that slot (qemuDomainValidateDevicePCISlotsQ35); else
    # they are placed like any other device
    held = {d.address.slot for d in topo.devices if d.address and _stays(d, ports)}
    displaced, pinned = set(), {}
    for d in topo.devices:
        if d.address is None and d.fixed_at is not None and d.kind in ("video", "sound"):
            if d.fixed_at.slot in held:
                displaced.add(id(d))
            held.add(d.fixed_at.slot)
    # the ICH9 USB2 controllers of index 0 go to 1d, or to 1a while a device holds 1d
    usb2_moves = USB2_SLOT in held and USB2_SLOT_2 not in held
    for d in topo.devices:
        if d.address is None and d.usb2 is not None and d.fixed_at is not None and usb2_moves:
            pinned[id(d)] = PciAddress(0, 0, USB2_SLOT_2, d.fixed_at.function)
    stays = [d for d in topo.devices if _stays(d, ports) and id(d) not in displaced]
    for d in stays:
        placements[id(d)] = Placement(d, d.address or pinned.get(id(d), d.fixed_at))
    root_used = {p.address.slot for p in placements.values() if p.address.bus == 0}

    # NIC units: a NIC alone at slot 0 of a root port keeps that port.
    nic_units: list[tuple[int | None, Device]] = []
    kept: set[int] = set()
    for nic in topo.nics:
        a = nic.address
        alone = a and a.bus in ports and a.slot == 0 and a.function == 0 and len(on_bus[a.bus]) == 1
        if alone and a.bus not in kept:
            kept.add(a.bus)
            nic_units.append((a.bus, nic))
        else:
            nic_units.append((None, nic))

    # Other units: root ports with non-NIC content (by address), then devices
    # that need a port of their own (in libvirt's assignment order).
    def content(i: int) -> list[Device]:
        return [d for d in on_bus[i] if d.role is not Role.NIC]

    busy_ports = sorted(
        (i for i in ports if i not in kept and content(i)), key=lambda i: _port_key(topo, i)
    )
    loose = sorted(
        (
            d
            for d in topo.devices
            if d.address is None
            and d.role is not Role.NIC
            and d.provides_bus not in ports
            and id(d) not in placements
        ),
        key=lambda d: (d.rank, d.order),
    )
    integrated = [d for d in loose if d.integrated or _root_only(topo, d)]
    loose = [d for d in loose if d not in integrated]
    for d, addr in _behind_controllers(topo, [d for d in loose if _plugs_behind(topo, d)]):
        placements[id(d)] = Placement(d, addr)
    loose = [d for d in loose if id(d) not in placements]
    empty = sorted(
        (i for i in ports if i not in kept and not content(i)), key=lambda i: _port_key(topo, i)
    )

    units: list[tuple[str, int | None, Device | None]] = []  # (part, existing port, device)
    units += [("nic", port, nic) for port, nic in nic_units]
    units += [("nic-spare", None, None)] * max(policy.spare_ports, 1)
    units += [("other", i, None) for i in busy_ports]
    units += [("other", None, d) for d in loose]
    units += [("spare", None, None)] * policy.spare_other_ports

    next_index = max(topo.buses) + 1
    reuse = iter(empty)
    port_of_unit: list[int] = []
    new_ports: set[int] = set()
    for _, port, _ in units:
        if port is None:
            port = next(reuse, None)
        if port is None:
            if next_index > MAX_BUS:
                raise ImpossibleError(
                    f"{len(units)} root ports are needed, but a new one would have controller "
                    f"index {next_index}: libvirt's maximum is {MAX_BUS}",
                    limit=MAX_BUS,
                )
            port, next_index = next_index, next_index + 1
            new_ports.add(port)
        port_of_unit.append(port)
    leftover = list(reuse)  # empty root ports nobody needs: kept as spares
    units += [("spare", i, None) for i in leftover]
    port_of_unit += leftover

    slots = _port_slots(root_used, len(units))
    per_slot = defaultdict(int)
    for slot, _ in slots:
        per_slot[slot] += 1
    new_controllers = []
    for (_, _, dev), port, (slot, fn) in zip(units, port_of_unit, slots):
        addr = PciAddress(0, 0, slot, fn)
        multi = fn == 0 and per_slot[slot] > 1
        if port in new_ports:
            target = (("chassis", str(port)), ("port", f"0x{(slot << 3) + fn:x}"))
            new_controllers.append(
                NewController(port, ROOT_PORT, addr, target, multifunction=multi)
            )
        else:
            d = port_dev[port]
            placements[id(d)] = Placement(
                d, addr, True if multi else (False if d.multifunction else None)
            )
        if dev is not None:
            placements[id(dev)] = Placement(
                dev, PciAddress(0, port, 0, 0), False if dev.multifunction else None
            )

    for i in busy_ports:  # their content keeps its address on the (moved) port
        for d in on_bus[i]:
            placements.setdefault(id(d), Placement(d, d.address))
    for d in topo.devices:  # behind other bridges: unchanged
        if id(d) not in placements and d.address is not None and _behind_bridge(d, ports):
            placements[id(d)] = Placement(d, d.address)
    used_now = {p.address.slot for p in placements.values() if p.address.bus == 0}
    used_now |= {slot for slot, _ in slots} | {a.slot for a in reserved}
    for d in integrated:  # first-fit on pcie-root, as libvirt (a virtio-iommu at 01.0)
        prefer = [DMI_SLOT] if d.provides_bus is not None else []
        free = next((s for s in [*prefer, *range(1, MAX_SLOT + 1)] if s not in used_now), None)
        if free is None:
            raise ImpossibleError(f"no slot on pcie-root left for the integrated {d.label}")
        used_now.add(free)
        placements[id(d)] = Placement(d, PciAddress(0, 0, free, 0))

    parts = defaultdict(list)
    for (part, _, _), port in zip(units, port_of_unit):
        parts[part].append(port)
    layout = Q35Layout(
        policy,
        nic_ports=tuple(parts["nic"] + parts["nic-spare"]),
        other_ports=tuple(parts["other"]),
        spare_other_ports=tuple(parts["spare"]),
    )
    order = {id(d): i for i, d in enumerate(topo.devices)}
    missing = [d for d in topo.devices if id(d) not in placements]
    if missing:
        raise ImpossibleError(f"cannot place {missing[0].label} on q35")
    ordered = sorted(placements.values(), key=lambda p: order[id(p.device)])
    new_controllers.sort(key=lambda c: c.index)
    return Plan(topo, policy, layout, tuple(ordered), tuple(new_controllers))


def _root_only(topo: Topology, d: Device) -> bool:
    """A PCI controller only pcie-root takes (a dmi-to-pci-bridge; root ports aside):
    it goes on pcie-root itself, not behind a root port of its own."""
    if d.provides_bus is None or topo.buses[d.provides_bus].model == ROOT_PORT:
        return False
    model = topo.buses[d.provides_bus].model
    takers = {m for m, (accepts, _) in devices.BUS_ACCEPTS.items() if model in accepts}
    return bool(takers) and takers <= {"pcie-root", "pcie-expander-bus"}


def _plugs_behind(topo: Topology, d: Device) -> bool:
    """A PCI controller no root port and not pcie-root accepts (a pci-bridge, a switch's
    downstream port): libvirt plugs it into another controller's bus."""
    if d.provides_bus is None:
        return False
    model = topo.buses[d.provides_bus].model
    takers = {m for m, (accepts, _) in devices.BUS_ACCEPTS.items() if model in accepts}
    return bool(takers) and not takers & {"pcie-root", ROOT_PORT}


def _behind_controllers(topo: Topology, loose: list[Device]) -> list[tuple[Device, PciAddress]]:
    """Addresses for controllers that plug behind another controller, first-fit as
    libvirt assigns them (qemuDomainAssignDevicePCISlots: PCI controllers by index, the
    lowest bus whose model accepts theirs, virDomainPCIAddressFlagsCompatible, then its
    lowest free slot, virDomainPCIAddressBusSetModel's slot range)."""
    taken = {(d.address.bus, d.address.slot) for d in topo.devices if d.address}
    out = []
    for d in sorted(loose, key=lambda d: d.provides_bus):
        model = topo.buses[d.provides_bus].model
        for index, bus in sorted(topo.buses.items()):
            accepts, slots = devices.BUS_ACCEPTS.get(bus.model, (frozenset(), range(0)))
            if index == d.provides_bus or model not in accepts:
                continue
            slot = next((s for s in slots if (index, s) not in taken), None)
            if slot is not None:
                taken.add((index, slot))
                out.append((d, PciAddress(0, index, slot, 0)))
                break
    return out


def _stays(d: Device, ports: set[int]) -> bool:
    """Non-NIC devices on pcie-root other than root ports, and integrated ones, stay."""
    if d.role is Role.NIC or d.provides_bus in ports:
        return False
    if d.address is None:
        return d.fixed_at is not None
    return d.address.bus == 0


def _behind_bridge(d: Device, ports: set[int]) -> bool:
    """Addressed on a bus that is neither pcie-root nor a root port: it stays."""
    return (
        d.role is not Role.NIC
        and d.address is not None
        and d.address.bus != 0
        and d.address.bus not in ports
    )


def _port_key(topo: Topology, index: int) -> tuple:
    parent = topo.buses[index].parent
    return (0, parent.slot, parent.function) if parent else (1, index, 0)


def _port_slots(root_used: set[int], count: int) -> list[tuple[int, int]]:
    """(slot, function) on pcie-root for count root ports: 02.0-02.7, 03.0-..., as libvirt packs."""
    out = []
    for slot in range(FIRST_PORT_SLOT, MAX_SLOT + 1):
        if slot in root_used:
            continue
        for fn in range(8):
            if len(out) == count:
                return out
            out.append((slot, fn))
    if len(out) < count:
        raise ImpossibleError(f"{count} root ports do not fit on pcie-root")
    return out
