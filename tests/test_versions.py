"""``planner --version``: planner, lxml, libxml2, libvirt-python and libvirtd, never failing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

import planner

ROOT = Path(__file__).resolve().parent.parent
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")


def planner_version(*python_args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "from planner.cli import main; raise SystemExit(main(['--version']))"
    return subprocess.run(
        [sys.executable, *python_args, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_version_lines_name_planner_lxml_and_libxml2_first():
    from planner.versions import version_lines

    lines = version_lines("qemu:///system?socket=/nonexistent/planner-test-sock")
    assert lines[0].startswith(f"planner {planner.__version__} (")
    assert lines[1] == f"lxml {etree.__version__}"
    assert lines[2].startswith("libxml2 " + ".".join(map(str, etree.LIBXML_VERSION)))


@pytest.mark.libvirt
def test_version_prints_what_virsh_version_prints(conn):
    proc = planner_version(env={"LIBVIRT_DEFAULT_URI": URI})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5, lines
    virsh = subprocess.run(
        ["virsh", "-c", URI, "version"], capture_output=True, text=True, check=True
    ).stdout
    library = re.search(r"Using library: libvirt (\S+)", virsh).group(1)
    hypervisor = re.search(r"Running hypervisor: (.+)", virsh).group(1).strip()
    assert re.match(rf"^libvirt-python \S+ \(libvirt library {re.escape(library)}\)$", lines[3])
    daemon = conn.getLibVersion()
    daemon = f"{daemon // 1_000_000}.{daemon // 1000 % 1000}.{daemon % 1000}"
    assert lines[4] == f"libvirtd {daemon} at {URI}, hypervisor {hypervisor}"


def test_an_unreachable_libvirtd_is_said_on_its_line_and_version_still_succeeds():
    uri = "qemu:///system?socket=/nonexistent/planner-test-sock"
    proc = planner_version(env={"LIBVIRT_DEFAULT_URI": uri})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    last = proc.stdout.splitlines()[-1]
    assert last.startswith(f"libvirtd: unreachable at {uri} ("), last


def test_without_libvirt_python_version_says_so_and_succeeds(tmp_path):
    # a libvirt module that cannot be imported, first on the path
    (tmp_path / "libvirt.py").write_text("raise ImportError('libvirt-python hidden by the test')")
    proc = planner_version(env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[3] == (
        "libvirt-python: not available (ImportError: libvirt-python hidden by the test);"
        " hot-plug needs it"
    )
    assert lines[4] == "libvirtd: not asked (no libvirt-python)"
