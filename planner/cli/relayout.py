"""``planner relayout``: a file (or stdin), or a defined domain, through one output path."""

from __future__ import annotations

import argparse
import sys

from ..files import write_output
from ..relayout import RelayoutResult, relayout
from ..report import plan_json
from ..xmldoc import Document
from .common import (
    UsageError,
    add_policy_args,
    policy_overrides,
    read_input,
    warn,
    write_stdout,
)

EXIT_CHECK_DIRTY = 1


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
    r.add_argument("--define", action="store_true", help="with --domain: define the result")
    add_policy_args(r)
    return r


def run(args) -> int:
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
            write_output(in_place if args.in_place else args.output, result.xml)
    elif print_xml:
        write_stdout(result.xml)
    return 0
