"""``relayout``: domain XML in, laid-out domain XML and its plan out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .apply import apply_plan
from .machines import read_topology
from .names import name_nics
from .pci import PciAddress
from .plan import Plan
from .policy import Policy
from .topology import Device, Role, Topology
from .xmldoc import Document


@dataclass(frozen=True)
class RelayoutResult:
    """The rewritten XML, the plan it applies and the XML it started from."""

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


def make_plan(topology: Topology, policy: Policy) -> Plan:
    """Plan the layout of a domain on its machine, with ACPI indexes if asked."""
    plan = topology.chipset.plan(topology, policy)
    if policy.acpi_index:
        from .acpi import assign_acpi_indexes  # loaded only when asked for

        plan = assign_acpi_indexes(plan)
    return plan


def plan_document(doc: Document, resolved: str | None = None, **overrides) -> Plan:
    topo = read_topology(doc, resolved)
    prior = topo.layout.policy if topo.layout else None
    return make_plan(topo, effective_policy(prior, **overrides))


def relayout(
    xml: str | bytes | Document,
    policy: Policy | None = None,
    *,
    machine_type: str | None = None,
    **overrides,
) -> RelayoutResult:
    """Lay out a domain's PCI devices so NICs keep predictable names.

    ``overrides`` are Policy fields (nic_start, nic_slots, spare_ports, acpi_index);
    those not given come from ``policy``, else from the layout recorded in the
    domain's metadata, else the defaults. ``machine_type`` is the canonical type
    libvirt resolved the domain's (an alias) to, if known. Raises PlannerError on
    bad input.
    """
    doc = xml if isinstance(xml, Document) else Document.parse(xml)
    if policy is not None:
        overrides = {
            **dataclasses.asdict(policy),
            **{k: v for k, v in overrides.items() if v is not None},
        }
    plan = plan_document(doc, machine_type, **overrides)
    return RelayoutResult(apply_plan(doc, plan), plan, doc.text)


def nic_names(plan: Plan) -> list[tuple[Device, PciAddress, str]]:
    """(device, planned address, predicted guest name) for every NIC, in document order."""
    topo = plan.topology
    rows = [(p.device, p.address) for p in plan.placements]
    _, names = name_nics(
        topo.chipset,
        topo.buses,
        rows,
        plan.controller_addresses(),
        {**topo.acpi_indexes, **plan.acpi_indexes},
    )
    return [(d, a, names[id(d)]) for d, a in rows if d.role is Role.NIC]
