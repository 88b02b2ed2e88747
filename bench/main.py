"""The command: run the rows asked for, print the machine, the table and the notes.

python3 bench/run.py [--quick] [--json FILE] [--rows 1,2,3,4,5] [--uri URI]
python3 -m bench ...                      (the same, from the top of the tree)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .harness import Row, render_notes, render_table, write_json
from .install import Venv, build_wheel, make_venv
from .machine import machine_info, render_info

STEPS = {1: "relayout throughput", 2: "CLI latency", 3: "scale", 4: "hot-plug", 5: "memory"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description=(PACKAGE_DOC or "").split("\n\n")[0]
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run for a smoke test: few repeats, small corpus",
    )
    ap.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    ap.add_argument("--rows", default="1,2,3,4,5", help="rows to run, e.g. 1,3 (default all)")
    ap.add_argument(
        "--uri",
        default=os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system"),
        help="libvirt URI for row 4 (default qemu:///system)",
    )
    return ap.parse_args(argv)


class Installs:
    """planner installed into throwaway venvs, built on first use (rows 2 and 4)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._wheel: Path | None = None
        self._venvs: dict[bool, Venv] = {}

    def venv(self, compiled: bool) -> Venv:
        if compiled not in self._venvs:
            if self._wheel is None:
                self._wheel = build_wheel(self.tmp)
            where = self.tmp / ("venv-pyc" if compiled else "venv-nopyc")
            self._venvs[compiled] = make_venv(where, self._wheel, compiled)
        return self._venvs[compiled]


def run_row(n: int, quick: bool, tmp: Path, uri: str, installs: Installs) -> Row:
    """Row n; each row's module is imported only when it runs."""
    if n == 1:
        from . import throughput

        return throughput.run(quick)
    if n == 2:
        from . import cli_latency

        try:
            venvs = [installs.venv(compiled=True), installs.venv(compiled=False)]
        except (OSError, RuntimeError, ValueError) as exc:
            return cli_latency.skipped(f"cannot install planner into a venv: {exc}")
        return cli_latency.run(quick, tmp, venvs)
    if n == 3:
        from . import scale

        return scale.run(quick)
    if n == 4:
        from . import hotplug

        (tmp / "hp").mkdir()
        os.chmod(tmp / "hp", 0o755)
        try:
            venv = installs.venv(compiled=True)
        except (OSError, RuntimeError, ValueError) as exc:
            return hotplug.skipped(f"cannot install planner into a venv: {exc}")
        return hotplug.run(quick, tmp / "hp", uri, venv)
    if n == 5:
        from . import memory

        return memory.run(quick, tmp)
    raise SystemExit(f"bench: no row {n} (rows are 1-5)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = sorted({int(x) for x in args.rows.split(",") if x.strip()})
    info = machine_info(args.uri)
    print(
        "planner benchmarks"
        + (" (--quick: smoke run, figures not meaningful)" if args.quick else "")
    )
    print(render_info(info), flush=True)
    rows: list[Row] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="planner-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        installs = Installs(tmp)
        for n in wanted:
            print(f"row {n}: {STEPS.get(n, '?')} ...", file=sys.stderr, flush=True)
            rows.append(run_row(n, args.quick, tmp, args.uri, installs))
    info["loadavg_end"] = os.getloadavg()
    info["duration_s"] = round(time.monotonic() - started, 1)
    print()
    print(render_table(rows))
    print()
    print(render_notes(rows))
    print(
        f"- Run took {info['duration_s']:.0f} s; load average at end "
        f"{'/'.join(f'{x:.2f}' for x in info['loadavg_end'])}."
    )
    if args.json:
        write_json(args.json, args.quick, info, rows)
    return 0
