"""The libvirt edge: connections, domain XML, capabilities, define, and a per-domain lock.

libvirt-python is imported here only, and only when a command needs a daemon,
so relayout works (and starts fast) where libvirt is not installed. Every
libvirt error becomes a typed error (DomainNotFound, Unreachable, LibvirtRefused,
AddressClash), and what this module opens it closes (:func:`connection`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from lxml import etree

from .errors import (
    AddressClash,
    DomainNotFound,
    InputError,
    LibvirtRefused,
    Unreachable,
    UnsupportedError,
)
from .machines import machine_type

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


def refused(exc, text: str, **data) -> LibvirtRefused | DomainNotFound:
    """The typed error for a libvirt error: DomainNotFound if the domain is gone (it was
    undefined or, transient, destroyed while planner worked on it), else LibvirtRefused."""
    try:
        import libvirt

        gone = exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    except (ImportError, AttributeError):  # pragma: no cover - not a libvirt error
        gone = False
    if gone:
        return DomainNotFound(f"the domain no longer exists: {text}", **data)
    return LibvirtRefused(text, **data)


def is_libvirt_error(exc: BaseException) -> bool:
    """Is this an error libvirt raised (and not a bug of ours)?"""
    try:
        import libvirt
    except ImportError:  # pragma: no cover - no libvirt, no libvirt errors
        return False
    return isinstance(exc, libvirt.libvirtError)


def connect(uri: str | None):
    """A connection the caller closes; prefer :func:`connection`."""
    libvirt = _libvirt()
    uri = uri or os.environ.get("LIBVIRT_DEFAULT_URI") or DEFAULT_URI
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise Unreachable(f"cannot connect to {uri}: {message(exc)}") from None


@contextlib.contextmanager
def connection(uri: str | None):
    """A connection to ``uri`` (else $LIBVIRT_DEFAULT_URI, else qemu:///system), closed after."""
    conn = connect(uri)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            conn.close()


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
    raise DomainNotFound(f"domain {name!r} not found", domain=name)


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
        raise refused(exc, f"cannot read domain XML: {message(exc)}") from None
    return out


def affects_live(flags: int) -> bool:
    """Whether attach flags change the running domain (else only its persistent XML)."""
    return bool(flags & _libvirt().VIR_DOMAIN_AFFECT_LIVE)


def attached_xml(dom, flags: int) -> str:
    """The one XML an attach with ``flags`` shows in: the live XML if it was live, else
    the persistent one (an attach of both shows in both; reading one is enough)."""
    libvirt = _libvirt()
    try:
        return dom.XMLDesc(0 if affects_live(flags) else libvirt.VIR_DOMAIN_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        raise refused(exc, f"cannot read domain XML: {message(exc)}") from None


def attach_flags(dom, live: bool, config: bool) -> int:
    """LIVE|CONFIG as the domain's state allows, or what --live/--config restrict to."""
    libvirt = _libvirt()
    try:
        active, persistent = dom.isActive(), dom.isPersistent()
    except libvirt.libvirtError as exc:
        raise refused(exc, f"cannot read the domain's state: {message(exc)}") from None
    if live and not active:
        raise InputError("the domain is not running", option="live")
    if config and not persistent:
        raise InputError("the domain is transient", option="config")
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
    """Refuse (UnsupportedError) unless the connected libvirt and QEMU support ACPI indexes."""
    libvirt = _libvirt()
    try:
        lib, qemu = _version(conn.getLibVersion()), _version(conn.getVersion())
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"cannot read the libvirt and QEMU versions: {message(exc)}") from None

    def text(v: tuple[int, ...]) -> str:
        return ".".join(map(str, v))

    if lib < ACPI_INDEX_LIBVIRT or qemu < ACPI_INDEX_QEMU:
        raise UnsupportedError(
            f"ACPI index naming needs libvirt >= {text(ACPI_INDEX_LIBVIRT)} and QEMU >= "
            f"{text(ACPI_INDEX_QEMU)}; this host has libvirt {text(lib)} and QEMU {text(qemu)}"
        )


def is_address_clash(exc) -> bool:
    """libvirt refused because another attach took the address (or ACPI index) first."""
    text = message(exc).lower()
    if "acpi-index" in text and "already exist" in text:  # QEMU: "... acpi-index = N already exist"
        return True
    return "double use" in text or "in use" in text or "already" in text and "address" in text


def persistent_xml(dom, name: str) -> str:
    """The persistent definition of a domain (what the next boot uses)."""
    libvirt = _libvirt()
    try:
        persistent = dom.isPersistent()
        if persistent:
            return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        raise refused(exc, f"cannot read domain XML: {message(exc)}", domain=name) from None
    raise InputError(f"domain {name!r} is transient: nothing to redefine")


def define(conn, xml: str, name: str | None = None) -> None:
    libvirt = _libvirt()
    try:
        conn.defineXML(xml)
    except libvirt.libvirtError as exc:
        raise refused(
            exc, f"libvirt refused the new definition: {message(exc)}", domain=name
        ) from None


def is_active(dom) -> bool:
    libvirt = _libvirt()
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError as exc:
        raise refused(exc, f"cannot read the domain's state: {message(exc)}") from None


def attach(dom, xml: str, flags: int, retryable: bool = False) -> None:
    """attachDeviceFlags; AddressClash if another attach took the address first."""
    libvirt = _libvirt()
    try:
        dom.attachDeviceFlags(xml, flags)
    except libvirt.libvirtError as exc:
        text = f"libvirt refused the attach: {message(exc)}"
        if is_address_clash(exc):
            raise AddressClash(text) from None
        raise refused(exc, text) from None


def machine_types(conn, arch: str) -> dict[str, str]:
    """Every machine type the host's emulators offer for ``arch``: name -> canonical name.

    Read from libvirt's capabilities as plain data (xmltodict): each ``<machine>``
    of the arch, and of its ``<domain type=...>`` entries, with its ``canonical``
    attribute when the name is an alias (``pc`` -> ``pc-i440fx-7.2``).
    """
    import xmltodict

    libvirt = _libvirt()
    try:
        text = conn.getCapabilities()
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"cannot read the host's capabilities: {message(exc)}") from None
    caps = xmltodict.parse(text, force_list=("guest", "machine", "domain"), disable_entities=True)
    out: dict[str, str] = {}
    for guest in caps.get("capabilities", {}).get("guest", []):
        a = guest.get("arch") or {}
        if a.get("@name") != arch:
            continue
        machines = list(a.get("machine", []))
        for dom in a.get("domain", []):
            machines += (dom or {}).get("machine", [])
        for m in machines:
            if isinstance(m, str):
                out.setdefault(m, m)
            elif m.get("#text"):
                out[m["#text"]] = m.get("@canonical") or out.get(m["#text"]) or m["#text"]
    return out


