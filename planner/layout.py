"""The layout planner records in ``<metadata>``, so hot-plug and later relayouts follow it.

libvirt keeps any element of ``<metadata>`` that lives in its own XML namespace,
across define, dumpxml and restarts. The record itself is typed per machine
(:mod:`planner.machines`); this module reads and writes the element around it:

    <planner:layout xmlns:planner=... version=... machine=NAME>
      <planner:policy nic-start= nic-slots= [machine's own] acpi-index=/>
      <planner:nics [machine's own]/>
      <planner:others [machine's own]/>
    </planner:layout>
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from lxml import etree

from ._version import __version__
from .errors import ImpossibleError, InputError
from .pci import MAX_BUS, parse_number
from .policy import Policy

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .machines import Machine

NAMESPACE = "urn:libvirt-nic-planner:layout:1"
PREFIX = "planner"


class LayoutRecord(Protocol):
    """A machine's layout record: frozen, comparable, rendered into the metadata."""

    machine: str
    policy: Policy

    @property
    def nic_slots(self) -> range:
        """The slots of the root bus kept for NICs (empty where NICs get ports)."""

    def policy_attrs(self) -> dict[str, str]:
        """The machine's own ``<planner:policy>`` attributes, in writing order."""

    def nics_attrs(self) -> dict[str, str]: ...

    def others_attrs(self) -> dict[str, str]: ...

    def as_json(self) -> dict:
        """The record's part of ``relayout --json``."""


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def find(root: etree._Element) -> etree._Element | None:
    """The planner layout element of a domain, if any."""
    return root.find(f"metadata/{_q('layout')}")


def number(text: str, what: str, low: int, high: int) -> int:
    """A number of the record, checked against its range before anything uses it."""
    value = parse_number(text, what)
    if not low <= value <= high:
        raise InputError(f"{what} {text!r} is out of range ({low}-{high})", limit=high)
    return value


def ints(text: str | None, what: str = "port index") -> tuple[int, ...]:
    """A space-separated list of controller indexes (1-255), as the records write them."""
    words = (text or "").split()
    if len(words) > MAX_BUS:
        raise InputError(f"{what} list has {len(words)} entries, more than {MAX_BUS}")
    return tuple(number(x, what, 1, MAX_BUS) for x in words)


def read(root: etree._Element, machine: Machine) -> LayoutRecord | None:
    """The domain's recorded layout, if it has one for this machine."""
    el = find(root)
    if el is None:
        return None
    try:
        pol = el.find(_q("policy"))
        policy = Policy(
            nic_start=parse_number(pol.get("nic-start", "3"), "nic-start"),
            nic_slots=parse_number(pol.get("nic-slots", "8"), "nic-slots"),
            spare_ports=parse_number(pol.get("spare-ports", "4"), "spare-ports"),
            spare_other_ports=parse_number(pol.get("spare-other-ports", "4"), "spare-other-ports"),
            acpi_index=pol.get("acpi-index", "no") == "yes",
        )
        if not machine.owns_record(el.get("machine")):
            return None
        return machine.read_layout(policy, el.find(_q("nics")), el.find(_q("others")))
    except (AttributeError, InputError, ImpossibleError) as exc:
        raise InputError(f"unreadable planner metadata: {exc}") from None


def render(record: LayoutRecord, quote: str = "'", unit: str = "  ") -> str:
    """The metadata element, in the document's quote style and indentation step."""
    p = record.policy

    def tag(name: str, attrs: dict[str, str]) -> str:
        body = " ".join(f"{k}={quote}{v}{quote}" for k, v in attrs.items())
        return f"<{PREFIX}:{name} {body}/>"

    policy = {"nic-start": str(p.nic_start), "nic-slots": str(p.nic_slots)}
    policy.update(record.policy_attrs())
    policy["acpi-index"] = "yes" if p.acpi_index else "no"
    head = (
        f"<{PREFIX}:layout xmlns:{PREFIX}={quote}{NAMESPACE}{quote} "
        f"version={quote}{__version__}{quote} machine={quote}{record.machine}{quote}>"
    )
    inner = [
        tag("policy", policy),
        tag("nics", record.nics_attrs()),
        tag("others", record.others_attrs()),
    ]
    lines = [head, *(unit + line for line in inner), f"</{PREFIX}:layout>"]
    return "\n".join(lines)
