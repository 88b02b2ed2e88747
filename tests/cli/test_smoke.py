"""A few real processes: ``python -m planner`` and the console script's entry point."""

from __future__ import annotations

import os
import subprocess
import sys

import tomllib
from domains import GOLDEN, ROOT, SAMPLES

CLOUDSTACK = SAMPLES / "cloudstack-2nic.xml"


def run(*args: str, stdin: bytes | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, cwd=ROOT, env=env, timeout=60
    )


def test_python_m_planner_relayout_prints_the_golden_output():
    proc = run("-m", "planner", "relayout", str(CLOUDSTACK))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == (GOLDEN / CLOUDSTACK.name).read_text()
    assert proc.stderr == b""


def test_an_error_is_one_line_and_its_exit_code_in_a_real_process():
    proc = run("-m", "planner", "show", "-", stdin=b"<domain><devices>")
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("planner: error: malformed XML")
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == b""


def test_the_console_script_entry_point_is_planner_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"planner": "planner.cli:main"}
    code = "import sys; from planner.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = run("-c", code, "--version")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("planner ")
