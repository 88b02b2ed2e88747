"""i440fx (``pc``, ``pc-i440fx-*``): NICs in a contiguous slot range of bus 0, the rest above it.

The guest names a NIC on bus 0 ``ens<slot>`` (ACPI hot-plug slots, _SUN = slot).
libvirt hot-plugs a device without an address into the lowest free slot, so every
PCI device gets an explicit address and the slots right after the NICs stay free:

    slot 0        host bridge
    slot 1        PIIX3 (ISA bridge, IDE 1.1, USB 1.2, ACPI 1.3)
    slot 2        primary video
    nic_start..   NIC range: NICs in document order, then free slots for hot-plug
    above it      every other PCI device, in its original order, then free slots
                  for devices hot-plugged later (a data disk scans after the boot disk)

A domain never laid out still gets a hot-plugged NIC in the lowest free slot
after its NICs (with a warning); the guest names a NIC on bus 0 ``ens<slot>``
and one behind a pci-bridge by its path, ``enp<bus>s<slot>``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

from lxml import etree

from ..errors import ImpossibleError, NoRoomError
from ..layout import LayoutRecord, number
from ..names import path_name
from ..pci import MAX_SLOT, PciAddress, parse_index
from ..plan import NewController, Placement, Plan
from ..policy import Policy
from ..topology import Device, Role, Topology, occupied

name = "pc"
root_model = "pci-root"
pcie = False  # conventional PCI: every device connects as PCI
builtin_sata0 = False  # i440fx has no SATA: libvirt adds an ahci controller 0
# Functions the chipset holds that no device element shows, which libvirt reserves
# (qemuDomainValidateDevicePCISlotsPIIX3): the PIIX3 ISA bridge 01.0 and its PM 01.3.
reserved = (PciAddress(0, 0, 1, 0), PciAddress(0, 0, 1, 3))
_TYPES = re.compile(r"^(pc|pc-i440fx-.*|pc-\d.*)$")

FIRST_FREE_SLOT = 2  # 0 is the host bridge, 1 the PIIX3
BRIDGE_SLOTS = range(1, MAX_SLOT + 1)  # libvirt keeps slot 0 of a pci-bridge unused


def matches(machine_type: str) -> bool:
    return bool(_TYPES.match(machine_type))


def owns_record(recorded: str | None) -> bool:
    return recorded in (None, name)  # records without machine= predate q35 support


@dataclass(frozen=True)
class PcLayout:
    """The NIC range is slots ``nic_first .. nic_first + nic_capacity - 1`` of bus 0;
    other devices sit from ``other_first`` upwards."""

    machine: ClassVar[str] = name
    policy: Policy
    nic_first: int = 0
    nic_capacity: int = 0
    other_first: int = 0

    @property
    def nic_slots(self) -> range:
        return range(self.nic_first, self.nic_first + self.nic_capacity)

    def policy_attrs(self) -> dict[str, str]:
        return {}

    def nics_attrs(self) -> dict[str, str]:
        return {
            "bus": "0x00",
            "first-slot": f"0x{self.nic_first:02x}",
            "slots": str(self.nic_capacity),
        }

    def others_attrs(self) -> dict[str, str]:
        return {"bus": "0x00", "first-slot": f"0x{self.other_first:02x}"}

    def as_json(self) -> dict:
        return {
            "nic_range": {
                "bus": 0,
                "first_slot": self.nic_first,
                "last_slot": self.nic_first + self.nic_capacity - 1,
                "capacity": self.nic_capacity,
            },
            "other_first_slot": self.other_first,
        }


def read_layout(policy: Policy, nics: etree._Element, others: etree._Element) -> PcLayout:
    """The record, its slots checked: the NIC range within bus 0 and never on slot 0
    (the host bridge) or 1 (the PIIX3), where libvirt would put the device elsewhere."""
    first = number(nics.get("first-slot", "0"), "first-slot", FIRST_FREE_SLOT, MAX_SLOT)
    capacity = number(nics.get("slots", "0"), "slots", 0, MAX_SLOT + 1 - first)
    other = number(others.get("first-slot", "0"), "first-slot", FIRST_FREE_SLOT, MAX_SLOT + 1)
    return PcLayout(policy, nic_first=first, nic_capacity=capacity, other_first=other)


def fixed_address(el: etree._Element, primary_video, index: int | None = None) -> PciAddress | None:
    """The address libvirt's i440fx rules pin a device to, if any.

    PIIX3 sits in slot 1: IDE controller 0 at 1.1, the PIIX3 USB controller at 1.2.
    The primary video card goes to slot 2 (qemuDomainValidateDevicePCISlotsPIIX3).
    """
    if el.tag == "controller":
        ctype = el.get("type")
        if index is None:
            index = parse_index(el.get("index", "0"))
        if ctype == "ide" and index == 0:
            return PciAddress(0, 0, 1, 1)
        if ctype == "usb" and index == 0 and el.get("model", "piix3-uhci") == "piix3-uhci":
            return PciAddress(0, 0, 1, 2)
    if el is primary_video:
        return PciAddress(0, 0, 2, 0)
    return None


def implicit_devices(devs: etree._Element, quote: str) -> list[tuple[str, str, str]]:
    """None beyond the machine-independent ones (libvirt's PIIX3 USB sits in slot 1)."""
    return []


def nic_name(addr: PciAddress, bus_numbers: dict[int, int], func: str) -> str:
    """``ens<slot>`` on bus 0, whose every slot is an ACPI hot-plug slot (_SUN = slot);
    the path name behind a bridge."""
    if addr.bus == 0:
        return f"ens{addr.slot}{func}"
    return path_name(addr, bus_numbers, func)


def free_slots(topo: Topology, layout: LayoutRecord | None, used: set[tuple[int, int]]):
    """Free slots of bus 0 as ranges, the NIC range's marked ``nic-reserved``."""
    nic = set(layout.nic_slots) if layout else set()
    cells = [
        (s, "nic-reserved" if s in nic else "free")
        for s in range(2, MAX_SLOT + 1)
        if (0, s) not in used
    ]
    out: list[dict] = []
    for slot, role in cells:
        if out and out[-1]["role"] == role and out[-1]["_last"] == slot - 1:
            out[-1]["_last"] = slot
        else:
            out.append({"_first": slot, "_last": slot, "role": role})
    return [
        {
            "slots": f"00:{f['_first']:02x}"
            + (f"-{f['_last']:02x}" if f["_last"] != f["_first"] else ""),
            "role": f["role"],
        }
        for f in out
    ]


# --- hot-plug -------------------------------------------------------------------------


def derived_layout(topos: list[Topology]) -> tuple[PcLayout, tuple[str, ...]]:
    """A domain never laid out: NICs go to the lowest free slot after its first NIC's."""
    used = occupied(topos)
    nic_slots = sorted(
        d.address.slot for tt in topos for d in tt.nics if d.address and d.address.bus == 0
    )
    first = nic_slots[0] if nic_slots else 3
    top = max((s for b, s in used if b == 0), default=first)
    layout = PcLayout(
        Policy(nic_start=first),
        nic_first=first,
        nic_capacity=MAX_SLOT - first + 1,
        other_first=top + 1,
    )
    warning = (
        "domain has no planner layout: NICs go to the lowest free slot after "
        f"slot {first - 1:#04x}, where other devices may sit in the way; "
        "`planner relayout --domain NAME --define` fixes this for the next boot"
    )
    return layout, (warning,)


def choose(topos: list[Topology], layout: PcLayout, kind: str, policy: str) -> PciAddress:
    """A NIC: the lowest free slot of the NIC range (after the highest NIC with
    ``after-last``). Another device: the lowest free slot above the other devices."""
    used = occupied(topos)
    if kind == "interface":
        free = [s for s in layout.nic_slots if (0, s) not in used and s <= MAX_SLOT]
        if policy == "after-last":
            nics = [
                d.address.slot
                for t in topos
                for d in t.devices
                if d.role is Role.NIC
                and d.address
                and d.address.bus == 0
                and d.address.slot in layout.nic_slots
            ]
            last = max(nics, default=layout.nic_first - 1)
            free = [s for s in free if s > last]
        if not free:
            raise NoRoomError(
                f"the NIC range (slots {layout.nic_first:#04x}-"
                f"{layout.nic_first + layout.nic_capacity - 1:#04x}) has no free slot"
                + (" after the last NIC" if policy == "after-last" else "")
            )
        return PciAddress(0, 0, free[0], 0)
    top = max(
        (s for b, s in used if b == 0 and s >= layout.other_first), default=layout.other_first - 1
    )
    free = [s for s in range(top + 1, MAX_SLOT + 1) if (0, s) not in used]
    if not free:
        raise NoRoomError(f"bus 0 has no free slot above the other devices (from {top + 1:#04x})")
    return PciAddress(0, 0, free[0], 0)


# --- the cold layout ------------------------------------------------------------------


@dataclass
class _Group:
    """Devices that share one slot (a multifunction device), moved together."""

    members: list[tuple[Device, int]]  # (device, function)
    key: tuple[int, int, int]  # original scan position: (slot, function, document order)

    @property
    def pinned_to_root(self) -> bool:
        """PCI controllers and integrated devices cannot go behind a new pci-bridge."""
        return any(d.provides_bus is not None or d.integrated for d, _ in self.members)


def plan(topo: Topology, policy: Policy) -> Plan:
    fixed = [d for d in topo.devices if d.role is Role.FIXED]
    has_video = any(d.kind == "video" for d in fixed)
    first = policy.nic_start
    lowest = FIRST_FREE_SLOT + (1 if has_video else 0)
    if first < lowest:
        what = "the primary video" if has_video else "the PIIX3"
        raise ImpossibleError(
            f"a NIC range from slot {first} collides with {what}; the lowest is {lowest}",
            option="nic_start",
            limit=lowest,
        )
    groups = _groups(topo)
    nics, stay_behind, nic_overflow, capacity, warnings = _nic_range(topo, policy, groups)
    layout = PcLayout(policy, nic_first=first, nic_capacity=capacity, other_first=first + capacity)
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
    on_root, on_bridge = groups, []
    nic_groups = [_Group([(d, 0)], (0, 0, d.order)) for d in nic_overflow]
    if nic_groups or len(groups) > len(root_slots):
        on_root, on_bridge, new = _overflow(topo, groups, root_slots, placements, nic_groups)
        new_controllers.extend(new)
        buses = sorted({bus for _, bus, _ in on_bridge})
        warnings.append(
            f"bus 0 is full: {len(on_bridge)} device slot(s) go behind the pci-bridge(s) "
            f"with index {', '.join(map(str, buses))}"
        )
    for group, slot in zip(on_root, root_slots):
        placements.extend(_place_group(group, 0, slot))
    for group, bus, slot in on_bridge:
        placements.extend(_place_group(group, bus, slot))
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
        return nics, [], [], wanted, []
    if len(nics) + 1 <= fits:
        raise ImpossibleError(
            f"--nic-slots {policy.nic_slots} from slot {first} does not fit: bus 0 has room for "
            f"{fits} NIC slots next to {len(groups)} other device slot(s)",
            option="nic_slots",
            limit=fits,
        )
    warnings = []
    stay = [d for d in nics if d.address and d.address.bus != 0]
    if stay and len(nics) > fits:
        nics = [d for d in nics if not (d.address and d.address.bus != 0)]
        warnings.append(f"{len(stay)} NIC(s) do not fit on bus 0 and stay behind their bridges")
    overflow: list[Device] = []
    if len(nics) > fits:
        # libvirt grows a pci-bridge for what bus 0 cannot hold (virDomainPCIAddressSetGrow):
        # the NIC range takes what bus 0 has, the NICs after it go behind a bridge.
        if not movable and not target:
            fits -= 1  # the bridge's own slot, not reserved above
        if fits < 1:
            raise ImpossibleError(
                f"{len(nics)} NICs do not fit on bus 0 from slot {first} "
                f"next to {reserve} other device slot(s)"
            )
        nics, overflow = nics[:fits], nics[fits:]
        warnings.append(
            f"{len(overflow)} NIC(s) do not fit on bus 0 and go behind a pci-bridge "
            f"(the NIC range holds {fits})"
        )
    capacity = min(fits, max(policy.nic_slots, len(nics) + 1))
    if capacity == len(nics):
        warnings.append("the NIC range is full: a hot-plugged NIC will not find a slot")
    return nics, stay, overflow, capacity, warnings


def _place_nics(topo: Topology, nics: tuple[Device, ...], layout: PcLayout):
    """NICs take the range's slots in document order.

    A domain laid out before keeps each NIC that already sits in the range: its
    guest knows it by that name, and a hole left by an unplug is filled by the
    next hot-plug, not by renaming the NICs after it.
    """
    taken: dict[int, Device] = {}
    prior = topo.layout
    if prior is not None:
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


def _overflow(
    topo: Topology,
    groups: list[_Group],
    root_slots: list[int],
    placements,
    first: list[_Group],
):
    """Bus 0 is too small: the overflow goes behind pci-bridges, as libvirt grows them.

    libvirt adds a pci-bridge each time bus 0 (then the last bridge) is full
    (virDomainPCIAddressSetGrow, virDomainPCIAddressBusSetModel: slots 1-31 of a bridge;
    the new bridge goes first-fit, so behind the previous one once bus 0 is full).
    planner fills the last bridge already on bus 0 first, then as few new pci-bridges
    as it takes, pinned in the last slots of bus 0, or in the last slot of the bridge
    before when bus 0 has none left. ``first`` (the NICs the NIC range cannot hold)
    go behind a bridge before anything else; PCI controllers and integrated devices
    stay on bus 0; the devices behind bridges keep their order.
    Returns (groups on bus 0, [(group, bridge index, slot)], new controllers).
    """
    existing = _existing_bridge(topo)
    pinned = [g for g in groups if g.pinned_to_root]
    others = [g for g in groups if not g.pinned_to_root]
    free_existing = _free_bridge_slots(existing, placements) if existing is not None else []
    room = len(root_slots) - len(pinned)  # bus 0 slots for new bridges and other devices
    count = 0 if existing is not None else 1  # new bridges
    while True:
        chained = max(0, count - room)  # new bridges behind the bridge before them
        on_root_others = max(0, room - count)
        behind = len(first) + len(others) - min(on_root_others, len(others))
        possible = room >= 0 and (room >= 1 or bool(free_existing)) and count <= MAX_SLOT
        if not possible or (count and chained >= len(free_existing) + count * len(BRIDGE_SLOTS)):
            first_slot = root_slots[0] if root_slots else MAX_SLOT + 1
            raise ImpossibleError(
                f"{len(groups) + len(first)} non-NIC PCI slots do not fit above the NIC range "
                f"(slots {first_slot}-{MAX_SLOT}) even with pci-bridges"
            )
        if behind <= len(free_existing) + count * len(BRIDGE_SLOTS) - chained:
            break
        count += 1
    stay = set(map(id, pinned)) | set(map(id, others[:on_root_others]))
    on_root = [g for g in groups if id(g) in stay]
    moving = [*first, *(g for g in groups if id(g) not in stay)]
    next_index = max(topo.buses) + 1
    new = []
    bridge_cells: dict[int, list[int]] = {}
    if existing is not None:
        bridge_cells[existing] = list(free_existing)
    parent = existing
    for i in range(count):
        index = next_index + i
        if i < room - on_root_others:
            addr = PciAddress(0, 0, root_slots[len(on_root) + i], 0)
        else:  # bus 0 is full: behind the bridge before, in its last free slot
            addr = PciAddress(0, parent, bridge_cells[parent].pop(), 0)
        new.append(NewController(index, "pci-bridge", addr, after_index=index - 1))
        bridge_cells[index] = list(BRIDGE_SLOTS)
        parent = index
    cells = [(bus, slot) for bus, slots in bridge_cells.items() for slot in slots]
    on_bridge = [(g, bus, slot) for g, (bus, slot) in zip(moving, cells)]
    return on_root, on_bridge, new
