"""Hot-plug orchestration: attach a device through libvirt at the address the layout keeps.

The device is parsed once (:func:`planner.xmldoc.parse_element`), its element is
edited (address, ACPI index) and serialised once. libvirt is reached only through
:mod:`planner.virt`, which raises typed errors and closes what it opens.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field

from lxml import etree

from . import acpi, devices, lock, virt
from .choice import choose
from .errors import (
    AddressClash,
    InputError,
    LibvirtRefused,
    NoRoomError,
    PlannerError,
    UnsupportedError,
)
from .machines import needs_resolving, read_topology
from .names import guest_bus_numbers, predict
from .pci import PciAddress
from .topology import Topology, pci_address
from .xmldoc import Document, parse_element

RETRIES = 5  # attempts when another tool takes the chosen address first


@dataclass(frozen=True)
class HotplugResult:
    """What a hot-plug did (or, dry run, would do): the device's element name, the address
    libvirt used (None: libvirt chose and planner could not read it back), the guest name
    of a NIC, the device XML sent, and warnings for the user."""

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
    devs = Document.parse(domain_xml).root.find("devices")
    for el in devs if devs is not None else ():
        if not isinstance(el.tag, str) or etree.QName(el).localname != kind:
            continue
        found = _child(el, "mac")
        if found is not None and (found.get("address") or "").lower() == mac.lower():
            return _address_or_none(el)
    return None


def _address_or_none(el: etree._Element) -> PciAddress | None:
    try:
        return pci_address(el)[0]
    except InputError:
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
    lock_timeout: float = lock.DEFAULT_TIMEOUT,
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
    options = dict(
        policy=policy,
        live=live,
        config=config,
        dry_run=dry_run,
        fallback=fallback,
        lock_timeout=lock_timeout,
    )
    if isinstance(domain, str):
        if conn is None or isinstance(conn, str):
            with virt.connection(conn) as opened:
                return _hotplug(virt.lookup(opened, domain), device_xml, **options)
        domain = virt.lookup(conn, domain)
    return _hotplug(domain, device_xml, **options)


def _hotplug(
    domain, device_xml, *, policy, live, config, dry_run, fallback, lock_timeout
) -> HotplugResult:
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
    with lock.domain_lock(domain.UUIDString(), lock_timeout):
        for attempt in range(RETRIES):
            el = copy.deepcopy(original)  # each attempt edits the device as it was given
            xmls = virt.domain_xmls(domain)
            try:
                topos = _topologies(domain, xmls)
            except (InputError, UnsupportedError) as exc:
                if not fallback:
                    raise
                why = f"domain XML: {exc}"
                return _attach_fallback(domain, el, flags, dry_run, why, before=xmls)
            acpi_index = acpi.hotplug_index(topos, el, policy)
            if acpi_index is not None:
                virt.check_acpi_index_support(domain.connect())
            try:
                choice = choose(topos, el.tag, policy, requested)
            except NoRoomError as exc:
                if not fallback:
                    raise
                acpi.set_index(el, acpi_index)
                return _attach_fallback(domain, el, flags, dry_run, str(exc), before=xmls)
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
            except AddressClash:
                if requested is None and attempt < RETRIES - 1:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise
            return _read_back(domain, el, result, flags, before=xmls)
    raise LibvirtRefused("the address kept being taken by another attach")  # pragma: no cover


def _read_back(
    domain, el: etree._Element, result: HotplugResult, flags: int, before: dict[str, str]
) -> HotplugResult:
    """The address libvirt really used, read back from the domain after the attach.

    libvirt may put a device elsewhere than asked; the report says where it is. The
    device is attached by now: nothing here may fail (a domain that vanished or XML
    planner cannot read leaves the planned address, with a warning). ``before`` are the
    XMLs read before the attach."""
    kind, mac = _identify(el)
    try:
        after = virt.attached_xml(domain, flags)
        actual = _located(after, kind, mac, before, flags)
    except PlannerError as exc:
        why = f"attached, but the domain XML could not be read back ({exc})"
        return dataclasses.replace(result, warnings=(*result.warnings, why))
    if actual is None or actual == result.address:
        return result
    warning = f"libvirt put the device at {actual}, not at the planned {result.address}"
    name = _name_at(after, actual) if kind == "interface" else None
    return dataclasses.replace(
        result, address=actual, guest_name=name, warnings=(*result.warnings, warning)
    )


def _located(
    xml: str, kind: str, mac: str | None, before: dict[str, str], flags: int
) -> PciAddress | None:
    """Where the attached device is in ``xml`` (read back with ``flags``): by its MAC,
    else the one PCI address that is new since the same XML of ``before``."""
    found = _placed_at(xml, kind, mac)
    if found is not None:
        return found
    earlier = before.get("live" if virt.affects_live(flags) else "config")
    new = _addresses(xml) - (_addresses(earlier) if earlier else set())
    return min(new) if len(new) == 1 else None


def _name_at(domain_xml: str, addr: PciAddress) -> str | None:
    """The guest name of the NIC at addr, if planner can read the domain."""
    try:
        topo = read_topology(Document.parse(domain_xml))
    except PlannerError:
        return None
    index = next((topo.acpi_indexes.get(d.pos) for d in topo.devices if d.address == addr), None)
    return _guest_name(topo, addr, index)


def _addresses(xml: str) -> set[PciAddress]:
    """Every device's own PCI address in a domain XML, read without the topology rules;
    unreadable addresses and documents give nothing."""
    try:
        devs = Document.parse(xml).root.find("devices")
    except PlannerError:
        return set()
    found = (
        (_address_or_none(el) for el in devs if isinstance(el.tag, str)) if devs is not None else ()
    )
    return {a for a in found if a is not None}


def _attach_fallback(
    domain, el: etree._Element, flags: int, dry_run: bool, why: str, before: dict[str, str]
):
    """--fallback: let libvirt choose the address, then say where it put the device.

    Works on domains whose XML planner cannot lay out, too: it reads only addresses.
    ``before`` are the XMLs read before the attach.
    """
    kind, mac = _identify(el)
    xml = etree.tostring(el, encoding="unicode")
    if dry_run:
        return HotplugResult(kind, None, None, xml, False, (f"{why}; libvirt would choose",))
    virt.attach(domain, xml, flags)
    # Attached: from here on nothing may fail, or a re-run would attach a second device.
    addr, name = None, None
    try:
        after = virt.attached_xml(domain, flags)
        addr = _located(after, kind, mac, before, flags)
        if kind == "interface" and addr:
            name = _name_at(after, addr)
    except PlannerError:
        pass
    warning = f"{why}; libvirt chose {addr if addr else 'an address'}"
    return HotplugResult(kind, addr, name, xml, True, (warning,))
