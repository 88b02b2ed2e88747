"""Every ordinary install works: the install matrix (tests/install/matrix.sh) passes.

The script builds the sdist and, from it, the wheel once (``python -m build``), checks
that the sdist holds the tests, samples and templates, then installs the wheel with pip
into a clean venv, with ``--user`` (an isolated user base), with ``--prefix`` (run with
PYTHONPATH), with pipx, and the unpacked sdist as an editable install, and runs
``planner --version``, ``planner relayout`` and ``planner hotplug --dry-run`` against the
real libvirtd in each. pip's own cache is reused, so libvirt-python compiles once.
About a minute on the project's machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / "tests" / "install" / "matrix.sh"
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")


@pytest.mark.libvirt
def test_every_ordinary_install_works(conn, tmp_path_factory):
    work = tmp_path_factory.mktemp("install-matrix")
    proc = subprocess.run(
        ["bash", str(MATRIX), str(work)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHON": sys.executable, "PLANNER_TEST_URI": URI},
    )
    print(proc.stdout)  # the matrix, for -s and for the report on failure
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    for kind in ("venv", "user", "prefix", "pipx", "editable"):
        done = [line for line in lines if line.startswith(f"matrix: {kind} | planner ")]
        assert len(done) == 3, (kind, done)
    assert lines[-1].startswith("matrix: all passed: venv user prefix pipx editable in ")
    leftovers = [d for d in conn.listAllDomains() if d.name().startswith("planner-test-matrix-")]
    assert not leftovers, [d.name() for d in leftovers]
