"""The ``planner`` command line: relayout, show and hotplug.

Errors are one line on stderr with a distinct exit code (see planner.errors);
``relayout --check`` exits 1 when the layout would change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import EXIT_CHECK_DIRTY, PlannerError


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PlannerError(f"cannot read {path}: {exc.strerror}") from None


def _slot_count(text: str) -> int:
    from .pci import parse_number

    try:
        return parse_number(text, "slot")
    except PlannerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nic-start",
        type=_slot_count,
        metavar="SLOT",
        help="first slot of the NIC range on bus 0 (pc; default 3)",
    )
    p.add_argument(
        "--nic-slots",
        type=_slot_count,
        metavar="N",
        help="minimum NIC capacity, counting existing NICs (default 8)",
    )
    p.add_argument(
        "--spare-ports",
        type=_slot_count,
        metavar="K",
        help="q35: empty root ports kept for hot-plugged NICs (default 4, at least 1)",
    )
    p.add_argument(
        "--acpi-index",
        action="store_true",
        default=None,
        help="give every NIC an ACPI index: the guest names it eno<N>",
    )


def _overrides(args) -> dict:
    return dict(
        nic_start=args.nic_start,
        nic_slots=args.nic_slots,
        spare_ports=args.spare_ports,
        acpi_index=args.acpi_index,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planner",
        description="PCI layouts for libvirt domains that keep guest NIC names predictable.",
    )
    parser.add_argument("--version", action="version", version=f"planner {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("relayout", help="rewrite domain XML with the planned PCI layout")
    r.add_argument("file", nargs="?", default="-", help="domain XML file, or - for stdin")
    out = r.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE", help="write the result to FILE")
    out.add_argument("-i", "--in-place", action="store_true", help="rewrite FILE atomically")
    out.add_argument("--diff", action="store_true", help="print a unified diff")
    out.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a relayout would change anything; write nothing",
    )
    out.add_argument("--json", action="store_true", help="print the plan as JSON")
    r.add_argument("-c", "--connect", metavar="URI", help="libvirt URI (with --domain)")
    r.add_argument("--domain", metavar="NAME", help="relayout a defined domain's persistent XML")
    r.add_argument("--define", action="store_true", help="with --domain: define the result")
    _add_policy_args(r)

    s = sub.add_parser("show", help="print the slot map and predicted guest NIC names")
    s.add_argument("file", nargs="?", default="-", help="domain XML file, or - for stdin")
    s.add_argument("--json", action="store_true", help="the slot map as JSON")
    s.add_argument(
        "--planned",
        action="store_true",
        help="show the layout a relayout would give, not the current one",
    )
    _add_policy_args(s)

    h = sub.add_parser("hotplug", help="attach a device at its planned address")
    h.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system)",
    )
    h.add_argument("domain", help="domain name or UUID")
    h.add_argument(
        "device",
        nargs="?",
        help="device XML file, or - for stdin; without it a NIC is rendered from a template",
    )
    kind = h.add_mutually_exclusive_group()
    kind.add_argument("--network", metavar="NAME", help="NIC on a libvirt network")
    kind.add_argument("--bridge", metavar="BR", help="NIC on a host bridge")
    kind.add_argument("--user", action="store_true", help="NIC with user-mode networking")
    h.add_argument("--model", default="virtio", help="NIC model (default virtio)")
    h.add_argument("--mac", help="NIC MAC address (default: libvirt generates one)")
    h.add_argument("--template", metavar="FILE", help="a jinja2 template for the NIC")
    h.add_argument(
        "--policy",
        choices=("lowest", "after-last"),
        default="lowest",
        help="lowest: fill holes left by unplugs (default); after-last: after the highest NIC",
    )
    scope = h.add_mutually_exclusive_group()
    scope.add_argument("--live", action="store_true", help="affect the running domain only")
    scope.add_argument("--config", action="store_true", help="affect the persistent config only")
    h.add_argument("--dry-run", action="store_true", help="print the device XML; attach nothing")
    h.add_argument("--json", action="store_true", help="print the result as JSON")
    h.add_argument(
        "--fallback",
        action="store_true",
        help="if planner cannot place the device, let libvirt choose (with a warning)",
    )
    return parser


def cmd_relayout(args) -> int:
    from .relayout import relayout

    if args.domain:
        from .virt import relayout_domain

        return relayout_domain(args)
    if args.in_place and args.file == "-":
        raise PlannerError("--in-place needs a file, not stdin")
    result = relayout(_read_input(args.file), **_overrides(args))
    for warning in result.plan.warnings:
        print(f"planner: warning: {warning}", file=sys.stderr)
    if args.check:
        return EXIT_CHECK_DIRTY if result.changed else 0
    if args.json:
        import json

        from .report import plan_json

        print(json.dumps(plan_json(result.plan, result.changed), indent=2))
    elif args.diff:
        import difflib

        name = args.file if args.file != "-" else "stdin"
        sys.stdout.writelines(
            difflib.unified_diff(
                result.original.splitlines(keepends=True),
                result.xml.splitlines(keepends=True),
                f"a/{name}",
                f"b/{name}",
            )
        )
    elif args.in_place or args.output is not None:
        from .files import write_output

        if not (args.in_place and not result.changed):
            write_output(args.file if args.in_place else args.output, result.xml)
    else:
        sys.stdout.write(result.xml)
    return 0


def cmd_show(args) -> int:
    from .report import show

    print(
        show(_read_input(args.file), planned=args.planned, as_json=args.json, **_overrides(args)),
        end="",
    )
    return 0


def cmd_hotplug(args) -> int:
    from .attach import run_cli

    return run_cli(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"relayout": cmd_relayout, "show": cmd_show, "hotplug": cmd_hotplug}[args.command]
    try:
        return handler(args)
    except PlannerError as exc:
        print(f"planner: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
