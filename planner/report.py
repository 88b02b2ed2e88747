"""What planner prints: the plan as JSON and the slot map of ``planner show``."""

from __future__ import annotations

from dataclasses import dataclass

from .machines import read_topology
from .names import name_nics
from .pci import PciAddress
from .plan import Plan
from .relayout import nic_names, relayout
from .topology import Device, Topology
from .xmldoc import Document


def _dev(d: Device) -> str:
    return f"{d.label} {d.detail}".strip()


def plan_json(plan: Plan, changed: bool) -> dict:
    out: dict = {"machine": plan.topology.machine, "changed": changed}
    out.update(plan.layout.as_json())
    out["moves"] = [
        {
            "device": _dev(p.device),
            "from": str(p.device.address) if p.device.address else None,
            "to": str(p.address),
        }
        for p in plan.moves
    ]
    out["added_controllers"] = [
        {"index": c.index, "model": c.model, "address": str(c.address)}
        for c in plan.new_controllers
    ]
    out["nics"] = [
        {"device": _dev(d), "address": str(a), "guest_name": n} for d, a, n in nic_names(plan)
    ]
    if plan.acpi_indexes:
        out["acpi_indexes"] = {
            str(plan.topology.device(pos).detail): i for pos, i in plan.acpi_indexes.items()
        }
    return out


def _current_rows(topo: Topology):
    """(address, device) for the domain as it is, and the devices libvirt has yet to place."""
    placed, unplaced = [], []
    for d in topo.devices:
        a = d.address or (d.fixed_at if d.pos is not None else None)
        (placed if a else unplaced).append((a, d))
    return placed, unplaced


@dataclass(frozen=True)
class SlotMap:
    """What ``planner show`` prints: the functions in use, the free places, the devices
    libvirt has yet to place, and whether a layout is recorded."""

    machine: str
    slots: list[dict]
    free: list[dict]
    unplaced: list[Device]
    laid_out: bool

    def as_dict(self) -> dict:
        return {
            "machine": self.machine,
            "slots": self.slots,
            "free": self.free,
            "unassigned": [_dev(d) for d in self.unplaced],
        }


def show_data(data: bytes | str, planned: bool = False, **overrides) -> SlotMap:
    """The slot map of a domain: machine, slots in use, free slots, unassigned devices.

    ``planned`` shows the domain as a relayout would write it (the same output, read back).
    """
    if planned:
        data = relayout(data, **overrides).xml
    topo = read_topology(Document.parse(data))
    lay = topo.layout
    rows, unplaced = _current_rows(topo)
    parents = topo.controller_addresses()
    acpi = topo.acpi_indexes
    numbers, names = name_nics(topo.chipset, topo.buses, ((d, a) for a, d in rows), parents, acpi)
    entries = [
        {
            "address": _bsf(a),
            "device": _dev(d),
            "role": d.role.value,
            "guest_name": names.get(id(d), ""),
        }
        for a, d in sorted(rows, key=lambda r: (numbers.get(r[0].bus, 999), r[0]))
    ]
    free = topo.chipset.free_slots(topo, lay, {(a.bus, a.slot) for a, _ in rows})
    return SlotMap(topo.machine, entries, free, [d for _, d in unplaced], lay is not None)


def show_table(data: SlotMap) -> str:
    """A slot map a person reads at a glance: one row per function in use."""
    entries, free, unplaced = data.slots, data.free, data.unplaced
    lines = [f"{'bus:slot.fn':<12} {'device':<52} {'role':<13} guest name"]
    for e in entries:
        lines.append(f"{e['address']:<12} {e['device'][:52]:<52} {e['role']:<13} {e['guest_name']}")
    for f in free:
        lines.append(f"{f['slots']:<12} {'(free)':<52} {f['role']:<13}")
    for d in unplaced:
        lines.append(
            f"{'--:--.-':<12} {_dev(d)[:52]:<52} {d.role.value:<13} (libvirt assigns at define)"
        )
    if not data.laid_out:
        lines.append("no planner layout recorded: run `planner relayout` to pin it")
    return "\n".join(lines) + "\n"


def show(data: bytes | str, planned: bool = False, as_json: bool = False, **overrides) -> str:
    """``planner show``'s output: the slot map as a table, or as JSON."""
    result = show_data(data, planned, **overrides)
    if as_json:
        import json

        return json.dumps(result.as_dict(), indent=2) + "\n"
    return show_table(result)


def _bsf(a: PciAddress) -> str:
    return f"{a.bus:02x}:{a.slot:02x}.{a.function:x}"
