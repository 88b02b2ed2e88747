"""Where a hot-plugged device goes: a pure function of the domain's two topologies.

A running domain has two definitions: the live one and the persistent one that
the next boot uses. A slot is free only if it is free in both; otherwise a device
attached live could collide with one that exists only in the config, or a
restart could move it. The machine (:mod:`planner.machines`) decides which free
place a device of a kind takes. Only hot-plug, unplug and the audit import this
module: a relayout never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError, NoRoomError
from .layout import LayoutRecord
from .pci import PciAddress
from .topology import Topology, occupied

POLICIES = ("lowest", "after-last")


@dataclass(frozen=True)
class Choice:
    """Where a hot-plugged device goes, under which layout, with what to tell the user."""

    address: PciAddress
    layout: LayoutRecord
    warnings: tuple[str, ...] = ()


def effective_layout(topos: list[Topology]) -> tuple[LayoutRecord, tuple[str, ...]]:
    """The recorded layout, or the one the machine derives for a domain never laid out."""
    for t in topos:
        if t.layout is not None:
            return t.layout, ()
    return topos[0].chipset.derived_layout(topos)


def choose(
    topos: list[Topology], kind: str, policy: str = "lowest", requested: PciAddress | None = None
) -> Choice:
    """Pick the address for a device of ``kind`` ('interface' or another PCI device).

    ``topos`` are the domain's live and persistent topologies (one if it has only one).
    A device that brings its own address keeps it if that slot is free in both.
    """
    if policy not in POLICIES:
        raise InputError(f"unknown policy {policy!r}")
    layout, warnings = effective_layout(topos)
    if requested is not None:
        if requested.bus == 0 and requested.slot == 0:
            raise InputError(
                f"the device's own address {requested} is slot 0 of bus 0, the host "
                "bridge's: libvirt would put the device elsewhere",
                address=requested,
            )
        if (requested.bus, requested.slot) in occupied(topos):
            raise NoRoomError(
                f"the device's own address {requested} is already in use", address=requested
            )
        return Choice(requested, layout, warnings)
    address = topos[0].chipset.choose(topos, layout, kind, policy)
    return Choice(address, layout, warnings)
