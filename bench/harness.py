"""What every row shares: timing planner against its floor, and the table it ends up in.

A row is a frozen :class:`Row`: its table lines, its notes and every measurement (for
``--json``). Planner and floor are timed alternately, so a machine that other work slows
down slows both; a ratio is the median of the per-pair ratios, a time the median.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
HEADER = ("#", "benchmark", "planner", "floor", "ratio (IQR)", "target", "met")


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class Line:
    """One line of the table."""

    row: int
    what: str
    planner: str
    floor: str
    ratio: str
    target: str = ""
    met: bool | None = None

    def cells(self) -> tuple[str, ...]:
        mark = "" if self.met is None else ("yes" if self.met else "**no**")
        return (str(self.row), self.what, self.planner, self.floor, self.ratio, self.target, mark)


@dataclass(frozen=True)
class Row:
    """What one benchmark row measured: table lines, notes, and the raw figures under ``key``."""

    key: str
    lines: tuple[Line, ...]
    notes: tuple[str, ...] = ()
    data: dict = field(default_factory=dict)


def render_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(line.cells()) + " |" for row in rows for line in row.lines]
    return "\n".join(lines)


def render_notes(rows: list[Row]) -> str:
    return "\n".join(f"- {note}" for row in rows for note in row.notes)


def write_json(path: str | Path, quick: bool, machine: dict, rows: list[Row]) -> None:
    out: dict = {"quick": quick, "machine": machine}
    out.update({row.key: row.data for row in rows})
    out["table"] = [line.cells() for row in rows for line in row.lines]
    out["notes"] = [note for row in rows for note in row.notes]
    Path(path).write_text(json.dumps(out, indent=1, default=str) + "\n")


# ---------------------------------------------------------------- timing


def now() -> float:
    return time.perf_counter()


def timed(fn: Callable[[], object]) -> float:
    t = now()
    fn()
    return now() - t


def interleaved(
    fns: dict[str, Callable[[], object]], reps: int, collect: bool = True
) -> dict[str, list[float]]:
    """Run each fn once per repetition, rotating the order every repetition."""
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if collect:
                gc.collect()
            out[name].append(timed(fns[name]))
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def pair_ratio(a: list[float], b: list[float]) -> dict:
    """Median and quartiles of the per-pair ratios a[i]/b[i]."""
    ratios = sorted(x / y for x, y in zip(a, b) if y > 0)
    if len(ratios) >= 4:
        q = statistics.quantiles(ratios, n=4)
        lo, hi = q[0], q[2]
    else:
        lo, hi = ratios[0], ratios[-1]
    return {"ratio": statistics.median(ratios), "q1": lo, "q3": hi, "n": len(ratios)}


def profile(fn: Callable[[], object], top: int = 6) -> list[str]:
    """cProfile own time of fn (three calls): the top functions, as 'file:line(func) N% (calls)'."""
    import cProfile
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(3):
        fn()
    pr.disable()
    st = pstats.Stats(pr)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]  # by own time
    total = sum(v[2] for v in st.stats.values()) or 1
    out = []
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in rows:
        where = f"{Path(file).name}:{line}({func})" if file != "~" else func
        out.append(f"{where} {100 * tt / total:.0f}% ({nc // 3} calls)")
    return out


# ---------------------------------------------------------------- child processes


def run_child(cmd: list[str], env: dict, cwd: Path) -> float:
    """Run cmd, stdout to /dev/null; return the child's CPU time (user + sys) in seconds."""
    with open(os.devnull, "wb") as devnull:
        p = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE, env=env, cwd=cwd)
        err = p.stderr.read()
        p.stderr.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {err.decode()[-500:]}")
    return usage.ru_utime + usage.ru_stime


class Child:
    """A command to time as a whole process; keeps the CPU time of each run."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path):
        self.cmd, self.env, self.cwd = cmd, env, cwd
        self.cpu: list[float] = []

    def __call__(self) -> None:
        self.cpu.append(run_child(self.cmd, self.env, self.cwd))


# ---------------------------------------------------------------- formatting


def ms(x: float) -> str:
    x *= 1e3
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms" if x >= 1 else f"{x:.3f} ms"


def kib(b: float) -> str:
    return f"{b / 1024:,.0f} KiB"


def fmt_ratio(r: dict) -> str:
    return f"{r['ratio']:.2f}× ({r['q1']:.2f}–{r['q3']:.2f})"
