"""``planner hotplug``: attach a device through libvirt at the address the layout keeps for it."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from . import acpi, devices, virt
from .errors import InputError, LibvirtRefused, NoRoomError, PlannerError, UnsupportedError
from .hotplug_plan import choose
from .names import guest_bus_numbers, predict
from .pci import PciAddress
from .topology import Topology, pci_address, read_topology
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


def _topologies(xmls: dict[str, str]) -> list[Topology]:
    return [read_topology(Document.parse(x)) for x in xmls.values()]


def _guest_name(topo: Topology, addr: PciAddress, acpi_index: int | None) -> str:
    numbers = guest_bus_numbers(topo.buses, topo.controller_addresses())
    return predict(topo.machine, addr, numbers, False, acpi_index)


def _with_address(el: etree._Element, addr: PciAddress) -> str:
    el = etree.fromstring(etree.tostring(el))
    for old in el.findall("address"):
        el.remove(old)
    etree.SubElement(el, "address", {"type": "pci", **addr.attrs()})
    return etree.tostring(el, encoding="unicode")


def _identify(device_xml: str) -> tuple[str, str | None]:
    """(element name, MAC) of a device, read as plain data with xmltodict."""
    from xml.parsers.expat import ExpatError

    import xmltodict

    try:
        data = xmltodict.parse(device_xml, disable_entities=True)
    except ExpatError as exc:  # not well-formed: libvirt cannot read it either
        raise InputError(f"malformed device XML: {exc}") from None
    except ValueError as exc:  # xmltodict refuses entity declarations
        raise InputError(
            f"device XML declares entities: not passed on, even with --fallback ({exc})"
        ) from None
    kind = next(iter(data))
    body = data[kind] if isinstance(data[kind], dict) else {}
    mac = body.get("mac", {}).get("@address") if isinstance(body.get("mac"), dict) else None
    return kind, mac


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
    """
    if isinstance(domain, str):
        conn = conn if conn is not None and not isinstance(conn, str) else virt.connect(conn)
        domain = virt.lookup(conn, domain)
    try:
        el = parse_element(device_xml)
    except InputError:
        if not fallback:
            raise
        return _attach_fallback(domain, device_xml, live, config, dry_run, "device XML unreadable")
    if not devices.is_pci(el):
        raise InputError(f"<{el.tag}> is not a PCI device: attach it with virsh attach-device")
    requested, _ = pci_address(el)
    flags = virt.attach_flags(domain, live, config)
    with virt.domain_lock(domain.UUIDString()):
        for attempt in range(RETRIES):
            try:
                topos = _topologies(virt.domain_xmls(domain))
            except (InputError, UnsupportedError) as exc:
                if not fallback:
                    raise
                xml = etree.tostring(el, encoding="unicode")
                return _attach_fallback(domain, xml, live, config, dry_run, f"domain XML: {exc}")
            acpi_index = acpi.hotplug_index(topos, el, policy)
            if acpi_index is not None:
                virt.check_acpi_index_support(domain.connect())
            try:
                choice = choose(topos, el.tag, policy, requested)
            except NoRoomError as exc:
                if not fallback:
                    raise
                xml = acpi.with_index(etree.tostring(el, encoding="unicode"), acpi_index)
                return _attach_fallback(domain, xml, live, config, dry_run, str(exc))
            xml = acpi.with_index(_with_address(el, choice.address), acpi_index)
            name = (
                _guest_name(topos[0], choice.address, acpi_index) if el.tag == "interface" else None
            )
            result = HotplugResult(el.tag, choice.address, name, xml, not dry_run, choice.warnings)
            if dry_run:
                return result
            try:
                domain.attachDeviceFlags(xml, flags)
                return result
            except Exception as exc:  # libvirt.libvirtError
                if virt.is_address_clash(exc) and requested is None and attempt < RETRIES - 1:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise LibvirtRefused(f"libvirt refused the attach: {virt.message(exc)}") from None
    raise LibvirtRefused("the address kept being taken by another attach")  # pragma: no cover


def _addresses(domain_xml: str) -> set[PciAddress]:
    """Every device's own PCI address, read without the topology rules."""
    devs = Document.parse(domain_xml).root.find("devices")
    found = (
        (pci_address(el)[0] for el in devs if isinstance(el.tag, str)) if devs is not None else ()
    )
    return {a for a in found if a is not None}


def _attach_fallback(domain, xml, live, config, dry_run, why) -> HotplugResult:
    """--fallback: let libvirt choose the address, then say where it put the device.

    Works on domains whose XML planner cannot lay out, too: it reads only addresses.
    """
    kind, mac = _identify(xml)
    if dry_run:
        return HotplugResult(kind, None, None, xml, False, (f"{why}; libvirt would choose",))
    flags = virt.attach_flags(domain, live, config)
    before = _addresses(next(iter(virt.domain_xmls(domain).values())))
    try:
        domain.attachDeviceFlags(xml, flags)
    except Exception as exc:
        raise LibvirtRefused(f"libvirt refused the attach: {virt.message(exc)}") from None
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


def run_cli(args) -> int:
    if args.device:
        if args.network or args.bridge or args.user or args.template or args.mac:
            raise PlannerError("give a device file or NIC options, not both")
        try:
            data = sys.stdin.read() if args.device == "-" else Path(args.device).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {args.device}: {exc}") from None
    else:
        if args.network:
            data = render_nic("network", args.network, args.model, args.mac, args.template)
        elif args.bridge:
            data = render_nic("bridge", args.bridge, args.model, args.mac, args.template)
        elif args.user:
            data = render_nic("user", None, args.model, args.mac, args.template)
        else:
            raise PlannerError(
                "give a device XML file, or a NIC with --network, --bridge or --user"
            )
    result = hotplug(
        args.domain,
        data,
        conn=args.connect,
        policy=args.policy,
        live=args.live,
        config=args.config,
        dry_run=args.dry_run,
        fallback=args.fallback,
    )
    for w in result.warnings:
        print(f"planner: warning: {w}", file=sys.stderr)
    if args.json:
        out = result.as_dict()
        if args.dry_run:
            out["xml"] = result.xml
        print(json.dumps(out, indent=2))
    elif args.dry_run:
        print(result.xml)
    else:
        print(result.summary())
    return 0
