"""Unplug: detach one PCI device, live and persistent, and wait until it is gone.

A hot-unplug is a request to the guest: QEMU signals an ACPI (or PCIe native) eject,
and only when the guest has released the device does QEMU delete it and libvirt emit
``VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`` and free its slot. A guest that never answers
(no OS, no acpiphp, a hung kernel) keeps the device, and its slot, in the running
domain for as long as it runs; ``virsh detach-device`` returns without saying so.
So after asking libvirt to detach, :func:`unplug` waits for that event (or
``DEVICE_REMOVAL_FAILED``) up to a timeout and says which of the two happened. The
persistent definition is edited by libvirt at once either way.

The live detach goes by the device's alias (``virDomainDetachDeviceAlias``, asynchronous);
a detach by XML would block inside libvirt for up to 5 s waiting for the guest. The
persistent definition is detached with the element's XML as it has it.

Events need libvirt's event loop registered *before* the connection is opened. When
planner opens the connection it does so; with a connection the caller opened, events
may never arrive, so the live XML is also polled (bounded by the same timeout). The
live XML is checked right after the callback is registered too, so a device that is
gone before that is not waited for.

Nothing here prints; :mod:`planner.cli.unplug` does.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass

from lxml import etree

from . import devices, lock, virt
from .errors import InputError, LibvirtRefused, PlannerError
from .machines import read_topology
from .names import name_nics
from .pci import PciAddress
from .topology import pci_address
from .xmldoc import Document

DEFAULT_TIMEOUT = 30.0
POLL_WITH_EVENTS = 1.0  # seconds between live-XML checks when events are known to arrive
POLL_WITHOUT_EVENTS = 0.2  # ... when they may not (a connection the caller opened)

_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$", re.I)
_PCI = re.compile(r"^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$", re.I)
_NAME = re.compile(r"^en[a-z0-9]+$")


@dataclass(frozen=True)
class Match:
    """What the user asked for: exactly one of a MAC, a PCI address or a guest name."""

    mac: str | None = None
    address: PciAddress | None = None
    name: str | None = None

    def __str__(self) -> str:
        if self.mac:
            return f"MAC {self.mac}"
        if self.address:
            return f"PCI address {self.address}"
        return f"guest name {self.name}"


def parse_match(text: str) -> Match:
    """A MAC (any case), a PCI address (``0000:00:04.0`` or ``00:04.0``), or a guest name."""
    s = text.strip()
    if _MAC.match(s):
        return Match(mac=s.lower())
    m = _PCI.match(s)
    if m:
        dom, bus, slot, fn = m.groups()
        addr = PciAddress(int(dom or "0", 16), int(bus, 16), int(slot, 16), int(fn))
        if addr.slot > 0x1F:
            raise InputError(f"PCI address {text!r}: slot must be 00-1f")
        return Match(address=addr)
    if _NAME.match(s):
        return Match(name=s)
    raise InputError(
        f"{text!r} is not a MAC address, a PCI address (0000:00:04.0) or a guest NIC name (ens4)"
    )


@dataclass(frozen=True)
class Found:
    """One device element of one definition ('live' or 'config')."""

    where: str
    element: etree._Element
    kind: str
    address: PciAddress | None
    mac: str | None
    alias: str | None
    guest_name: str | None
    is_pci: bool

    @property
    def identity(self) -> tuple:
        """What makes the live and the persistent element the same device: MAC, else address."""
        return ("mac", self.mac) if self.mac else ("address", self.address)

    def xml(self) -> str:
        return etree.tostring(self.element, encoding="unicode", with_tail=False)

    def label(self) -> str:
        if self.kind == "interface" and self.mac:
            return f"interface {self.mac}"
        if self.kind == "disk":
            target = self.element.find("target")
            if target is not None and target.get("dev"):
                return f"disk {target.get('dev')}"
        return self.kind


def _guest_names(doc: Document) -> dict[int, str]:
    """Predicted guest name of every NIC, by element position (empty if unreadable)."""
    try:
        topo = read_topology(doc)
    except PlannerError:
        return {}
    rows = []
    for d in topo.devices:
        a = d.address or (d.fixed_at if d.pos is not None else None)
        if a is not None:
            rows.append((d, a))
    _, names = name_nics(
        topo.chipset, topo.buses, rows, topo.controller_addresses(), topo.acpi_indexes
    )
    return {d.pos: names[id(d)] for d, _ in rows if id(d) in names and d.pos is not None}


def devices_of(xml: str, where: str) -> list[Found]:
    """Every device element of a domain XML that a match could name."""
    doc = Document.parse(xml)
    devs = doc.root.find("devices")
    if devs is None:
        return []
    names = _guest_names(doc)
    out = []
    for el in devs:
        if not isinstance(el.tag, str):
            continue
        try:
            addr, _ = pci_address(el)
        except InputError:
            addr = None
        mac_el = el.find("mac") if el.tag == "interface" else None
        mac = (mac_el.get("address") or "").lower() or None if mac_el is not None else None
        alias_el = el.find("alias")
        alias = alias_el.get("name") if alias_el is not None else None
        pci = devices.is_pci(el) and not (el.tag == "controller" and el.get("type") == "pci")
        name = names.get(doc.position(el)) if el.tag == "interface" else None
        out.append(Found(where, el, el.tag, addr, mac, alias, name, pci))
    return out


def _matches(f: Found, m: Match) -> bool:
    if m.mac:
        return f.mac == m.mac
    if m.address:
        return f.address == m.address
    return f.guest_name is not None and f.guest_name == m.name


def find_device(xmls: dict[str, str], match: Match) -> dict[str, Found]:
    """The one device ``match`` names, as found in each definition: {'live'|'config': Found}.

    Raises InputError if no device or several devices match, or if it is not a PCI device.
    """
    hits: dict[tuple, dict[str, Found]] = {}
    for where, xml in xmls.items():
        per_def = [f for f in devices_of(xml, where) if _matches(f, match)]
        if len(per_def) > 1:
            what = ", ".join(_describe(f) for f in per_def)
            raise InputError(f"{match} matches {len(per_def)} devices in the {where} XML: {what}")
        for f in per_def:
            hits.setdefault(f.identity, {})[where] = f
    if not hits:
        scope = " or ".join(f"{w} XML" for w in xmls) or "domain"
        raise InputError(f"no device matches {match} in the {scope}")
    if len(hits) > 1:
        what = "; ".join(
            ", ".join(f"{_describe(f)} ({w})" for w, f in per.items()) for per in hits.values()
        )
        raise InputError(f"{match} matches {len(hits)} different devices: {what}")
    (found,) = hits.values()
    for f in found.values():
        if not f.is_pci:
            raise InputError(
                f"{_describe(f)} is not a PCI device planner can unplug: "
                "detach it with virsh detach-device"
            )
    return found


def _describe(f: Found) -> str:
    at = f" at {f.address}" if f.address else ""
    name = f" ({f.guest_name})" if f.guest_name else ""
    return f"{f.label()}{at}{name}"


# --- the event loop -------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop_started = False


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it in a daemon thread.

    Must happen before a connection is opened for that connection to deliver events.
    Idempotent; the thread lives as long as the process.
    """
    global _loop_started
    libvirt = virt._libvirt()
    with _loop_lock:
        if _loop_started:
            return
        if libvirt.virEventRegisterDefaultImpl() < 0:  # pragma: no cover - libvirt says why
            raise LibvirtRefused("cannot register libvirt's event loop")

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="planner-libvirt-events", daemon=True).start()
        _loop_started = True


