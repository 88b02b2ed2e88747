"""``audit``: what the next hot-plugged NIC of a domain will be called, and is that right?

A pure function of a domain's live and persistent XML (:func:`audit_domain`) gives one
typed :class:`AuditRow`: the machine, each NIC (MAC, address, guest name), the layout
planner recorded (if any), the name the next NIC gets with ``planner hotplug`` (the
choice of :mod:`planner.choice`) and with a plain ``virsh attach-device`` of a virtio
NIC without an address (libvirt's own first-fit, :mod:`planner.firstfit`, live and
persistent), and a verdict:

``ok``
    a plain attach gives the sequential name (and so does ``planner hotplug``);
``at-risk``
    a plain attach would not give the next name after the NICs present (``ens9``
    after ``ens3 ens4``), or would fail, live or in the persistent config, or would
    be named differently after the next cold boot (libvirt chose two places); or the
    domain was never laid out and ``planner hotplug`` cannot place a NIC in it;
``full``
    the domain is laid out, but ``planner hotplug`` has no place left for a NIC (the
    NIC range or the spare NIC root ports are all taken): relayout with more room;
``unsupported``
    the domain's machine is one planner does not handle, or its XML cannot be read.

"The next name after the NICs present" is read from the names themselves: the NIC
whose name carries the highest number (``ens4``, ``enp2s0``, ``eno2``) is followed by
the same name with that number plus one (``ens5``, ``enp3s0``, ``eno3``), in each
definition on its own (the live attach against the running domain's NICs, the config
attach against the persistent definition's). A definition without NICs has no
sequence to break; its expected first name is planner's choice.

libvirt is reached elsewhere (:mod:`planner.fleet`); nothing here changes anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import acpi
from .choice import choose
from .errors import NoRoomError, PlannerError, UnsupportedError
from .firstfit import guest_name, hotplug_off, predict_first_fit
from .machines import read_topology
from .names import name_nics
from .pci import PciAddress
from .topology import Topology
from .xmldoc import Document

OK, AT_RISK, FULL, UNSUPPORTED = "ok", "at-risk", "full", "unsupported"
ERROR, GONE = "error", "gone"  # libvirt could not tell us; the domain vanished meanwhile
VERDICTS = (OK, AT_RISK, FULL, UNSUPPORTED, ERROR, GONE)


@dataclass(frozen=True)
class NicInfo:
    """A NIC of an audited domain: its MAC, address, predicted guest name, and which
    definitions hold it."""

    mac: str | None
    address: PciAddress | None
    guest_name: str | None
    where: str  # "both", "live" (only in the running domain) or "config" (only persistent)

    def as_dict(self) -> dict:
        return {
            "mac": self.mac,
            "address": str(self.address) if self.address else None,
            "guest_name": self.guest_name,
            "where": self.where,
        }


@dataclass(frozen=True)
class NextNic:
    """Where the next NIC goes on one path, and its guest name (None: the attach fails,
    or does not apply; ``why`` says which)."""

    address: PciAddress | None
    guest_name: str | None
    why: str = ""

    def as_dict(self) -> dict:
        return {
            "address": str(self.address) if self.address else None,
            "guest_name": self.guest_name,
            **({"why": self.why} if self.why else {}),
        }


@dataclass(frozen=True)
class AuditRow:
    """One domain's audit: its NICs and layout, the name the next NIC gets from
    ``planner hotplug`` and from a plain ``virsh attach-device``, and the verdict."""

    domain: str
    state: str  # "running", "shut off", ... as libvirt says (or "" when unknown)
    persistent: bool
    verdict: str
    reason: str = ""
    machine: str | None = None  # planner's machine name, as the metadata writes it
    machine_type: str | None = None  # as the domain writes it
    nics: tuple[NicInfo, ...] = ()
    layout: dict | None = None  # the recorded layout's policy, None if never laid out
    expected: str | None = None  # the sequential next name (live, else persistent)
    expected_config: str | None = None  # ... in the persistent definition
    planner: NextNic | None = None
    virsh_live: NextNic | None = None
    virsh_config: NextNic | None = None
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        def nxt(n: NextNic | None) -> dict | None:
            return n.as_dict() if n is not None else None

        return {
            "domain": self.domain,
            "state": self.state,
            "persistent": self.persistent,
            "machine": self.machine,
            "machine_type": self.machine_type,
            "laid_out": self.layout is not None,
            "layout": self.layout,
            "nics": [n.as_dict() for n in self.nics],
            "expected_next": self.expected,
            "expected_next_config": self.expected_config,
            "next_planner": nxt(self.planner),
            "next_virsh": {"live": nxt(self.virsh_live), "config": nxt(self.virsh_config)},
            "verdict": self.verdict,
            "reason": self.reason,
        }


def failed_row(domain: str, verdict: str, reason: str, state: str = "", persistent=False):
    """A row for a domain that could not be audited (unreadable, vanished, refused)."""
    return AuditRow(domain, state, persistent, verdict, reason)


_MAC = re.compile(r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b")
_NAME = re.compile(r"^(en[a-z]*?)(\d+)(\D.*)?$")


def next_in_sequence(names: list[str]) -> str | None:
    """The name after the highest-numbered one: ``ens3 ens4`` -> ``ens5``, ``enp2s0`` ->
    ``enp3s0``; None when no name has a number."""
    best: tuple[int, str, str] | None = None
    for n in names:
        m = _NAME.match(n or "")
        if m and (best is None or int(m.group(2)) > best[0]):
            best = (int(m.group(2)), m.group(1), m.group(3) or "")
    if best is None:
        return None
    return f"{best[1]}{best[0] + 1}{best[2]}"


def _nic_rows(topo: Topology) -> dict[str, tuple[str | None, PciAddress | None, str | None]]:
    """NICs of one topology by key (MAC, else position): (mac, address, guest name)."""
    rows = [(d, d.address) for d in topo.nics if d.address is not None]
    _, names = name_nics(
        topo.chipset, topo.buses, rows, topo.controller_addresses(), topo.acpi_indexes
    )
    out = {}
    for d in topo.nics:
        found = _MAC.search(d.detail)
        mac = found.group(0).lower() if found else None
        out[(mac or f"#{d.order}").lower()] = (mac, d.address, names.get(id(d)))
    return out


def _nics(live: Topology | None, config: Topology | None) -> tuple[NicInfo, ...]:
    lr = _nic_rows(live) if live is not None else {}
    cr = _nic_rows(config) if config is not None else {}
    out = []
    for key, (mac, addr, name) in lr.items():
        out.append(NicInfo(mac, addr, name, "both" if key in cr or config is None else "live"))
    for key, (mac, addr, name) in cr.items():
        if key not in lr:
            out.append(NicInfo(mac, addr, name, "config" if live is not None else "both"))
    return tuple(out)


def _planner_next(topos: list[Topology]) -> tuple[NextNic, bool]:
    """``planner hotplug``'s choice for a NIC and its name; (next, has room)."""
    try:
        choice = choose(topos, "interface", "lowest")
        index = acpi.choose_index(topos) if acpi.enabled(topos) else None
    except NoRoomError as exc:
        return NextNic(None, None, str(exc)), False
    return NextNic(choice.address, guest_name(topos[0], choice.address, (), index)), True