def resolve_machine(conn, root: etree._Element) -> str:
    """The canonical machine type of a domain (its parsed root) on this host;
    UnsupportedError for a type the emulator does not have."""
    arch, mtype = machine_type(root)
    known = machine_types(conn, arch)
    if not known:
        raise UnsupportedError(f"this host has no emulator for architecture {arch}")
    if mtype not in known:
        raise UnsupportedError(f"the emulator for {arch} has no machine type {mtype!r}")
    return known[mtype]


# virDomainState, as virsh prints it
STATES = {
    0: "no state",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shut off",
    6: "crashed",
    7: "pmsuspended",
}


def list_domains(conn) -> list:
    """Every domain on the host, running or only defined (listAllDomains), by name."""
    libvirt = _libvirt()
    try:
        doms = conn.listAllDomains(0)
    except libvirt.libvirtError as exc:
        raise LibvirtRefused(f"cannot list the domains: {message(exc)}") from None
    return sorted(doms, key=lambda d: d.name())


@dataclass(frozen=True)
class Snapshot:
    """A domain's state and XML, read once: live (None: not running) and persistent
    (None: transient)."""

    name: str
    uuid: str
    state: str
    active: bool
    persistent: bool
    live_xml: str | None
    config_xml: str | None


def snapshot(dom, name: str) -> Snapshot:
    """Read a domain's state and both XMLs; DomainNotFound if it vanished meanwhile."""
    libvirt = _libvirt()
    try:
        uuid = dom.UUIDString()
        state = STATES.get(dom.state()[0], "unknown")
        active, persistent = bool(dom.isActive()), bool(dom.isPersistent())
        live = dom.XMLDesc(0) if active else None
        config = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if persistent else None
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise DomainNotFound(f"domain {name!r} vanished", domain=name) from None
        raise LibvirtRefused(f"cannot read domain {name}: {message(exc)}", domain=name) from None
    return Snapshot(name, uuid, state, active, persistent, live, config)