# --- the domain lock, through one place ------------------------------------------------


def domain_lock(domain, timeout: float = lock.DEFAULT_TIMEOUT):
    """The per-domain planner lock (shared with hot-plug), waited for up to ``timeout`` s."""
    return lock.domain_lock(domain.UUIDString(), timeout)


# --- unplug -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnplugResult:
    """What an unplug did: the device, where it was, what was detached, and whether the
    guest released it before the timeout."""

    kind: str
    label: str  # "interface 52:54:00:..", "disk vdb", ...
    mac: str | None
    address: PciAddress | None  # where it was: live address if running, else config
    guest_name: str | None
    detached_live: bool  # a live detach was requested
    detached_config: bool  # removed from the persistent definition
    removed: bool  # gone from the running domain (or there was no live part to wait for)
    waited: float  # seconds spent waiting for the guest
    observed_by: str  # 'event', 'poll', 'absent' (gone before the wait), 'none' (no live part)
    timeout: float
    kept_live: bool = False  # --config on a running domain that still has the device

    @property
    def status(self) -> str:
        return "removed" if self.removed else "pending"

    def summary(self) -> str:
        at = f" at {self.address}" if self.address else ""
        name = f" ({self.guest_name})" if self.guest_name else ""
        head = f"{self.label}{at}{name}"
        if self.kept_live:
            return f"{head} removed from the persistent config (the running domain keeps it)"
        if self.removed:
            return f"{head} removed"
        config = (
            "the persistent config no longer has it"
            if self.detached_config
            else "the persistent config was not changed"
        )
        return (
            f"{head}: detach requested, but the guest has not released it after "
            f"{self.timeout:g}s; its slot stays taken in the running domain until it does "
            f"({config})"
        )

    def as_dict(self) -> dict:
        return {
            "device": self.kind,
            "mac": self.mac,
            "address": str(self.address) if self.address else None,
            "guest_name": self.guest_name,
            "status": self.status,
            "live": self.detached_live,
            "config": self.detached_config,
            "waited": round(self.waited, 3),
            "observed_by": self.observed_by,
        }


