"""The i440fx (pc) layout: NICs in a contiguous slot range of bus 0, the rest above it.

The guest names a NIC on bus 0 ``ens<slot>`` (ACPI hot-plug slots, _SUN = slot).
libvirt hot-plugs a device without an address into the lowest free slot, so every
PCI device gets an explicit address and the slots right after the NICs stay free:

    slot 0        host bridge
    slot 1        PIIX3 (ISA bridge, IDE 1.1, USB 1.2, ACPI 1.3)
    slot 2        primary video
    nic_start..   NIC range: NICs in document order, then free slots for hot-plug
    above it      every other PCI device, in its original order, then free slots
                  for devices hot-plugged later (a data disk scans after the boot disk)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .errors import ImpossibleError
from .layout import Layout
from .pci import MAX_SLOT, PciAddress
from .plan import NewController, Placement, Plan
from .policy import Policy
from .topology import Device, Role, Topology

FIRST_FREE_SLOT = 2  # 0 is the host bridge, 1 the PIIX3
BRIDGE_SLOTS = range(1, MAX_SLOT + 1)  # libvirt keeps slot 0 of a pci-bridge unused


@dataclass
class _Group:
    """Devices that share one slot (a multifunction device), moved together."""

    members: list[tuple[Device, int]]  # (device, function)
    key: tuple[int, int, int]  # original scan position: (slot, function, document order)

    @property
    def pinned_to_root(self) -> bool:
        """PCI controllers and integrated devices cannot go behind a new pci-bridge."""
        return any(d.provides_bus is not None or d.integrated for d, _ in self.members)


def plan_pc(topo: Topology, policy: Policy) -> Plan:
    nics = topo.nics
    fixed = [d for d in topo.devices if d.role is Role.FIXED]
    has_video = any(d.kind == "video" for d in fixed)
    first = policy.nic_start
    lowest = FIRST_FREE_SLOT + (1 if has_video else 0)
    if first < lowest:
        what = "the primary video" if has_video else "the PIIX3"
        raise ImpossibleError(f"--nic-start {first} collides with {what}; the lowest is {lowest}")
    capacity = max(policy.nic_slots, len(nics) + 1)
    last = first + capacity - 1
    if last > MAX_SLOT:
        raise ImpossibleError(
            f"{len(nics)} NICs with room for {capacity} from slot {first} need slots "
            f"{first}-{last}, but bus 0 ends at slot {MAX_SLOT}"
        )
    layout = Layout("pc", policy, nic_first=first, nic_capacity=capacity, other_first=last + 1)
    placements: list[Placement] = []

    for d in fixed:  # the chipset's place, unless the device sits behind a bridge
        on_root = d.address is None or d.address.bus == 0
        placements.append(Placement(d, d.fixed_at if on_root else d.address))

    for d, slot in _place_nics(topo, nics, layout):
        placements.append(Placement(d, PciAddress(0, 0, slot, 0), False if d.multifunction else None))

    behind = [d for d in topo.devices if d.role is Role.OTHER and d.address and d.address.bus != 0]
    placements.extend(Placement(d, d.address) for d in behind)

    groups = _groups(topo)
    root_slots = list(range(layout.other_first, MAX_SLOT + 1))
    new_controllers: list[NewController] = []
    if len(groups) > len(root_slots):
        on_root, on_bridge, bridge = _overflow(topo, groups, root_slots)
        new_controllers.append(bridge)
    else:
        on_root, on_bridge = groups, []
    for group, slot in zip(on_root, root_slots):
        placements.extend(_place_group(group, 0, slot))
    if on_bridge:
        for group, slot in zip(on_bridge, BRIDGE_SLOTS):
            placements.extend(_place_group(group, new_controllers[0].index, slot))
    order = {id(d): i for i, d in enumerate(topo.devices)}
    placements.sort(key=lambda p: order[id(p.device)])
    return Plan(topo, policy, layout, tuple(placements), tuple(new_controllers))


def _place_nics(topo: Topology, nics: tuple[Device, ...], layout: Layout):
    """NICs take the range's slots in document order.

    A domain laid out before keeps each NIC that already sits in the range: its
    guest knows it by that name, and a hole left by an unplug is filled by the
    next hot-plug, not by renaming the NICs after it.
    """
    taken: dict[int, Device] = {}
    prior = topo.layout
    if prior is not None and prior.machine == "pc":
        for d in nics:
            a = d.address
            if a and a.bus == 0 and a.function == 0 and a.slot in layout.nic_slots and a.slot not in taken:
                taken[a.slot] = d
    free = iter(s for s in layout.nic_slots if s not in taken)
    kept = {id(d): s for s, d in taken.items()}
    return [(d, kept[id(d)] if id(d) in kept else next(free)) for d in nics]


def _groups(topo: Topology) -> list[_Group]:
    """The non-NIC devices of bus 0 as slot groups, in their original scan order.

    Addressed devices keep their order by address. Devices without an address are
    ordered where libvirt would have put them: each kind in libvirt's assignment
    order takes the lowest free slot (qemuDomainAssignDevicePCISlots), so a
    relayout never swaps, say, two virtio disks and thereby vda and vdb.
    """
    used = {d.address.slot for d in topo.devices if d.address and d.address.bus == 0}
    used |= {d.fixed_at.slot for d in topo.devices if d.fixed_at and d.address is None}
    used |= {0, 1}
    sim_slot: dict[int, int] = {}  # id(device) -> slot libvirt would give it
    usb2_slot: dict[int, int] = {}
    for d in topo.devices:  # USB2 companions join an addressed member's slot
        if d.usb2 and d.address and d.address.bus == 0:
            usb2_slot[d.usb2[0]] = d.address.slot
    spill = MAX_SLOT + 1
    unaddressed = (d for d in topo.devices if d.address is None and d.fixed_at is None)
    for d in sorted(unaddressed, key=lambda d: (d.rank, d.order)):
        if d.usb2 and d.usb2[0] in usb2_slot:
            sim_slot[id(d)] = usb2_slot[d.usb2[0]]
            continue
        slot = next((s for s in range(FIRST_FREE_SLOT, MAX_SLOT + 1) if s not in used), None)
        if slot is None:
            slot, spill = spill, spill + 1
        used.add(slot)
        sim_slot[id(d)] = slot
        if d.usb2:
            usb2_slot[d.usb2[0]] = slot

    by_slot: dict[int, list[tuple[Device, int]]] = defaultdict(list)
    for d in topo.devices:
        if d.role is not Role.OTHER or (d.address and d.address.bus != 0):
            continue
        if d.address:
            by_slot[d.address.slot].append((d, d.address.function))
        else:
            by_slot[sim_slot[id(d)]].append((d, d.usb2[1] if d.usb2 else 0))
    groups = []
    for slot, members in by_slot.items():
        members.sort(key=lambda m: m[1])
        groups.append(_Group(members, (slot, members[0][1], min(d.order for d, _ in members))))
    groups.sort(key=lambda g: g.key)
    return groups


def _place_group(group: _Group, bus: int, slot: int) -> list[Placement]:
    """Move a slot group as a whole, keeping functions; function 0 must exist."""
    members = group.members
    shift = members[0][1] if all(f != 0 for _, f in members) else 0
    out = []
    for d, function in members:
        f = 0 if function == shift else function
        multi = None
        if f == 0 and len(members) > 1 and not d.multifunction:
            multi = True
        out.append(Placement(d, PciAddress(0, bus, slot, f), multi))
    return out


def _overflow(topo: Topology, groups: list[_Group], root_slots: list[int]):
    """Bus 0 is too small: a new pci-bridge in its last used slot takes the overflow.

    PCI controllers and integrated devices stay on bus 0. The bridge scans after
    every bus 0 device, so the devices behind it keep their relative order.
    """
    pinned = [g for g in groups if g.pinned_to_root]
    movable = [g for g in groups if not g.pinned_to_root]
    room = len(root_slots) - 1 - len(pinned)
    if room < 0 or len(movable) - room > len(BRIDGE_SLOTS):
        raise ImpossibleError(
            f"{len(groups)} non-NIC PCI slots do not fit above the NIC range "
            f"(slots {root_slots[0]}-{MAX_SLOT}) even with a pci-bridge"
        )
    stay = set(map(id, pinned)) | set(map(id, movable[:room]))
    on_root = [g for g in groups if id(g) in stay]
    on_bridge = [g for g in groups if id(g) not in stay]
    index = max(topo.buses) + 1
    bridge = NewController(index, "pci-bridge", PciAddress(0, 0, root_slots[len(on_root)], 0),
                           after_index=max(topo.buses))  # fmt: skip
    return on_root, on_bridge, bridge
