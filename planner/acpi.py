"""ACPI indexes: ``<acpi index='N'/>`` on a PCI device, which a systemd guest names ``eno<N>``.

The name then depends on nothing but the index: not on the slot, the bus or the
machine type. libvirt (>= 7.3, with QEMU >= 6.0) accepts indexes 1..16383 and
refuses two devices with the same index, whatever their kind.

Relayout (``--acpi-index``) gives every NIC an index: the one it has if valid and
unique, else the lowest unused one, in document order, so a fresh domain gets
1..n. Indexes on other devices are kept and reserved; an invalid one there is an
input error, since planner does not renumber devices it does not name.

Hot-plug gives a new NIC the lowest index unused in the live and the persistent
definition (policy ``lowest``) or the lowest unused one above the highest NIC's
(``after-last``), mirroring the slot policies. A device XML that brings its own
index keeps it if it is unused; an index in use is a NoRoomError (exit 3), the
error a device's own address in use gives, and an out-of-range one an InputError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from lxml import etree

from .errors import InputError, NoRoomError
from .pci import parse_number
from .plan import Plan
from .topology import Device, Role, Topology

MIN_INDEX = 1
MAX_INDEX = 16383  # libvirt's limit (QEMU's acpi-index is a 14-bit _DSM value)


def valid(index: int) -> bool:
    return MIN_INDEX <= index <= MAX_INDEX


def _what(d: Device) -> str:
    detail = f" {d.detail}" if d.detail else ""
    return f"<{d.kind}>{detail}"


def _reserved(topo: Topology) -> dict[int, Device]:
    """Indexes held by devices other than NICs; InputError for invalid or shared ones."""
    held: dict[int, Device] = {}
    for d in topo.devices:
        if d.role is Role.NIC or d.pos not in topo.acpi_indexes:
            continue
        index = topo.acpi_indexes[d.pos]
        if not valid(index):
            raise InputError(
                f"{_what(d)} has ACPI index {index}, outside libvirt's {MIN_INDEX}-{MAX_INDEX}"
            )
        if index in held:
            raise InputError(f"{_what(held[index])} and {_what(d)} both have ACPI index {index}")
        held[index] = d
    return held


def _lowest_unused(used: Iterable[int], above: int = 0) -> int | None:
    taken = set(used)
    return next(
        (i for i in range(max(above + 1, MIN_INDEX), MAX_INDEX + 1) if i not in taken), None
    )


def assign_acpi_indexes(plan: Plan) -> Plan:
    """Give every NIC of the plan an ACPI index; record only those to be written.

    A NIC keeps a valid index that no other device (nor an earlier NIC) holds;
    the others get the lowest unused index, in document order. Idempotent: a
    domain laid out before gets no change.
    """
    topo = plan.topology
    reserved = _reserved(topo)
    used = set(reserved)
    kept: dict[int, int] = {}
    warnings: list[str] = []
    nics = [d for d in topo.devices if d.role is Role.NIC and d.pos is not None]
    for d in nics:
        index = topo.acpi_indexes.get(d.pos)
        if index is None:
            continue
        if valid(index) and index not in used:
            kept[d.pos] = index
            used.add(index)
            continue
        if not valid(index):
            why = f"outside {MIN_INDEX}-{MAX_INDEX}"
        else:
            why = (
                f"also held by {_what(reserved[index]) if index in reserved else 'an earlier NIC'}"
            )
        warnings.append(f"{_what(d)}: ACPI index {index} is {why}; it gets a new one")
    new: dict[int, int] = {}
    for d in nics:
        if d.pos in kept:
            continue
        index = _lowest_unused(used)
        if index is None:
            raise InputError(f"no ACPI index left for {_what(d)} (all of 1-{MAX_INDEX} in use)")
        new[d.pos] = index
        used.add(index)
    return dataclasses.replace(plan, acpi_indexes=new, warnings=(*plan.warnings, *warnings))


def used_indexes(topos: Iterable[Topology]) -> set[int]:
    """Every ACPI index held in any of the topologies (live and persistent)."""
    return {i for t in topos for i in t.acpi_indexes.values()}


def choose_index(
    topos: list[Topology], policy: str = "lowest", requested: int | None = None
) -> int:
    """The ACPI index for a NIC hot-plugged into a domain with these topologies.

    ``lowest``: the lowest index unused in every topology (fills holes left by
    unplugs). ``after-last``: the lowest unused index above the highest one a NIC
    holds. ``requested``: the index the device XML brings, kept if unused.
    """
    used = used_indexes(topos)
    if requested is not None:
        if not valid(requested):
            raise InputError(
                f"the device's ACPI index {requested} is outside {MIN_INDEX}-{MAX_INDEX}"
            )
        if requested in used:
            raise NoRoomError(f"the device's own ACPI index {requested} is already in use")
        return requested
    above = 0
    if policy == "after-last":
        held = [t.acpi_indexes[d.pos] for t in topos for d in t.nics if d.pos in t.acpi_indexes]
        above = max(held, default=0)
    index = _lowest_unused(used, above)
    if index is None:
        where = f"above {above}" if above else f"in {MIN_INDEX}-{MAX_INDEX}"
        raise NoRoomError(f"no unused ACPI index left {where}")
    return index


def requested_index(el: etree._Element) -> int | None:
    """The index a device element brings in ``<acpi index=.../>``, if any."""
    acpi = el.find("acpi")
    if acpi is None or acpi.get("index") is None:
        return None
    return parse_number(acpi.get("index"), "ACPI index")


def enabled(topos: list[Topology]) -> bool:
    """Does the domain's recorded layout give NICs ACPI indexes (``acpi-index='yes'``)?

    The first topology with a layout for its machine type decides, as for the slots.
    """
    for t in topos:
        if t.layout is not None:
            return t.layout.policy.acpi_index
    return False


def hotplug_index(topos: list[Topology], el: etree._Element, policy: str) -> int | None:
    """The ACPI index a hot-plugged device gets, or None for none.

    On a domain laid out with ACPI indexes a NIC always gets one. Any device that
    brings its own keeps it, if it is valid and unused.
    """
    requested = requested_index(el)
    if requested is not None:
        return choose_index(topos, policy, requested)
    if el.tag == "interface" and enabled(topos):
        return choose_index(topos, policy)
    return None


def set_index(el: etree._Element, index: int | None) -> None:
    """Set ``<acpi index='N'/>`` on a device element (nothing for None)."""
    if index is None:
        return
    acpi = el.find("acpi")
    if acpi is None:
        acpi = etree.SubElement(el, "acpi")
    acpi.set("index", str(index))
