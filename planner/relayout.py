"""``relayout``: domain XML in, laid-out domain XML and its plan out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .apply import apply_plan
from .names import name_nics
from .pci import PciAddress
from .plan import Plan, make_plan
from .policy import Policy
from .topology import Device, Role, read_topology
from .xmldoc import Document


@dataclass(frozen=True)
class RelayoutResult:
    xml: str
    plan: Plan
    original: str

    @property
    def changed(self) -> bool:
        return self.xml != self.original


def effective_policy(prior: Policy | None, **overrides) -> Policy:
    """Options given now win; the rest come from the recorded layout, else defaults."""
    base = prior or Policy()
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **given)


def plan_document(doc: Document, **overrides) -> Plan:
    topo = read_topology(doc)
    prior = topo.layout.policy if topo.layout and topo.layout.machine == topo.machine else None
    return make_plan(topo, effective_policy(prior, **overrides))


def relayout(xml: str | bytes, policy: Policy | None = None, **overrides) -> RelayoutResult:
    """Lay out a domain's PCI devices so NICs keep predictable names.

    ``overrides`` are Policy fields (nic_start, nic_slots, spare_ports, acpi_index);
    those not given come from ``policy``, else from the layout recorded in the
    domain's metadata, else the defaults. Raises PlannerError on bad input.
    """
    doc = Document.parse(xml)
    if policy is not None:
        overrides = {
            **dataclasses.asdict(policy),
            **{k: v for k, v in overrides.items() if v is not None},
        }
    plan = plan_document(doc, **overrides)
    return RelayoutResult(apply_plan(doc, plan), plan, doc.text)


def nic_names(plan: Plan) -> list[tuple[Device, PciAddress, str]]:
    """(device, planned address, predicted guest name) for every NIC, in document order."""
    topo = plan.topology
    rows = [(p.device, p.address) for p in plan.placements]
    _, names = name_nics(
        topo.machine,
        topo.buses,
        rows,
        plan.controller_addresses(),
        {**topo.acpi_indexes, **plan.acpi_indexes},
    )
    return [(d, a, names[id(d)]) for d, a in rows if d.role is Role.NIC]
