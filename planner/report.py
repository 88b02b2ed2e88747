"""What planner prints: the plan as JSON and the slot map of ``planner show``."""

from __future__ import annotations

import json

from .layout import Layout
from .names import name_nics
from .pci import MAX_SLOT, PciAddress
from .plan import Plan
from .relayout import nic_names, relayout
from .topology import Device, Topology, read_topology
from .xmldoc import Document


def _dev(d: Device) -> str:
    return f"{d.label} {d.detail}".strip()


def plan_json(plan: Plan, changed: bool) -> dict:
    lay = plan.layout
    out: dict = {"machine": plan.topology.machine, "changed": changed}
    if lay.machine == "pc":
        out["nic_range"] = {
            "bus": 0,
            "first_slot": lay.nic_first,
            "last_slot": lay.nic_first + lay.nic_capacity - 1,
            "capacity": lay.nic_capacity,
        }
        out["other_first_slot"] = lay.other_first
    else:
        out["nic_ports"] = list(lay.nic_ports)
        out["other_ports"] = list(lay.other_ports)
        out["spare_other_ports"] = list(lay.spare_other_ports)
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


def show(data: bytes | str, planned: bool = False, as_json: bool = False, **overrides) -> str:
    """A slot map a person reads at a glance: one row per function in use.

    ``planned`` shows the domain as a relayout would write it (the same output, read back).
    """
    if planned:
        data = relayout(data, **overrides).xml
    topo = read_topology(Document.parse(data))
    lay = topo.layout
    rows, unplaced = _current_rows(topo)
    parents = topo.controller_addresses()
    acpi = topo.acpi_indexes
    numbers, names = name_nics(topo.machine, topo.buses, ((d, a) for a, d in rows), parents, acpi)
    entries = [
        {
            "address": _bsf(a),
            "device": _dev(d),
            "role": d.role.value,
            "guest_name": names.get(id(d), ""),
        }
        for a, d in sorted(rows, key=lambda r: (numbers.get(r[0].bus, 999), r[0]))
    ]
    free = _free(topo, lay, rows)
    if as_json:
        return (
            json.dumps(
                {
                    "machine": topo.machine,
                    "slots": entries,
                    "free": free,
                    "unassigned": [_dev(d) for _, d in unplaced],
                },
                indent=2,
            )
            + "\n"
        )
    lines = [f"{'bus:slot.fn':<12} {'device':<52} {'role':<13} guest name"]
    for e in entries:
        lines.append(f"{e['address']:<12} {e['device'][:52]:<52} {e['role']:<13} {e['guest_name']}")
    for f in free:
        lines.append(f"{f['slots']:<12} {'(free)':<52} {f['role']:<13}")
    for _, d in unplaced:
        lines.append(
            f"{'--:--.-':<12} {_dev(d)[:52]:<52} {d.role.value:<13} (libvirt assigns at define)"
        )
    if lay is None:
        lines.append("no planner layout recorded: run `planner relayout` to pin it")
    return "\n".join(lines) + "\n"


def _bsf(a: PciAddress) -> str:
    return f"{a.bus:02x}:{a.slot:02x}.{a.function:x}"


def _free(topo: Topology, lay: Layout | None, rows) -> list[dict]:
    """Free slots of bus 0 (pc) or empty root ports (q35), as ranges with their role."""
    used = {(a.bus, a.slot) for a, _ in rows}
    if topo.machine == "pc":
        nic = set(lay.nic_slots) if lay else set()
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
    nic_ports = set(lay.nic_ports) if lay else set()
    busy = {a.bus for a, _ in rows}
    return [
        {"slots": f"port {i}", "role": "nic-reserved" if i in nic_ports else "free"}
        for i, b in sorted(topo.buses.items())
        if b.model == "pcie-root-port" and i not in busy
    ]