def _virsh_next(live: Topology | None, config: Topology | None, offs) -> tuple[NextNic | None, ...]:
    ff = predict_first_fit(
        live, config, "interface", "virtio", live_hotplug_off=offs[0], config_hotplug_off=offs[1]
    )
    out: list[NextNic | None] = []
    for topo, addr, added, what in (
        (live, ff.live, (), "live"),
        (config, ff.config, ff.added, "config"),
    ):
        if topo is None:
            out.append(None)
        elif addr is None:
            out.append(NextNic(None, None, f"libvirt finds no {what} slot for it"))
        else:
            out.append(NextNic(addr, guest_name(topo, addr, added)))
    return tuple(out)


def audit_domain(
    name: str,
    live_xml: str | None,
    config_xml: str | None,
    *,
    state: str = "",
    resolved: str | None = None,
) -> AuditRow:
    """Audit one domain from its live XML (None: not running) and persistent XML (None:
    transient). ``resolved`` is the canonical machine type libvirt gives an alias."""
    persistent = config_xml is not None
    try:
        docs = [Document.parse(x) if x is not None else None for x in (live_xml, config_xml)]
        live, config = (read_topology(d, resolved) if d is not None else None for d in docs)
    except UnsupportedError as exc:
        return failed_row(name, UNSUPPORTED, str(exc), state, persistent)
    except PlannerError as exc:
        return failed_row(name, UNSUPPORTED, f"unreadable XML: {exc}", state, persistent)
    topos = [t for t in (live, config) if t is not None]
    if not topos:
        return failed_row(name, ERROR, "no XML to read", state, persistent)
    offs = [hotplug_off(d.root) if d is not None else frozenset() for d in docs]
    first = topos[0]
    nics = _nics(live, config)
    record = next((t.layout for t in topos if t.layout is not None), None)
    layout = None
    if record is not None:
        layout = {"machine": record.machine, **_policy(record)}
    try:
        planner_next, room = _planner_next(topos)
        virsh_live, virsh_config = _virsh_next(live, config, offs)
    except PlannerError as exc:  # a topology the choice cannot handle: say so
        return failed_row(name, UNSUPPORTED, f"cannot predict: {exc}", state, persistent)
    # Each definition has its own sequence: after a relayout of a running domain the
    # persistent one already has the new names, the running one keeps the old ones.
    live_next, config_next = (
        _expected(t, planner_next.guest_name) if t is not None else None for t in (live, config)
    )
    expected = live_next if live is not None else config_next
    verdict, reason = _verdict(
        room, record is not None, planner_next, virsh_live, virsh_config, live_next, config_next
    )
    return AuditRow(
        name,
        state,
        persistent,
        verdict,
        reason,
        first.machine,
        first.machine_type,
        nics,
        layout,
        expected,
        config_next,
        planner_next,
        virsh_live,
        virsh_config,
    )


