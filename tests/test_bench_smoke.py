"""Smoke test of the benchmark command (bench/run.py --quick): it runs and prints its table.

No timing assertions: the figures of a quick run on a shared machine mean nothing. The quick
run of rows 1, 2, 3 and 5 (row 2 builds a wheel and two venvs) runs in the background while
the other tests run (tests/background.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from background import job

ROOT = Path(__file__).resolve().parent.parent
HEADER = "| # | benchmark | planner | floor | ratio (IQR) | target | met |"
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")


def run_bench(*args: str, module: bool = False, env: dict[str, str] | None = None) -> str:
    entry = ["-m", "bench"] if module else [str(ROOT / "bench" / "run.py")]
    proc = subprocess.run(
        [sys.executable, *entry, "--quick", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert HEADER in proc.stdout
    return proc.stdout


@job("quick_bench")
def run_quick_bench(tmp_path_factory, env: dict[str, str]) -> tuple[str, dict]:
    """bench --quick, rows 1, 2, 3 and 5: its output and its JSON."""
    json_file = tmp_path_factory.mktemp("bench-quick") / "bench.json"
    out = run_bench("--rows", "1,2,3,5", "--json", str(json_file), env=env)
    return out, json.loads(json_file.read_text())


@pytest.fixture
def quick_bench(background_jobs) -> tuple[str, dict]:
    return background_jobs.result(run_quick_bench)


def test_bench_quick_runs_without_libvirt(quick_bench):
    out, data = quick_bench
    rows = [
        line.split(" | ")[0]
        for line in out.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert {"| 1", "| 2", "| 3", "| 5"} <= set(rows)
    assert data["quick"] is True and data["table"]
    assert {"throughput", "cli", "scale", "memory"} <= set(data)
    assert "skipped" not in data["cli"]  # planner installed into a venv, its console script ran


def test_bench_runs_as_a_module(tmp_path):
    out = run_bench("--rows", "3", "--json", str(tmp_path / "bench.json"), module=True)
    assert "| 3 | scale pc, 10 devices" in out
    assert set(json.loads((tmp_path / "bench.json").read_text())["scale"]) >= {"pc"}


@pytest.mark.libvirt
def test_bench_quick_hotplug(conn):
    out = run_bench("--rows", "4", "--uri", URI)
    assert "hot-plug, whole process" in out  # row 4 ran against libvirtd, it was not skipped
    assert "(all found)" in out  # every attached NIC sits where planner said


@pytest.mark.libvirt
def test_bench_compare_times_a_revision_in_rows_2_and_4(conn):
    """bench.compare: a git revision built, installed twice, timed in rows 2 and 4."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--reps", "1", "--rounds", "1"]
        + ["--uri", URI, "HEAD"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for heading in ("row 2, with .pyc", "row 2, no .pyc", "row 4, planner hotplug"):
        at = next(i for i, line in enumerate(lines) if line.startswith(heading))
        assert lines[at + 1].split()[0] == "HEAD" and "×" in lines[at + 1]
