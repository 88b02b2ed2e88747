"""Hot-plug orchestration: attach a device through libvirt at the address the layout keeps.

The device is parsed once (:func:`planner.xmldoc.parse_element`), its element is
edited (address, ACPI index) and serialised once. libvirt is reached only through
:mod:`planner.virt`, which raises typed errors and closes what it opens.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from lxml import etree

from . import acpi, devices, lock, virt
from .errors import (
    AddressClash,
    InputError,
    LibvirtRefused,
    NoRoomError,
    PlannerError,
    UnsupportedError,
)
from .hotplug import choose
from .machines import needs_resolving, read_topology
from .names import guest_bus_numbers, predict
from .pci import PciAddress
from .topology import Topology, pci_address
from .xmldoc import Document, parse_element

RETRIES = 5  # attempts when another tool takes the chosen address first


@dataclass(frozen=True)
class HotplugResult:
    kind: str
    address: PciAddress | None
    guest_name: str | None
    xml: str
    attached: bool
    warnings: tuple[str, ...] = field(default=())

    def summary(self) -> str:
        where = f"at {self.address}" if self.address else "where libvirt chose"
        name = f" (guest name {self.guest_name})" if self.guest_name else ""
        verb = "attached" if self.attached else "would be attached"
        return f"{self.kind} {verb} {where}{name}"

    def as_dict(self) -> dict:
        return {
            "device": self.kind,
            "address": str(self.address) if self.address else None,
            "guest_name": self.guest_name,
            "attached": self.attached,
            "warnings": list(self.warnings),
        }


def render_nic(
    type_: str,
    source: str | None,
    model: str = "virtio",
    mac: str | None = None,
    template: str | None = None,
) -> str:
    """A NIC's XML from the sandboxed jinja2 template: see planner.template."""
    from .template import render_nic as render

    return render(type_, source, model, mac, template)


def _topologies(domain, xmls: dict[str, str]) -> list[Topology]:
    """The live and persistent topologies. A machine type no machine knows by name is
    resolved through the host's capabilities (an alias), or refused clearly."""
    docs = [Document.parse(x) for x in xmls.values()]
    resolved = None
    if docs and needs_resolving(docs[0].root):
        resolved = virt.resolve_machine(domain.connect(), docs[0].root)
    return [read_topology(d, resolved) for d in docs]


def _guest_name(topo: Topology, addr: PciAddress, acpi_index: int | None) -> str:
    numbers = guest_bus_numbers(topo.buses, topo.controller_addresses())
    return predict(topo.chipset, addr, numbers, False, acpi_index)


def _set_address(el: etree._Element, addr: PciAddress) -> None:
    """Give the device element this PCI address (replacing any it had)."""
    for old in el.findall("address"):
        el.remove(old)
    etree.SubElement(el, "address", {"type": "pci", **addr.attrs()})


def _child(el: etree._Element, name: str) -> etree._Element | None:
    """The first child of that local name, whatever the element's namespace."""
    return next(
        (c for c in el if isinstance(c.tag, str) and etree.QName(c).localname == name), None
    )


def _identify(el: etree._Element) -> tuple[str, str | None]:
    """(element name, MAC) of a device, from the element already parsed."""
    mac = _child(el, "mac")
    return etree.QName(el).localname, mac.get("address") if mac is not None else None


def _placed_at(domain_xml: str, kind: str, mac: str | None) -> PciAddress | None:
    """Where libvirt put the device of this kind with this MAC, if it has one."""
    if not mac:
        return None
    for el in Document.parse(domain_xml).root.iterfind(f"devices/{kind}"):
        found = el.find("mac")
        if found is not None and (found.get("address") or "").lower() == mac.lower():
            return pci_address(el)[0]
    return None