def _policy(record) -> dict:
    p = record.policy
    out = {"nic-start": p.nic_start, "nic-slots": p.nic_slots}
    out.update({k: _num(v) for k, v in record.policy_attrs().items()})
    out["acpi-index"] = p.acpi_index
    return out


def _num(text: str):
    return int(text) if text.isdigit() else text


def _expected(topo: Topology, first: str | None) -> str | None:
    """The next name after the NICs of one definition (``first`` if it has none)."""
    present = [n for _, _, n in _nic_rows(topo).values() if n]
    return next_in_sequence(present) if present else first


def _verdict(room, laid_out, planner_next, live, config, live_next, config_next):
    if not room and laid_out:
        return FULL, f"planner hotplug: {planner_next.why}"
    wrong: dict[str, list[str]] = {}  # what a plain attach does -> where (live, config)
    for what, n, expected in (("live", live, live_next), ("config", config, config_next)):
        if n is None:
            continue
        if n.guest_name is None:
            wrong.setdefault(f"fails ({n.why})", []).append(what)
        elif expected is not None and n.guest_name != expected:
            wrong.setdefault(f"gives {n.guest_name}, not {expected}", []).append(what)
    notes = [f"a plain attach {text} ({' and '.join(where)})" for text, where in wrong.items()]
    if live and config and live.guest_name and config.guest_name != live.guest_name:
        # libvirt chose twice, differently: the guest's name changes at the next cold boot
        notes.append(
            f"a plain attach is {live.guest_name} now and {config.guest_name} after a cold boot"
        )
    if not room:  # never laid out, and planner cannot place a NIC there either
        notes.insert(0, f"planner hotplug: {planner_next.why}")
    if notes:
        return AT_RISK, "; ".join(notes)
    return OK, ""
