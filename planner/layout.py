"""The layout planner records in ``<metadata>``, so hot-plug and later relayouts follow it.

libvirt keeps any element of ``<metadata>`` that lives in its own XML namespace,
across define, dumpxml and restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from . import __version__
from .errors import InputError
from .pci import parse_number
from .policy import Policy

NAMESPACE = "urn:libvirt-nic-planner:layout:1"
PREFIX = "planner"


@dataclass(frozen=True)
class Layout:
    """Where NICs and other PCI devices go.

    pc: the NIC range is slots ``nic_first .. nic_first + nic_capacity - 1`` of bus 0;
    other devices sit from ``other_first`` upwards.
    q35: ``nic_ports`` are the controller indexes of the root ports that form the NIC
    range, in the guest's enumeration order; ``other_ports`` hold other devices and
    ``spare_other_ports`` are kept empty for hot-plugged non-NIC devices.
    """

    machine: str
    policy: Policy
    nic_first: int = 0
    nic_capacity: int = 0
    other_first: int = 0
    nic_ports: tuple[int, ...] = ()
    other_ports: tuple[int, ...] = ()
    spare_other_ports: tuple[int, ...] = ()

    @property
    def nic_slots(self) -> range:
        return range(self.nic_first, self.nic_first + self.nic_capacity)


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def find(root: etree._Element) -> etree._Element | None:
    """The planner layout element of a domain, if any."""
    return root.find(f"metadata/{_q('layout')}")


def _ints(text: str | None) -> tuple[int, ...]:
    return tuple(parse_number(x, "port index") for x in (text or "").split())


def read(root: etree._Element) -> Layout | None:
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
        nics = el.find(_q("nics"))
        others = el.find(_q("others"))
        return Layout(
            machine=el.get("machine", "pc"),
            policy=policy,
            nic_first=parse_number(nics.get("first-slot", "0"), "first-slot"),
            nic_capacity=parse_number(nics.get("slots", "0"), "slots"),
            other_first=parse_number(others.get("first-slot", "0"), "first-slot"),
            nic_ports=_ints(nics.get("ports")),
            other_ports=_ints(others.get("ports")),
            spare_other_ports=_ints(others.get("spare-ports")),
        )
    except (AttributeError, InputError) as exc:
        raise InputError(f"unreadable planner metadata: {exc}") from None


def render(layout: Layout, quote: str = "'", unit: str = "  ") -> str:
    """The metadata element, in the document's quote style and indentation step."""
    p = layout.policy

    def tag(name: str, attrs: dict[str, str]) -> str:
        body = " ".join(f"{k}={quote}{v}{quote}" for k, v in attrs.items())
        return f"<{PREFIX}:{name} {body}/>"

    policy = {"nic-start": str(p.nic_start), "nic-slots": str(p.nic_slots)}
    if layout.machine == "q35":
        policy["spare-ports"] = str(p.spare_ports)
        policy["spare-other-ports"] = str(p.spare_other_ports)
        nics = {"ports": " ".join(map(str, layout.nic_ports))}
        others = {
            "ports": " ".join(map(str, layout.other_ports)),
            "spare-ports": " ".join(map(str, layout.spare_other_ports)),
        }
    else:
        nics = {
            "bus": "0x00",
            "first-slot": f"0x{layout.nic_first:02x}",
            "slots": str(layout.nic_capacity),
        }
        others = {"bus": "0x00", "first-slot": f"0x{layout.other_first:02x}"}
    policy["acpi-index"] = "yes" if p.acpi_index else "no"
    head = (
        f"<{PREFIX}:layout xmlns:{PREFIX}={quote}{NAMESPACE}{quote} "
        f"version={quote}{__version__}{quote} machine={quote}{layout.machine}{quote}>"
    )
    inner = [tag("policy", policy), tag("nics", nics), tag("others", others)]
    lines = [head, *(unit + line for line in inner), f"</{PREFIX}:layout>"]
    return "\n".join(lines)