def hotplug(
    domain,
    device_xml: str | bytes,
    *,
    conn=None,
    policy: str = "lowest",
    live: bool = False,
    config: bool = False,
    dry_run: bool = False,
    fallback: bool = False,
) -> HotplugResult:
    """Attach a device to a domain (a virDomain, or a name/UUID with ``conn`` or a URI).

    NICs go to the first free slot of the NIC range (``policy='lowest'``) or after
    the highest NIC (``'after-last'``); other PCI devices go above the non-NIC
    devices. A slot must be free in both the live and the persistent definition.
    Attaches LIVE|CONFIG as the domain's state allows, so a restart keeps the slot.
    On a domain laid out with ACPI indexes a NIC also gets an unused index, chosen by
    the same policy (see :mod:`planner.acpi`), and the guest names it ``eno<N>``.
    A connection opened here (``conn`` None or a URI) is closed before returning.
    """
    options = dict(policy=policy, live=live, config=config, dry_run=dry_run, fallback=fallback)
    if isinstance(domain, str):
        if conn is None or isinstance(conn, str):
            with virt.connection(conn) as opened:
                return _hotplug(virt.lookup(opened, domain), device_xml, **options)
        domain = virt.lookup(conn, domain)
    return _hotplug(domain, device_xml, **options)


def _hotplug(domain, device_xml, *, policy, live, config, dry_run, fallback) -> HotplugResult:
    # Unreadable device XML is refused even with fallback: libvirt could not read it
    # either, and planner never passes on what its hardened parser refused.
    original = parse_element(device_xml)
    if not devices.is_pci(original):
        raise InputError(
            f"<{original.tag}> is not a PCI device: attach it with virsh attach-device",
            element=original.tag,
        )
    requested, _ = pci_address(original)
    flags = virt.attach_flags(domain, live, config)
    with lock.domain_lock(domain.UUIDString()):
        for attempt in range(RETRIES):
            el = copy.deepcopy(original)  # each attempt edits the device as it was given
            try:
                topos = _topologies(domain, virt.domain_xmls(domain))
            except (InputError, UnsupportedError) as exc:
                if not fallback:
                    raise
                return _attach_fallback(domain, el, flags, dry_run, f"domain XML: {exc}")
            acpi_index = acpi.hotplug_index(topos, el, policy)
            if acpi_index is not None:
                virt.check_acpi_index_support(domain.connect())
            try:
                choice = choose(topos, el.tag, policy, requested)
            except NoRoomError as exc:
                if not fallback:
                    raise
                acpi.set_index(el, acpi_index)
                return _attach_fallback(domain, el, flags, dry_run, str(exc))
            _set_address(el, choice.address)
            acpi.set_index(el, acpi_index)
            xml = etree.tostring(el, encoding="unicode")
            name = (
                _guest_name(topos[0], choice.address, acpi_index) if el.tag == "interface" else None
            )
            result = HotplugResult(el.tag, choice.address, name, xml, not dry_run, choice.warnings)
            if dry_run:
                return result
            try:
                virt.attach(domain, xml, flags)
                return result
            except AddressClash:
                if requested is None and attempt < RETRIES - 1:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise
    raise LibvirtRefused("the address kept being taken by another attach")  # pragma: no cover


def _addresses(domain_xml: str) -> set[PciAddress]:
    """Every device's own PCI address, read without the topology rules."""
    devs = Document.parse(domain_xml).root.find("devices")
    found = (
        (pci_address(el)[0] for el in devs if isinstance(el.tag, str)) if devs is not None else ()
    )
    return {a for a in found if a is not None}


def _attach_fallback(domain, el: etree._Element, flags: int, dry_run: bool, why: str):
    """--fallback: let libvirt choose the address, then say where it put the device.

    Works on domains whose XML planner cannot lay out, too: it reads only addresses.
    """
    kind, mac = _identify(el)
    xml = etree.tostring(el, encoding="unicode")
    if dry_run:
        return HotplugResult(kind, None, None, xml, False, (f"{why}; libvirt would choose",))
    before = _addresses(next(iter(virt.domain_xmls(domain).values())))
    virt.attach(domain, xml, flags)
    after = next(iter(virt.domain_xmls(domain).values()))
    addr = _placed_at(after, kind, mac) or min(_addresses(after) - before, default=None)
    name = None
    if kind == "interface" and addr:
        try:
            topo = read_topology(Document.parse(after))
        except PlannerError:
            topo = None
        if topo is not None:
            index = next(
                (topo.acpi_indexes.get(d.pos) for d in topo.devices if d.address == addr), None
            )
            name = _guest_name(topo, addr, index)
    warning = f"{why}; libvirt chose {addr if addr else 'an address'}"
    return HotplugResult(kind, addr, name, xml, True, (warning,))
