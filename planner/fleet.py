"""A whole host: audit every domain, relayout every domain not yet laid out.

The per-domain work is here, one domain at a time: a domain that fails, or vanishes
while it is read, gives a row that says so and the others go on. libvirt is reached
only through :mod:`planner.virt`; the audit itself is the pure :mod:`planner.audit`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from . import layout, lock, virt
from .audit import ERROR, GONE, UNSUPPORTED, AuditRow, audit_domain, failed_row
from .errors import DomainNotFound, PlannerError, UnsupportedError
from .machines import needs_resolving
from .relayout import relayout
from .xmldoc import Document


def _domains(conn, names) -> list[tuple[str, object | None]]:
    """(name, virDomain or None if not found): the named ones, else every domain."""
    if not names:
        return [(d.name(), d) for d in virt.list_domains(conn)]
    out = []
    for n in names:
        try:
            out.append((n, virt.lookup(conn, n)))
        except DomainNotFound:
            out.append((n, None))
    return out


def _resolved(conn, xml: str) -> str | None:
    """The canonical machine type of an alias no machine knows by name (else None)."""
    try:
        root = Document.parse(xml).root
    except PlannerError:
        return None  # audit_domain reports the unreadable XML
    return virt.resolve_machine(conn, root) if needs_resolving(root) else None


def audit_one(conn, name: str, dom) -> AuditRow:
    """Audit one domain; a vanished or unreadable one is a row, not an exception."""
    if dom is None:
        return failed_row(name, ERROR, "domain not found")
    try:
        snap = virt.snapshot(dom, name)
    except DomainNotFound:
        return failed_row(name, GONE, "the domain vanished during the audit")
    except PlannerError as exc:
        return failed_row(name, ERROR, str(exc))
    try:
        resolved = _resolved(conn, snap.live_xml or snap.config_xml or "")
    except PlannerError as exc:
        return failed_row(name, UNSUPPORTED, str(exc), snap.state, snap.persistent)
    try:
        return audit_domain(
            name, snap.live_xml, snap.config_xml, state=snap.state, resolved=resolved
        )
    except Exception as exc:  # noqa: BLE001 - a bug on one domain must not hide the others
        return failed_row(name, ERROR, _internal(exc), snap.state, snap.persistent)


def _internal(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"internal error (a planner bug: please report it): {type(exc).__name__}: {text}"


def audit_host(conn, names: list[str] | tuple[str, ...] = ()) -> list[AuditRow]:
    """One row per domain: the named ones, else every domain on the host (running or
    only defined). Reads the live and persistent XML; changes nothing."""
    return [audit_one(conn, name, dom) for name, dom in _domains(conn, names)]


# --- relayout --all -----------------------------------------------------------------------

DEFINED, WOULD_DEFINE, UNCHANGED, SKIPPED, FAILED = (
    "defined",
    "would be defined",
    "unchanged",
    "skipped",
    "failed",
)
COLD_BOOT = "takes effect at the next cold boot (destroy + start)"


@dataclass(frozen=True)
class RelayoutOutcome:
    """What ``relayout --all`` did to one domain."""

    domain: str
    status: str  # defined, would be defined, unchanged, skipped, failed, gone
    changed: bool | None = None
    defined: bool = False
    running: bool = False
    note: str = ""
    error: PlannerError | None = None  # None for a failure that is a planner bug

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def summary(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.domain}: {self.status}{note}"

    def as_dict(self) -> dict:
        return {
            "domain": self.domain,
            "status": self.status,
            "changed": self.changed,
            "defined": self.defined,
            "running": self.running,
            "note": self.note,
        }


def relayout_domain(
    conn, name: str, dom, *, define: bool, force: bool = False, **overrides
) -> RelayoutOutcome:
    """Relayout one domain's persistent definition; define it if ``define`` and it changed.

    Skips a transient domain, one on a machine planner does not lay out, and (unless
    ``force``) one whose definition already has a planner layout. A running domain
    keeps its current layout until its next cold boot.
    The define happens under the domain's hot-plug lock, after checking that the domain
    still exists (a define would otherwise bring a deleted domain back).
    """
    try:
        snap = virt.snapshot(dom, name)
    except DomainNotFound:
        return RelayoutOutcome(name, GONE, note="the domain vanished")
    except PlannerError as exc:
        return RelayoutOutcome(name, FAILED, note=str(exc), error=exc)
    if not snap.persistent:
        return RelayoutOutcome(
            name,
            SKIPPED,
            running=snap.active,
            note="transient: no persistent definition to rewrite; lay it out where it is created",
        )
    try:
        doc = Document.parse(snap.config_xml)
        resolved = virt.resolve_machine(conn, doc.root)
        result = relayout(doc, machine_type=resolved, **overrides)  # reads the metadata too
        if layout.find(doc.root) is not None and not force:
            return RelayoutOutcome(name, SKIPPED, running=snap.active, note="already laid out")
        if not result.changed:
            return RelayoutOutcome(name, UNCHANGED, False, running=snap.active)
        note = COLD_BOOT if snap.active else ""
        if not define:
            return RelayoutOutcome(name, WOULD_DEFINE, True, running=snap.active, note=note)
        with lock.domain_lock(snap.uuid):
            again = virt.snapshot(virt.lookup(conn, snap.uuid), name)
            if again.config_xml != snap.config_xml:
                raise PlannerError("the definition changed while it was laid out; run again")
            virt.define(conn, result.xml, name)
        return RelayoutOutcome(name, DEFINED, True, True, snap.active, note)
    except DomainNotFound:
        return RelayoutOutcome(name, GONE, note="the domain vanished")
    except UnsupportedError as exc:  # a machine planner does not lay out: not a failure
        return RelayoutOutcome(name, SKIPPED, running=snap.active, note=str(exc))
    except PlannerError as exc:
        return RelayoutOutcome(name, FAILED, running=snap.active, note=str(exc), error=exc)
    except Exception as exc:  # noqa: BLE001 - a bug on one domain must not stop the others
        return RelayoutOutcome(name, FAILED, running=snap.active, note=_internal(exc))


def relayout_all(
    conn, *, define: bool, force: bool = False, only: str | None = None, **overrides
) -> list[RelayoutOutcome]:
    """:func:`relayout_domain` for every domain on the host (whose name matches the
    shell pattern ``only``, if given), in name order; one failure does not stop the rest."""
    return [
        relayout_domain(conn, d.name(), d, define=define, force=force, **overrides)
        for d in virt.list_domains(conn)
        if only is None or fnmatch.fnmatchcase(d.name(), only)
    ]
