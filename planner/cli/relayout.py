"""``planner relayout``: a file (or stdin), or a defined domain, through one output path."""

from __future__ import annotations

import argparse
import sys

from ..relayout import RelayoutResult, relayout
from ..xmldoc import Document
from .common import (
    EXIT_SOFTWARE,
    UsageError,
    add_policy_args,
    exit_code,
    policy_overrides,
    read_input,
    warn,
    write_stdout,
)

EXIT_CHECK_DIRTY = 1
EXIT_INTERNAL = EXIT_SOFTWARE  # a planner bug, as the top-level guard reports it


def add_parser(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("relayout", help="rewrite domain XML with the planned PCI layout")
    r.add_argument("file", nargs="?", default=None, help="domain XML file, or - for stdin")
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
    r.add_argument(
        "--define", action="store_true", help="with --domain or --all: define the result"
    )
    r.add_argument(
        "--all",
        action="store_true",
        help="every persistent domain of the host not laid out yet (-c URI)",
    )
    r.add_argument("--dry-run", action="store_true", help="with --all: define nothing")
    r.add_argument(
        "--only", metavar="GLOB", help="with --all: only the domains whose name matches GLOB"
    )
    r.add_argument("--force", action="store_true", help="with --all: domains already laid out too")
    add_policy_args(r)
    return r


def run(args) -> int:
    if args.all:
        return _run_all(args)
    extra = (("--dry-run", args.dry_run), ("--force", args.force), ("--only", args.only))
    for flag, given in extra:
        if given:
            raise UsageError(f"{flag} needs --all")
    if args.domain:
        return _run_domain(args)
    if args.define:
        raise UsageError("--define needs --domain")
    path = args.file if args.file is not None else "-"
    if args.in_place and path == "-":
        raise UsageError("--in-place needs a file, not stdin")
    result = relayout(read_input(path), **policy_overrides(args))
    return emit(result, args, path if path != "-" else "stdin", in_place=path)


def _run_domain(args) -> int:
    """A defined domain's persistent XML: the same output options as a file, plus --define."""
    if args.file is not None:
        raise UsageError("give a file or --domain, not both")
    if args.in_place:
        raise UsageError("--in-place rewrites a file: with --domain, use --define")
    if args.define and args.check:
        raise UsageError("--check writes nothing: it cannot be combined with --define")
    from .. import virt

    with virt.connection(args.connect) as conn:
        dom = virt.lookup(conn, args.domain)
        doc = Document.parse(virt.persistent_xml(dom, args.domain))
        resolved = virt.resolve_machine(conn, doc.root)
        result = relayout(doc, machine_type=resolved, **policy_overrides(args))
        quiet = not (args.json or args.diff)  # stdout is free for the status line
        code = emit(result, args, f"domain/{args.domain}", print_xml=not args.define)
        if not args.define or code:
            return code
        if result.changed:
            virt.define(conn, result.xml, args.domain)
        state = "defined" if result.changed else "already laid out"
        running = result.changed and virt.is_active(dom)
        note = "; it takes effect at the next cold boot (destroy + start)" if running else ""
        line = f"domain {args.domain} {state}{note}"
        if quiet:
            write_stdout(line + "\n")
        else:
            print(f"planner: {line}", file=sys.stderr)
        return 0


def _run_all(args) -> int:
    """Every persistent domain of the host: one line per domain; exit status is the code
    of the first domain that failed (0 if none did)."""
    for flag, given in (
        ("a file", args.file is not None),
        ("--domain", args.domain),
        ("-i", args.in_place),
        ("-o", args.output is not None),
        ("--diff", args.diff),
        ("--check", args.check),
    ):
        if given:
            raise UsageError(f"--all relayouts the host's domains: it does not go with {flag}")
    from .. import virt
    from ..fleet import relayout_all

    define = args.define and not args.dry_run
    with virt.connection(args.connect) as conn:
        outcomes = relayout_all(
            conn, define=define, force=args.force, only=args.only, **policy_overrides(args)
        )
    if args.json:
        import json

        print(json.dumps({"domains": [o.as_dict() for o in outcomes]}, indent=2))
    else:
        for o in outcomes:
            print(o.summary())
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        tally = ", ".join(f"{n} {status}" for status, n in counts.items())
        dry = " (dry run: nothing defined)" if args.define and args.dry_run else ""
        print(f"{len(outcomes)} domain(s): {tally or 'none'}{dry}")
    failed = [o for o in outcomes if o.failed]
    if not failed:
        return 0
    return exit_code(failed[0].error) if failed[0].error is not None else EXIT_INTERNAL


def emit(
    result: RelayoutResult,
    args,
    name: str,
    in_place: str | None = None,
    print_xml: bool = True,
) -> int:
    """Warnings, then what the options ask for: --check, --json, --diff, -o/-i, or stdout."""
    for warning in result.plan.warnings:
        warn(warning)
    if args.check:
        return EXIT_CHECK_DIRTY if result.changed else 0
    if args.json:
        import json

        from ..report import plan_json

        print(json.dumps(plan_json(result.plan, result.changed), indent=2))
    elif args.diff:
        import difflib

        write_stdout(
            "".join(
                difflib.unified_diff(
                    result.original.splitlines(keepends=True),
                    result.xml.splitlines(keepends=True),
                    f"a/{name}",
                    f"b/{name}",
                )
            )
        )
    elif args.in_place or args.output is not None:
        if not (args.in_place and not result.changed):
            from ..files import write_output  # only when writing a file

            write_output(in_place if args.in_place else args.output, result.xml)
    elif print_xml:
        write_stdout(result.xml)
    return 0
