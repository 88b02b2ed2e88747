"""Row 2, CLI latency: `planner relayout FILE`, the installed console script, as a whole process.

The floor is `python -c` lxml parse + serialize of the same file, run by the same venv's
interpreter. Two installs: with the .pyc files pip compiles, and without (`--no-compile`,
PYTHONDONTWRITEBYTECODE=1), as a read-only or uncompiled install starts every time.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .harness import ROOT, Child, Line, Row, fmt_ratio, interleaved, med, ms, pair_ratio, run_child
from .install import Venv

SAMPLE = ROOT / "samples" / "cloudstack-2nic.xml"
FORBIDDEN = ("libvirt", "libvirtmod", "jinja2", "xmltodict", "rich")
FLOOR_CODE = (
    "import sys, lxml.etree as e; "
    "sys.stdout.write(e.tostring(e.parse(sys.argv[1]), encoding='unicode'))"
)


def import_check(venv: Venv, cwd: Path) -> dict:
    """Modules the console script's relayout imports beyond the floor's, and any forbidden one."""

    def modules(cmd: list[str]) -> dict[str, int]:
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=dict(venv.env, PYTHONPROFILEIMPORTTIME="1"),
            cwd=cwd,
        )
        out = {}
        for line in p.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
            if m:
                out[m.group(3)] = int(m.group(1))
        return out

    mine = modules([str(venv.script), "relayout", str(SAMPLE)])
    floor = modules([str(venv.python), "-c", FLOOR_CODE, str(SAMPLE)])
    extra = {k: v for k, v in mine.items() if k not in floor}
    forbidden = sorted(k for k in mine if k.split(".")[0] in FORBIDDEN)
    top = sorted(extra.items(), key=lambda kv: -kv[1])[:6]
    return {
        "modules": len(mine),
        "floor_modules": len(floor),
        "extra": len(extra),
        "extra_self_us": sum(extra.values()),
        "forbidden": forbidden,
        "top_extra": top,
    }


def _label(venv: Venv) -> str:
    if venv.compiled:
        return "installed console script `planner relayout` in a venv (pip install, .pyc compiled)"
    return "the same, installed with --no-compile and run with PYTHONDONTWRITEBYTECODE=1 (no .pyc)"


def run(quick: bool, tmp: Path, venvs: list[Venv]) -> Row:
    reps = 3 if quick else 31
    sample = str(SAMPLE)
    lines: list[Line] = []
    out: dict = {}
    for venv in venvs:
        key = "pyc" if venv.compiled else "source"
        label = _label(venv)
        cmd = [str(venv.script), "relayout", sample]
        floor = [str(venv.python), "-c", FLOOR_CODE, sample]
        bare = [str(venv.python), "-c", "pass"]
        for c in (cmd, floor, bare, cmd):  # warm-up: fills the page cache
            run_child(c, venv.env, tmp)
        kids = {
            "planner": Child(cmd, venv.env, tmp),
            "floor": Child(floor, venv.env, tmp),
            "python": Child(bare, venv.env, tmp),
        }
        times = interleaved(kids, reps, collect=False)
        ratio = pair_ratio(times["planner"], times["floor"])
        cpu = pair_ratio(kids["planner"].cpu, kids["floor"].cpu)
        tp, tf, tb = med(times["planner"]), med(times["floor"]), med(times["python"])
        lines.append(
            Line(
                2,
                f"CLI latency: {label}",
                ms(tp),
                ms(tf),
                fmt_ratio(ratio),
                "≤ 1.5×",
                ratio["ratio"] <= 1.5,
            )
        )
        out[key] = {
            "label": label,
            "cmd": cmd,
            "planner_s": times["planner"],
            "floor_s": times["floor"],
            "python_s": times["python"],
            **ratio,
            "cpu_planner_s": kids["planner"].cpu,
            "cpu_floor_s": kids["floor"].cpu,
            "cpu_ratio": cpu,
            "note": (
                f"{'with .pyc' if venv.compiled else 'no .pyc'}: python -c pass {ms(tb)}, so "
                f"planner adds {ms(tp - tf)} to the floor's {ms(tf)}; in CPU time (user+sys of "
                f"the child) {ms(med(kids['planner'].cpu))} vs {ms(med(kids['floor'].cpu))}, "
                f"{fmt_ratio(cpu)}"
            ),
        }
    imp = import_check(venvs[0], tmp)
    out["imports"] = imp
    note = (
        "Row 2: `planner` = the console script pip writes into a throwaway venv "
        "(--system-site-packages, so lxml is the system's; planner installed from a wheel of "
        "this tree, not editable); floor = `python -c '"
        + FLOOR_CODE
        + "' FILE` with the same venv's python, on samples/cloudstack-2nic.xml; "
        + "; ".join(v["note"] for k, v in out.items() if k != "imports")
        + f". The relayout path imports {imp['modules']} modules, {imp['extra']} more than the "
        "floor (largest self times under PYTHONPROFILEIMPORTTIME: "
        + ", ".join(f"{k} {v / 1000:.1f} ms" for k, v in imp["top_extra"])
        + "); "
        + (
            "forbidden imports: " + ", ".join(imp["forbidden"])
            if imp["forbidden"]
            else "no libvirt, jinja2, xmltodict or rich import"
        )
        + "."
    )
    return Row("cli", tuple(lines), (note,), out)


def skipped(reason: str) -> Row:
    """Row 2 when planner could not be installed into a venv."""
    line = Line(2, "CLI latency: skipped", "-", "-", "-", "≤ 1.5×", None)
    return Row("cli", (line,), (f"Row 2 skipped: {reason}",), {"skipped": reason})
