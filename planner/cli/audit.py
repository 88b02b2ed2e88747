"""``planner audit``: one row per domain, what its next hot-plugged NIC will be called.

Exit status, for monitoring (the worst domain decides):

    0  every domain audited is ``ok`` (or there is none)
    1  some domain is ``at-risk`` or ``full``, none is in error
    2  some domain could not be judged: ``unsupported`` (a machine planner does not
       handle, XML planner cannot read), ``error`` (a named domain that does not exist,
       libvirt refused to give its XML)
    5  libvirtd unreachable (nothing audited); 6 libvirt refused to list the domains

A domain that vanishes during the audit is a ``gone`` row and does not change the
status. The audit reads the live and the persistent XML and changes nothing.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..audit import AuditRow, NextNic

EXIT_OK, EXIT_AT_RISK, EXIT_ERRORS = 0, 1, 2


def add_parser(sub) -> argparse.ArgumentParser:
    a = sub.add_parser(
        "audit",
        help="for every domain: its NICs and the name the next hot-plugged NIC will get",
    )
    a.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system)",
    )
    a.add_argument("domains", nargs="*", metavar="DOMAIN", help="domains (default: all)")
    a.add_argument("--json", action="store_true", help="print the rows as JSON")
    return a


def exit_status(rows: list[AuditRow]) -> int:
    from ..audit import AT_RISK, ERROR, FULL, UNSUPPORTED  # loaded by audit only

    verdicts = {r.verdict for r in rows}
    if verdicts & {UNSUPPORTED, ERROR}:
        return EXIT_ERRORS
    if verdicts & {AT_RISK, FULL}:
        return EXIT_AT_RISK
    return EXIT_OK


def _short(a) -> str:
    """00:03.0 (the PCI domain is always 0000 here)."""
    text = str(a)
    return text[5:] if text.startswith("0000:") else text


def _nics(row: AuditRow) -> str:
    parts = []
    for n in row.nics:
        where = "" if n.where == "both" else f" {n.where} only"
        addr = _short(n.address) if n.address else "-"
        parts.append(f"{n.guest_name or '?'} {addr} {n.mac or '-'}{where}")
    return ", ".join(parts) or "-"


def _next(n: NextNic | None) -> str:
    if n is None:
        return "-"
    return n.guest_name if n.guest_name else "none"


def _virsh(row: AuditRow) -> str:
    live, config = row.virsh_live, row.virsh_config
    if live is None or config is None:
        return _next(live or config)
    if _next(live) == _next(config):
        return _next(live)
    return f"{_next(live)}/{_next(config)}"


def _layout(row: AuditRow) -> str:
    if row.layout is None:
        return "no" if row.machine else "-"
    p = row.layout
    if "spare-ports" in p:
        text = f"spare-ports={p['spare-ports']}"
    else:
        text = f"nic-slots={p['nic-slots']}"
    return text + (" acpi" if p.get("acpi-index") else "")


HEADER = ("DOMAIN", "STATE", "MACHINE", "LAYOUT", "NEXT(planner)", "NEXT(virsh)", "VERDICT", "NICS")


def table(rows: list[AuditRow]) -> str:
    """Aligned columns, one row per domain; then the reasons of every verdict but ok."""
    if not rows:
        return "no domains\n"
    lines = [HEADER]
    for r in rows:
        state = r.state + ("" if r.persistent or not r.state else ", transient")
        lines.append(
            (
                r.domain,
                state or "-",
                r.machine_type or "-",
                _layout(r),
                _next(r.planner) if r.machine else "-",
                _virsh(r) if r.machine else "-",
                r.verdict,
                _nics(r) if r.machine else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER) - 1)]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(line[:-1], widths)) + "  " + line[-1] for line in lines
    ]
    notes = [f"{r.domain}: {r.verdict}: {r.reason}" for r in rows if r.reason]
    if notes:
        out += ["", *notes]
    if any(r.virsh_live and r.virsh_config and "/" in _virsh(r) for r in rows):
        out += ["", "NEXT(virsh) live/config: a plain attach-device --live --config differs"]
    return "\n".join(out) + "\n"


def run(args) -> int:
    from .. import virt
    from ..fleet import audit_host

    with virt.connection(args.connect) as conn:
        rows = audit_host(conn, args.domains)
    if args.json:
        import json

        print(json.dumps({"domains": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(table(rows), end="")
    return exit_status(rows)
