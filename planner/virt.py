"""The libvirt edge: connections, domain XML, attach, and a per-domain lock.

libvirt-python is imported here only, and only when a command needs a daemon,
so relayout works (and starts fast) where libvirt is not installed.
"""

from __future__ import annotations

import os
import sys

from .errors import DomainNotFound, LibvirtRefused, PlannerError, Unreachable

DEFAULT_URI = "qemu:///system"


def _libvirt():
    try:
        import libvirt
    except ImportError as exc:
        raise Unreachable(
            f"libvirt-python is not installed ({exc}); install libvirt-nic-planner[libvirt]"
        ) from None
    libvirt.registerErrorHandler(lambda *_: None, None)  # errors come as exceptions
    return libvirt


def message(exc) -> str:
    """libvirt's own message, on one line."""
    text = exc.get_error_message() if hasattr(exc, "get_error_message") else str(exc)
    return " ".join(str(text or exc).split())


def connect(uri: str | None):
    libvirt = _libvirt()
    uri = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise Unreachable(f"cannot connect to {uri}: {message(exc)}") from None


def lookup(conn, name: str):
    """A domain by name or UUID."""
    libvirt = _libvirt()
    for find in (conn.lookupByName, conn.lookupByUUIDString):
        try:
            return find(name)
        except libvirt.libvirtError as exc:
            code = exc.get_error_code()
            benign = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG)
            if find is conn.lookupByName and code not in benign:
                raise LibvirtRefused(f"cannot look up domain {name}: {message(exc)}") from None
    raise DomainNotFound(f"domain {name!r} not found")


def domain_xmls(dom) -> dict[str, str]:
    """The live XML (if running) and the persistent XML (if defined)."""
    libvirt = _libvirt()
    out = {}
    try:
        if dom.isActive():
            out["live"] = dom.XMLDesc(0)
        if dom.isPersistent():
            out["config"] = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"cannot read domain XML: {message(exc)}") from None
    return out


def attach_flags(dom, live: bool, config: bool) -> int:
    """LIVE|CONFIG as the domain's state allows, or what --live/--config restrict to."""
    libvirt = _libvirt()
    active, persistent = dom.isActive(), dom.isPersistent()
    if live and not active:
        raise PlannerError("--live: the domain is not running")
    if config and not persistent:
        raise PlannerError("--config: the domain is transient")
    flags = 0
    if (live or not config) and active:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if (config or not live) and persistent:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags


ACPI_INDEX_LIBVIRT = (7, 3, 0)  # <acpi index='N'/> on PCI devices
ACPI_INDEX_QEMU = (6, 0, 0)  # the acpi-index device property


def _version(number: int) -> tuple[int, int, int]:
    """libvirt's encoding major * 1000000 + minor * 1000 + release, as a tuple."""
    return number // 1000000, number // 1000 % 1000, number % 1000


def check_acpi_index_support(conn) -> None:
    """Refuse (PlannerError) unless the connected libvirt and QEMU support ACPI indexes."""
    libvirt = _libvirt()
    try:
        lib, qemu = _version(conn.getLibVersion()), _version(conn.getVersion())
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"cannot read the libvirt and QEMU versions: {message(exc)}") from None

    def text(v: tuple[int, ...]) -> str:
        return ".".join(map(str, v))

    if lib < ACPI_INDEX_LIBVIRT or qemu < ACPI_INDEX_QEMU:
        raise PlannerError(
            f"ACPI index naming needs libvirt >= {text(ACPI_INDEX_LIBVIRT)} and QEMU >= "
            f"{text(ACPI_INDEX_QEMU)}; this host has libvirt {text(lib)} and QEMU {text(qemu)}"
        )


def is_address_clash(exc) -> bool:
    """libvirt refused because another attach took the address (or ACPI index) first."""
    text = message(exc).lower()
    if "acpi-index" in text and "already exist" in text:  # QEMU: "... acpi-index = N already exist"
        return True
    return "double use" in text or "in use" in text or "already" in text and "address" in text


def domain_lock(uuid: str):
    """Serialise planner hot-plugs of one domain on this host: see :mod:`planner.lock`."""
    from .lock import domain_lock as lock

    return lock(uuid)


def relayout_domain(args) -> int:
    """``planner relayout --domain``: relayout a defined domain's persistent XML."""
    from .relayout import relayout

    libvirt = _libvirt()
    conn = connect(args.connect)
    dom = lookup(conn, args.domain)
    if not dom.isPersistent():
        raise PlannerError(f"domain {args.domain!r} is transient: nothing to redefine")
    xml = domain_xmls(dom)["config"]
    overrides = dict(
        nic_start=args.nic_start,
        nic_slots=args.nic_slots,
        spare_ports=args.spare_ports,
        acpi_index=args.acpi_index,
    )
    result = relayout(xml, **overrides)
    for w in result.plan.warnings:
        print(f"planner: warning: {w}", file=sys.stderr)
    if args.check:
        return 1 if result.changed else 0
    if not args.define:
        sys.stdout.write(result.xml)
        return 0
    if result.changed:
        try:
            conn.defineXML(result.xml)
        except libvirt.libvirtError as exc:
            raise LibvirtRefused(f"libvirt refused the new definition: {message(exc)}") from None
    state = "defined" if result.changed else "already laid out"
    running = dom.isActive() and result.changed
    note = "; it takes effect at the next cold boot (destroy + start)" if running else ""
    print(f"domain {args.domain} {state}{note}")
    return 0
