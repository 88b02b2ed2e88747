"""Rows 2 and 4 for several revisions of planner, interleaved in one session.

    python3 -m bench.compare [--reps N] [--rounds N] [--rows 2,4] REV [REV ...]

A whole-process figure moves by several percent from one run to the next on a shared
machine, so "no worse than revision X" is measured here by running X and the others
alternately: each revision (``git archive`` of REV, ``WORKTREE`` for the working tree) is
built into a wheel and installed into two throwaway venvs, with and without .pyc, as row 2
does. Row 2 then times each venv's ``planner relayout samples/cloudstack-2nic.xml`` and the
floor (``python -c`` lxml parse + serialize) in rotating order. Row 4 starts one fresh TCG
domain per revision each round, plus one for ``virsh attach-device`` at the address planner
picks, and times each revision's ``planner hotplug`` of a NIC (needs libvirtd).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from .cli_latency import FLOOR_CODE, SAMPLE
from .harness import ROOT, Child, fmt_ratio, interleaved, med, ms, pair_ratio, run_child, timed
from .install import Venv, build_wheel, make_venv

WORKTREE = "WORKTREE"


def checkout(rev: str, where: Path) -> Path:
    """The tree of rev (or of the working tree) at where."""
    if rev == WORKTREE:
        return ROOT
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], capture_output=True, check=True
    ).stdout
    where.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=data, check=True)
    return where


def install(rev: str, tmp: Path) -> dict[bool, Venv]:
    """rev installed twice: {True: with .pyc, False: without}."""
    base = tmp / rev.replace("/", "_")
    wheel = build_wheel(base, checkout(rev, base / "tree"))
    return {c: make_venv(base / ("pyc" if c else "nopyc"), wheel, c) for c in (True, False)}


def row2(venvs: dict[str, dict[bool, Venv]], reps: int, tmp: Path) -> list[str]:
    lines = []
    for compiled in (True, False):
        any_venv = next(iter(venvs.values()))[compiled]
        kids = {
            "floor": Child([str(any_venv.python), "-c", FLOOR_CODE, str(SAMPLE)], any_venv.env, tmp)
        }
        for rev, pair in venvs.items():
            v = pair[compiled]
            kids[rev] = Child([str(v.script), "relayout", str(SAMPLE)], v.env, tmp)
        for kid in kids.values():  # warm-up: the page cache
            run_child(kid.cmd, kid.env, tmp)
        times = interleaved(kids, reps, collect=False)
        label = "with .pyc" if compiled else "no .pyc"
        lines.append(f"row 2, {label}: floor {ms(med(times['floor']))}")
        for rev in venvs:
            r = pair_ratio(times[rev], times["floor"])
            lines.append(f"  {rev:12} {ms(med(times[rev]))}  {fmt_ratio(r)} the floor")
    return lines


def row4(venvs: dict[str, dict[bool, Venv]], rounds: int, uri: str, tmp: Path) -> list[str]:
    import libvirt

    import planner

    from .hotplug import HP_DOMAIN, HP_NIC, _settle

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(uri)
    names = [*venvs, "virsh"]
    times: dict[str, list[float]] = {n: [] for n in names}
    made = []
    try:
        for r in range(rounds):
            ops = {}
            for i, n in enumerate(names):
                name = f"planner-compare-{uuid.uuid4().hex[:6]}"
                tag = f"{(r * len(names) + i) % 256:02x}"
                dom = conn.defineXML(planner.relayout(HP_DOMAIN.format(name=name, tag=tag)).xml)
                made.append(dom)
                dom.create()
                nic = tmp / f"{name}.xml"
                nic.write_text(HP_NIC.format(tag=tag))
                if n == "virsh":
                    placed = tmp / f"{name}-addr.xml"
                    placed.write_text(planner.hotplug(dom, nic.read_text(), dry_run=True).xml)
                    cmd = [
                        "virsh",
                        "-c",
                        uri,
                        "attach-device",
                        name,
                        str(placed),
                        "--live",
                        "--config",
                    ]
                    env = None
                else:
                    v = venvs[n][True]
                    cmd, env = [str(v.script), "hotplug", "-c", uri, name, str(nic)], v.env
                ops[n] = lambda c=cmd, e=env: run_child(c, e, tmp)
            _settle([d.name() for d in made])
            k = r % len(names)
            for n in names[k:] + names[:k]:
                times[n].append(timed(ops[n]))
            for dom in made:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
                    dom.undefine()
            made.clear()
    finally:
        for dom in made:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
                dom.undefine()
        conn.close()
    virsh = ms(med(times["virsh"]))
    lines = [f"row 4, planner hotplug vs virsh attach-device ({rounds} rounds): virsh {virsh}"]
    for rev in venvs:
        r = pair_ratio(times[rev], times["virsh"])
        lines.append(f"  {rev:12} {ms(med(times[rev]))}  {fmt_ratio(r)} virsh")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python3 -m bench.compare", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("revs", nargs="+", metavar="REV", help=f"git revisions, or {WORKTREE}")
    ap.add_argument("--rows", default="2,4")
    ap.add_argument("--reps", type=int, default=60, help="row 2 repetitions (default 60)")
    ap.add_argument("--rounds", type=int, default=20, help="row 4 rounds (default 20)")
    ap.add_argument("--uri", default="qemu:///system")
    args = ap.parse_args(argv)
    rows = {int(x) for x in args.rows.split(",")}
    with tempfile.TemporaryDirectory(prefix="planner-compare-") as t:
        tmp = Path(t)
        venvs = {rev: install(rev, tmp) for rev in args.revs}
        out = []
        if 2 in rows:
            out += row2(venvs, args.reps, tmp)
        if 4 in rows:
            out += row4(venvs, args.rounds, args.uri, tmp)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