def _still_live(domain, device: Found) -> bool:
    """Is the device (same MAC, else same address) still in the running domain's XML?"""
    libvirt = virt._libvirt()
    try:
        if not domain.isActive():
            return False
        xml = domain.XMLDesc(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise LibvirtRefused(f"cannot read the live XML: {virt.message(exc)}") from None
    return any(f.identity == device.identity for f in devices_of(xml, "live"))


class _Waiter:
    """DEVICE_REMOVED / DEVICE_REMOVAL_FAILED callbacks for one device alias."""

    def __init__(self, uuid: str, alias: str | None):
        self.uuid, self.alias = uuid, alias
        self.done = threading.Event()
        self.outcome: str | None = None  # 'removed' or 'failed'

    def _hit(self, dom, alias, outcome: str) -> None:
        if dom.UUIDString() == self.uuid and self.alias is not None and alias == self.alias:
            self.outcome = outcome
            self.done.set()

    def removed(self, _conn, dom, alias, _opaque) -> None:
        self._hit(dom, alias, "removed")

    def failed(self, _conn, dom, alias, _opaque) -> None:
        self._hit(dom, alias, "failed")


def unplug(
    domain,
    match: str,
    *,
    conn=None,
    live: bool = False,
    config: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    lock_timeout: float = lock.DEFAULT_TIMEOUT,
) -> UnplugResult:
    """Detach the one PCI device ``match`` names (MAC, PCI address or predicted guest name).

    ``domain`` is a virDomain, or a name/UUID with ``conn`` (a virConnect or a URI).
    Detaches live and persistent as the domain's state allows (``live``/``config``
    restrict, as in virsh), then waits up to ``timeout`` seconds for the guest to release
    the device. Raises InputError when nothing, several devices or a non-PCI device
    match; DomainNotFound, Unreachable and LibvirtRefused from the libvirt edge.
    """
    if timeout < 0:
        raise InputError("the timeout must not be negative")
    wanted = parse_match(match)
    opened = None
    events_reliable = False
    if isinstance(domain, str):
        if conn is None or isinstance(conn, str):
            ensure_event_loop()  # before opening: this connection will deliver events
            conn = opened = virt.connect(conn)
            events_reliable = True
        try:
            domain = virt.lookup(conn, domain)
        except BaseException:
            if opened is not None:
                opened.close()
            raise
    try:
        return _unplug(domain, wanted, live, config, timeout, events_reliable, lock_timeout)
    finally:
        if opened is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                opened.close()


def _unplug(
    domain,
    wanted: Match,
    live: bool,
    config: bool,
    timeout: float,
    events_reliable,
    lock_timeout: float = lock.DEFAULT_TIMEOUT,
):
    libvirt = virt._libvirt()
    flags = virt.attach_flags(domain, live, config)
    affect_live = bool(flags & libvirt.VIR_DOMAIN_AFFECT_LIVE)
    affect_config = bool(flags & libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    with domain_lock(domain, lock_timeout):
        xmls = virt.domain_xmls(domain)
        scope = {
            w: x
            for w, x in xmls.items()
            if (w == "live" and affect_live) or (w == "config" and affect_config)
        }
        found = find_device(scope, wanted)
        shown = found.get("live") or found["config"]
        do_live = "live" in found
        do_config = "config" in found

        waiter = _Waiter(domain.UUIDString(), found["live"].alias if do_live else None)
        callbacks: list[int] = []
        dconn = domain.connect()
        try:
            if do_live:
                for event, cb in (
                    (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, waiter.removed),
                    (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED, waiter.failed),
                ):
                    try:
                        callbacks.append(dconn.domainEventRegisterAny(domain, event, cb, None))
                    except libvirt.libvirtError:
                        events_reliable = False  # fall back to polling the live XML
                started = time.monotonic()
                request_live_detach(domain, found["live"])
            if do_config:
                try:
                    _detach(domain, found["config"], libvirt.VIR_DOMAIN_AFFECT_CONFIG, "persistent")
                except LibvirtRefused as exc:
                    if do_live:
                        raise LibvirtRefused(
                            f"{exc} (the live detach was already requested)"
                        ) from None
                    raise
            removed, waited, how = True, 0.0, "none"
            if do_live:
                removed, waited, how = _wait(
                    domain, found["live"], waiter, started, timeout, events_reliable
                )
        finally:
            for cb_id in callbacks:
                with contextlib.suppress(Exception):  # the connection may be gone
                    dconn.domainEventDeregisterAny(cb_id)
        if waiter.outcome == "failed":
            raise LibvirtRefused(
                f"the guest refused to release {_describe(shown)} (DEVICE_REMOVAL_FAILED)"
                + ("; the persistent config no longer has it" if do_config else "")
            )
        return UnplugResult(
            kind=shown.kind,
            label=shown.label(),
            mac=shown.mac,
            address=shown.address,
            guest_name=shown.guest_name,
            detached_live=do_live,
            detached_config=do_config,
            removed=removed,
            waited=waited,
            observed_by=how,
            timeout=timeout,
            kept_live=not do_live
            and "live" in xmls
            and any(f.identity == shown.identity for f in devices_of(xmls["live"], "live")),
        )


def _detach(domain, f: Found, flag: int, what: str) -> None:
    """Ask libvirt to detach ``f`` from one definition.

    Live, by its alias when it has one (``virDomainDetachDeviceAlias``): that call
    returns at once and the removal is reported by DEVICE_REMOVED, whereas a detach by
    XML waits inside libvirt up to 5 s for the guest (qemuDomainWaitForDeviceRemoval;
    measured: 5.0 s for a guest that never answers), which would make ``timeout``
    meaningless below 5 s. The persistent definition, and a live device without an
    alias, are detached with the element's XML as that definition has it.
    """
    libvirt = virt._libvirt()
    try:
        if f.where == "live" and f.alias:
            domain.detachDeviceAlias(f.alias, flag)
            return
        domain.detachDeviceFlags(f.xml(), flag)
    except libvirt.libvirtError as exc:
        raise virt.refused(
            exc,
            f"libvirt refused to detach {_describe(f)} from the {what} definition: "
            f"{virt.message(exc)}",
        ) from None


_ALREADY_PENDING = ("already in progress", "in the process of unplug", "unplug already")


def request_live_detach(domain, f: Found) -> None:
    """Ask the running domain to release ``f``, tolerating the two races of a pending unplug.

    The device may be gone by now (an earlier request the guest has just acknowledged,
    between our read of the live XML and this call): nothing is left to detach. Or an
    earlier request may still be pending, which QEMU refuses to repeat: waiting for it
    is all there is to do.
    """
    libvirt = virt._libvirt()
    try:
        _detach(domain, f, libvirt.VIR_DOMAIN_AFFECT_LIVE, "running domain")
    except LibvirtRefused as exc:
        if not _still_live(domain, f):
            return
        if any(p in str(exc).lower() for p in _ALREADY_PENDING):
            return
        raise


def _wait(
    domain, device: Found, waiter: _Waiter, started: float, timeout: float, events_reliable: bool
):
    """(removed, seconds since ``started``, how it was seen) for the live part of an unplug.

    ``started`` is when the live detach was requested: the timeout counts from there.
    """
    # The device may already be gone (the guest was quick, or before the callback existed).
    if not _still_live(domain, device):
        return True, time.monotonic() - started, "absent"
    step = POLL_WITH_EVENTS if events_reliable else POLL_WITHOUT_EVENTS
    deadline = started + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        if waiter.done.wait(min(step, left)):
            return waiter.outcome == "removed", time.monotonic() - started, "event"
        if not _still_live(domain, device):
            return True, time.monotonic() - started, "poll"
    if waiter.done.is_set():  # pragma: no cover - a last-moment event
        return waiter.outcome == "removed", time.monotonic() - started, "event"
    return not _still_live(domain, device), time.monotonic() - started, "poll"


__all__ = [
    "DEFAULT_TIMEOUT",
    "Found",
    "Match",
    "UnplugResult",
    "ensure_event_loop",
    "find_device",
    "parse_match",
    "unplug",
]
