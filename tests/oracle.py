"""libvirt as the oracle of a relayout (issue 11).

P1: if libvirtd defines the input, it defines the output, and the two ``dumpxml --inactive``
agree once every PCI ``<address>``, ``<acpi>``, the metadata, the PCI controllers and the
(randomly generated) MAC addresses are removed: the guest sees the same devices.
P2, the fixed point: relayout(dumpxml(define(relayout(x)))) changes nothing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from domains import define_copy, tree, undefine
from lxml import etree

from planner import relayout
from planner.errors import PlannerError


@dataclass(frozen=True)
class Verdict:
    """What the oracle saw for one input."""

    input_defined: bool
    planner_error: str | None = None  # planner refused the input (one line)
    output_error: str | None = None  # libvirt refused planner's output
    p1_diff: str = ""  # what the guest would see differently (empty: none)
    p2_diff: str = ""  # what a relayout of libvirt's dumpxml of the output changes

    @property
    def ok(self) -> bool:
        if not self.input_defined:
            return True  # nothing to preserve; see refused_by_both for the input checks
        return not (self.planner_error or self.output_error or self.p1_diff or self.p2_diff)

    def explain(self) -> str:
        if self.planner_error:
            return f"planner refused what libvirt accepts: {self.planner_error}"
        if self.output_error:
            return f"libvirt refused planner's output: {self.output_error}"
        if self.p1_diff:
            return f"P1: the guest would see a difference:\n{self.p1_diff}"
        return f"P2: not a fixed point after define:\n{self.p2_diff}"


def define_dump(conn, xml: str) -> tuple[str | None, str | None]:
    """(libvirt's inactive XML, None) if libvirtd defines xml, else (None, its error)."""
    import libvirt

    try:
        dom = define_copy(conn, xml, prefix="planner-oracle")
    except libvirt.libvirtError as exc:
        return None, " ".join(str(exc.get_error_message()).split())
    except (AttributeError, etree.XMLSyntaxError) as exc:  # no <name>, not XML: refused
        return None, str(exc)
    try:
        return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), None
    finally:
        undefine(dom)


def guest_view(xml: str) -> str:
    """libvirt's XML without what a relayout may change (addresses, PCI controllers, ...)."""
    root = tree(xml)
    for tag in ("name", "uuid", "metadata"):
        for el in root.findall(tag):
            root.remove(el)
    for devs in root.findall("devices"):
        for el in list(devs):
            if el.tag == "controller" and el.get("type") == "pci":
                devs.remove(el)
                continue
            for child in el.findall("address"):
                if child.get("type") == "pci":
                    el.remove(child)
            for child in [*el.findall("acpi"), *el.findall("mac")]:
                el.remove(child)
    return etree.tostring(root, encoding="unicode")


def _diff(a: str, b: str) -> str:
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), n=1))[:3000]


def judge(conn, xml: str, **policy) -> Verdict:
    """Run P1 and P2 for one input against the real libvirtd."""
    before, _ = define_dump(conn, xml)
    if before is None:
        return Verdict(False)
    try:
        out = relayout(xml, **policy).xml
    except PlannerError as exc:
        return Verdict(True, planner_error=str(exc))
    after, error = define_dump(conn, out)
    if after is None:
        return Verdict(True, output_error=error)
    p1 = _diff(guest_view(before), guest_view(after))
    try:
        again = relayout(after)
        p2 = _diff(after, again.xml) if again.changed else ""
    except PlannerError as exc:
        p2 = f"planner refused libvirt's dumpxml of its own output: {exc}"
    return Verdict(True, p1_diff=p1, p2_diff=p2)
