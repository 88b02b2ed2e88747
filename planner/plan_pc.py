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
    fixed = [d for d in topo.devices if d.role is Role.FIXED]
    has_video = any(d.kind == "video" for d in fixed)
    first = policy.nic_start
    lowest = FIRST_FREE_SLOT + (1 if has_video else 0)
    if first < lowest:
        what = "the primary video" if has_video else "the PIIX3"
        raise ImpossibleError(f"--nic-start {first} collides with {what}; the lowest is {lowest}")
    groups = _groups(topo)
    nics, stay_behind, capacity, warnings = _nic_range(topo, policy, groups)
    layout = Layout(
        "pc", policy, nic_first=first, nic_capacity=capacity, other_first=first + capacity
    )
    placements: list[Placement] = []

    for d in fixed:  # the chipset's place, unless the device sits behind a bridge
        on_root = d.address is None or d.address.bus == 0
        placements.append(Placement(d, d.fixed_at if on_root else d.address))

    for d, slot in _place_nics(topo, nics, layout):
        placements.append(
            Placement(d, PciAddress(0, 0, slot, 0), False if d.multifunction else None)
        )

    behind = [d for d in topo.devices if d.role is Role.OTHER and d.address and d.address.bus != 0]
    placements.extend(Placement(d, d.address) for d in [*behind, *stay_behind])

    root_slots = list(range(layout.other_first, MAX_SLOT + 1))
    new_controllers: list[NewController] = []
    on_root, on_bridge, bridge_bus = groups, [], None
    if len(groups) > len(root_slots):
        on_root, on_bridge, bridge_bus, new = _overflow(topo, groups, root_slots, placements)
        new_controllers.extend(new)
        warnings.append(
            f"bus 0 is full: {len(on_bridge)} device(s) go behind the pci-bridge "
            f"with index {bridge_bus}"
        )
    for group, slot in zip(on_root, root_slots):
        placements.extend(_place_group(group, 0, slot))
    if on_bridge:
        free = _free_bridge_slots(bridge_bus, placements)
        for group, slot in zip(on_bridge, free):
            placements.extend(_place_group(group, bridge_bus, slot))
    order = {id(d): i for i, d in enumerate(topo.devices)}
    placements.sort(key=lambda p: order[id(p.device)])
    return Plan(
        topo, policy, layout, tuple(placements), tuple(new_controllers), warnings=tuple(warnings)
    )


def _nic_range(topo: Topology, policy: Policy, groups: list[_Group]):
    """The NICs that go to bus 0, those that stay behind bridges, and the range's capacity.

    The range holds every NIC plus at least one free slot, or --nic-slots if more.
    Only a domain with more NICs than bus 0 can hold (libvirt's own test domains
    have 32) keeps the NICs already behind bridges there and may lose the spare
    slot; both are reported as warnings.
    """
    nics = list(topo.nics)
    first = policy.nic_start
    room = MAX_SLOT - first + 1
    pinned = sum(g.pinned_to_root for g in groups)
    movable = len(groups) - pinned
    target = _existing_bridge(topo) is not None
    reserve = pinned + (1 if movable and not target else 0)
    fits = room - reserve
    wanted = max(policy.nic_slots, len(nics) + 1)
    if wanted <= fits:
        return nics, [], wanted, []
    if len(nics) + 1 <= fits:
        raise ImpossibleError(
            f"--nic-slots {policy.nic_slots} from slot {first} does not fit: bus 0 has room for "
            f"{fits} NIC slots next to {len(groups)} other device slot(s)"
        )
    warnings = []
    stay = [d for d in nics if d.address and d.address.bus != 0]
    if stay and len(nics) > fits:
        nics = [d for d in nics if not (d.address and d.address.bus != 0)]
        warnings.append(f"{len(stay)} NIC(s) do not fit on bus 0 and stay behind their bridges")
    if len(nics) > fits:
        raise ImpossibleError(
            f"{len(nics)} NICs do not fit on bus 0 from slot {first} "
            f"next to {reserve} other device slot(s)"
        )
    capacity = min(fits, max(policy.nic_slots, len(nics) + 1))
    if capacity == len(nics):
        warnings.append("the NIC range is full: a hot-plugged NIC will not find a slot")
    return nics, stay, capacity, warnings


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
            if (
                a
                and a.bus == 0
                and a.function == 0
                and a.slot in layout.nic_slots
                and a.slot not in taken
            ):
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
    used |= {0, 1}
    for d in topo.devices:  # an unaddressed primary video: slot 2, or else the first free one
        if d.fixed_at and d.address is None and d.fixed_at.slot > 1:
            free = (s for s in range(FIRST_FREE_SLOT, MAX_SLOT + 1) if s not in used)
            used.add(d.fixed_at.slot if d.fixed_at.slot not in used else next(free, MAX_SLOT + 1))
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


def _existing_bridge(topo: Topology) -> int | None:
    """The index of the last pci-bridge or pci-expander-bus on bus 0, if any."""
    found = [
        d.provides_bus
        for d in topo.devices
        if d.provides_bus is not None
        and topo.buses[d.provides_bus].model in ("pci-bridge", "pci-expander-bus")
        and (d.address is None or d.address.bus == 0)
    ]
    return max(found) if found else None


def _free_bridge_slots(bus: int, placements: list[Placement]) -> list[int]:
    used = {p.address.slot for p in placements if p.address.bus == bus}
    return [s for s in BRIDGE_SLOTS if s not in used]


def _overflow(topo: Topology, groups: list[_Group], root_slots: list[int], placements):
    """Bus 0 is too small: the overflow goes behind a pci-bridge.

    That is the last bridge already on bus 0, else a new pci-bridge in the last
    slot used. PCI controllers and integrated devices stay on bus 0; the devices
    behind the bridge keep their relative order.
    """
    existing = _existing_bridge(topo)
    pinned = [g for g in groups if g.pinned_to_root]
    movable = [g for g in groups if not g.pinned_to_root]
    room = len(root_slots) - len(pinned) - (0 if existing is not None else 1)
    bus = existing if existing is not None else max(topo.buses) + 1
    free = len(_free_bridge_slots(bus, placements)) if existing is not None else len(BRIDGE_SLOTS)
    if room < 0 or len(movable) - room > free:
        first = root_slots[0] if root_slots else MAX_SLOT + 1
        raise ImpossibleError(
            f"{len(groups)} non-NIC PCI slots do not fit above the NIC range "
            f"(slots {first}-{MAX_SLOT}) even with a pci-bridge"
        )
    stay = set(map(id, pinned)) | set(map(id, movable[:room]))
    on_root = [g for g in groups if id(g) in stay]
    on_bridge = [g for g in groups if id(g) not in stay]
    new = []
    if existing is None:
        new.append(
            NewController(
                bus,
                "pci-bridge",
                PciAddress(0, 0, root_slots[len(on_root)], 0),
                after_index=max(topo.buses),
            )
        )
    return on_root, on_bridge, bus, new
