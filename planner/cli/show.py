"""``planner show``: the slot map and the guest's NIC names."""

from __future__ import annotations

import argparse
import sys

from .common import add_policy_args, policy_overrides, read_input, write_stdout


def add_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("show", help="print the slot map and predicted guest NIC names")
    s.add_argument("file", nargs="?", default="-", help="domain XML file, or - for stdin")
    s.add_argument("--json", action="store_true", help="the slot map as JSON")
    s.add_argument(
        "--planned",
        action="store_true",
        help="show the layout a relayout would give, not the current one",
    )
    add_policy_args(s)
    return s


def run(args) -> int:
    from .. import report  # what a command needs is loaded when it runs

    slot_map = report.show_data(read_input(args.file), args.planned, **policy_overrides(args))
    if args.json:
        import json

        sys.stdout.write(json.dumps(slot_map.as_dict(), indent=2) + "\n")
    else:
        write_stdout(report.show_table(slot_map))
    return 0
