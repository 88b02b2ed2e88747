"""Fuzz: seeded mutants of the samples and corpus never make planner misbehave (issue 12).

For every mutant, byte-level or structure-aware (see ``fuzz.py``), planner either
refuses it with one of its own errors or lays it out; it accepts and keeps its own
output (a second relayout changes nothing); and no input takes more than 2 s or
200 MB. CI runs a few thousand mutants (``PLANNER_FUZZ_COUNT``, default 3000 under
CI and 300 elsewhere); the seed is fixed, so a failure is reproducible with
``python3 tests/fuzz.py SEED COUNT``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from domains import IN_CI

HERE = Path(__file__).resolve().parent
SEED = 20261130
COUNT = int(os.environ.get("PLANNER_FUZZ_COUNT", 3000 if IN_CI else 300))


def test_no_mutant_makes_planner_crash_hang_balloon_or_reject_its_own_output():
    proc = subprocess.run(
        [sys.executable, str(HERE / "fuzz.py"), str(SEED), str(COUNT)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=HERE.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    summary = records[-1]
    assert summary.get("summary") and summary["count"] == COUNT, proc.stdout[-2000:]
    failures = records[:-1]
    shown = "\n".join(f"#{r['n']}: {r['problem']}" for r in failures[:15])
    assert not failures, f"{len(failures)} of {COUNT} mutants misbehaved:\n{shown}"
