"""Apply a plan to a document: address attributes, added elements and metadata."""

from __future__ import annotations

from lxml import etree

from . import layout as layout_md
from ._version import __version__
from .pci import PciAddress, parse_number
from .plan import Placement, Plan
from .xmldoc import Document, Editor

# libvirt's order of the elements that may precede <metadata>.
_BEFORE_METADATA = ("name", "uuid", "genid", "title", "description")


def _tag(name: str, attrs: dict[str, str], quote: str) -> str:
    body = "".join(f" {k}={quote}{v}{quote}" for k, v in attrs.items())
    return f"<{name}{body}/>"


def address_markup(addr: PciAddress, quote: str, multifunction: bool = False) -> str:
    attrs = {"type": "pci", **addr.attrs()}
    if multifunction:
        attrs["multifunction"] = "on"
    return _tag("address", attrs, quote)


def _with_child(markup: str, child: str, unit: str) -> str:
    """Turn ``<x .../>`` into ``<x ...>`` + child + ``</x>``."""
    name = markup[1:].split()[0].rstrip("/>")
    return f"{markup[:-2].rstrip()}>\n{unit}{child}\n</{name}>"


def apply_plan(doc: Document, plan: Plan) -> str:
    """The document's text with the plan applied; unchanged bytes stay byte-identical."""
    ed = Editor(doc)
    q, unit = ed.quote, doc.indent_unit()
    aliases: dict[int, list[int]] = {}
    for console, serial in plan.topology.aliases:
        aliases.setdefault(serial, []).append(console)

    devices_el = doc.root.find("devices")
    implicit: list[Placement] = []
    for p in plan.placements:
        if not p.moved:
            continue
        if p.device.pos is None:
            implicit.append(p)
            continue
        for pos in [p.device.pos, *aliases.get(p.device.pos, ())]:
            _set_address(ed, doc.elements[pos], p, q)

    missing: list[str] = []  # devices to add to a domain written without <devices>

    def insert(markup: str, kind: str | None, after_index: int | None = None) -> None:
        if devices_el is None:
            missing.append(markup)
        else:
            _insert_device(ed, devices_el, markup, kind, after_index)

    for p in implicit:  # devices libvirt would add by itself, made explicit
        markup = _with_child(
            p.device.markup, address_markup(p.address, q, bool(p.multifunction)), unit
        )
        insert(markup, "controller" if p.device.kind == "controller" else None)

    for c in plan.new_controllers:
        attrs = {"type": "pci", "index": str(c.index), "model": c.model}
        markup = _with_child(
            _tag("controller", attrs, q), address_markup(c.address, q, c.multifunction), unit
        )
        if c.target:
            markup = markup.replace("\n", f"\n{unit}{_tag('target', dict(c.target), q)}\n", 1)
        insert(markup, "controller", c.after_index)

    if missing:
        body = "\n".join(unit + line for m in missing for line in m.split("\n"))
        ed.append_child(doc.root, f"<devices>\n{body}\n</devices>")

    for pos, index in plan.acpi_indexes.items():
        el = doc.elements[pos]
        acpi = el.find("acpi")
        if acpi is not None:
            ed.set_attrs(acpi, {"index": str(index)})
        else:
            ed.append_child(el, _tag("acpi", {"index": str(index)}, q))

    _write_metadata(ed, doc, plan, q, unit)
    return ed.result()


def _set_address(ed: Editor, el: etree._Element, p: Placement, q: str) -> None:
    if p.device.provides_bus is not None and el.get("index") is None:
        # Devices now name this controller's bus: write the index libvirt would give it.
        ed.set_attrs(el, {"index": str(p.device.provides_bus)})
    addr = el.find("address")
    if addr is None:
        ed.append_child(el, address_markup(p.address, q, bool(p.multifunction)))
        return
    values: dict[str, str | None] = dict(p.address.attrs())
    if p.multifunction is not None:
        values["multifunction"] = "on" if p.multifunction else None
    ed.set_attrs(addr, values)


def _insert_device(ed: Editor, devices_el, markup: str, kind: str | None, after_index=None) -> None:
    """Insert a device element: a controller after the controllers (by index), else last."""
    if kind == "controller":
        ctrls = devices_el.findall("controller")
        anchor = None
        for c in ctrls:
            if after_index is None or (
                c.get("type") == "pci" and parse_number(c.get("index", "0"), "index") <= after_index
            ):
                anchor = c
        if after_index is not None and anchor is None and ctrls:
            anchor = ctrls[-1]
        if anchor is not None:
            ed.insert_after(anchor, markup)
            return
    ed.append_child(devices_el, markup)


def _write_metadata(ed: Editor, doc: Document, plan: Plan, q: str, unit: str) -> None:
    rendered = layout_md.render(plan.layout, q, unit)
    existing = layout_md.find(doc.root)
    if existing is not None:
        # Compare meaning, not bytes: libvirt re-serialises metadata on define.
        recorded = plan.topology.layout
        if recorded != plan.layout or existing.get("version") != __version__:
            ed.replace(existing, rendered)
        return
    metadata = doc.root.find("metadata")
    if metadata is not None:
        ed.append_child(metadata, rendered)
        return
    anchor = None
    for child in doc.root:
        if isinstance(child.tag, str) and child.tag in _BEFORE_METADATA:
            anchor = child
    markup = f"<metadata>\n{unit}{rendered.replace(chr(10), chr(10) + unit)}\n</metadata>"
    if anchor is not None:
        ed.insert_after(anchor, markup)
    else:
        first = next(c for c in doc.root if isinstance(c.tag, str))
        ed.insert_after(first, markup)
