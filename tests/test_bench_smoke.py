"""Smoke test of the benchmark command (bench/run.py --quick): it runs and prints its table.

No timing assertions: the figures of a quick run on a shared machine mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = "| # | benchmark | planner | floor | ratio (IQR) | target | met |"
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")


def run_bench(*args: str, module: bool = False) -> str:
    entry = ["-m", "bench"] if module else [str(ROOT / "bench" / "run.py")]
    proc = subprocess.run(
        [sys.executable, *entry, "--quick", *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert HEADER in proc.stdout
    return proc.stdout


def test_bench_quick_runs_without_libvirt(tmp_path):
    out = run_bench("--rows", "1,2,3,5", "--json", str(tmp_path / "bench.json"))
    rows = [
        line.split(" | ")[0]
        for line in out.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert {"| 1", "| 2", "| 3", "| 5"} <= set(rows)
    data = json.loads((tmp_path / "bench.json").read_text())
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
