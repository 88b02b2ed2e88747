"""Where a hot-plugged device goes: a pure function of the domain's two topologies.

A running domain has two definitions: the live one and the persistent one that
the next boot uses. A slot is free only if it is free in both; otherwise a device
attached live could collide with one that exists only in the config, or a
restart could move it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError, NoRoomError
from .layout import Layout
from .pci import MAX_SLOT, PciAddress
from .policy import Policy
from .topology import Role, Topology

POLICIES = ("lowest", "after-last")


@dataclass(frozen=True)
class Choice:
    address: PciAddress
    layout: Layout
    warnings: tuple[str, ...] = ()


def _occupied(topos: list[Topology]) -> set[tuple[int, int]]:
    """(bus, slot) pairs in use in any of the topologies."""
    used: set[tuple[int, int]] = set()
    for t in topos:
        for d in t.devices:
            a = d.address or (d.fixed_at if d.pos is not None else None)
            if a:
                used.add((a.bus, a.slot))
    return used


def effective_layout(topos: list[Topology]) -> tuple[Layout, tuple[str, ...]]:
    """The recorded layout, or one derived from the NICs present (with a warning)."""
    for t in topos:
        if t.layout is not None and t.layout.machine == t.machine:
            return t.layout, ()
    t = topos[0]
    if t.machine != "pc":
        raise NoRoomError(
            f"{t.machine} domain has no planner layout: relayout it first "
            "(`planner relayout --domain NAME --define`, effective at next boot)"
        )
    used = _occupied(topos)
    nic_slots = sorted(
        d.address.slot for tt in topos for d in tt.nics if d.address and d.address.bus == 0
    )
    first = nic_slots[0] if nic_slots else 3
    top = max((s for b, s in used if b == 0), default=first)
    layout = Layout(
        "pc",
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


def choose(
    topos: list[Topology], kind: str, policy: str = "lowest", requested: PciAddress | None = None
) -> Choice:
    """Pick the address for a device of ``kind`` ('interface' or another PCI device).

    ``topos`` are the domain's live and persistent topologies (one if it has only one).
    """
    if policy not in POLICIES:
        raise InputError(f"unknown policy {policy!r}")
    layout, warnings = effective_layout(topos)
    if topos[0].machine == "q35":
        from .hotplug_q35 import choose_q35

        return choose_q35(topos, layout, kind, policy, requested, warnings)
    used = _occupied(topos)
    if requested is not None:
        if (requested.bus, requested.slot) in used:
            raise NoRoomError(f"the device's own address {requested} is already in use")
        return Choice(requested, layout, warnings)
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
        return Choice(PciAddress(0, 0, free[0], 0), layout, warnings)
    top = max(
        (s for b, s in used if b == 0 and s >= layout.other_first), default=layout.other_first - 1
    )
    free = [s for s in range(top + 1, MAX_SLOT + 1) if (0, s) not in used]
    if not free:
        raise NoRoomError(f"bus 0 has no free slot above the other devices (from {top + 1:#04x})")
    return Choice(PciAddress(0, 0, free[0], 0), layout, warnings)
