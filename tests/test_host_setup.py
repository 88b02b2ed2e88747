"""tests/host-setup.sh says what it changes, and asks before it weakens a real host.

Each case runs the script's configuration step (``--config-only``) against a copy of
qemu.conf (``PLANNER_QEMU_CONF``); the host's own /etc/libvirt/qemu.conf is never
written, which the last check of every case asserts. The copies start from the
package's own qemu.conf: the host's file without planner's block, as long as dpkg's
checksum says that is what the package installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest
from domains import unavailable

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "host-setup.sh"
REAL_CONF = Path("/etc/libvirt/qemu.conf")
SETTINGS = [
    'user = "root"',
    'group = "root"',
    'security_driver = "none"',
    "cgroup_controllers = [ ]",
]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="host-setup.sh runs as root")


@pytest.fixture(scope="module")
def pristine() -> bytes:
    """The qemu.conf libvirt-daemon-system installed (dpkg's checksum proves it)."""
    if not REAL_CONF.is_file():
        unavailable(f"{REAL_CONF} is missing: run the set-up first")
    text = REAL_CONF.read_bytes()
    head = text.split(b"\n# planner-tests", 1)[0] + b"\n" if b"# planner-tests" in text else text
    conffiles = subprocess.run(
        ["dpkg-query", "-W", "-f=${Conffiles}\\n", "libvirt-daemon-system"],
        capture_output=True,
        text=True,
    ).stdout
    md5 = re.search(r"^ /etc/libvirt/qemu\.conf ([0-9a-f]{32})", conffiles, flags=re.M)
    if md5 is None or hashlib.md5(head).hexdigest() != md5.group(1):
        unavailable(f"{REAL_CONF} differs from the package's file beyond planner's block")
    return head


@pytest.fixture
def real_conf_untouched():
    before = REAL_CONF.read_bytes() if REAL_CONF.exists() else None
    yield
    assert (REAL_CONF.read_bytes() if REAL_CONF.exists() else None) == before


def setup(conf: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "PLANNER_TEST_HOST"}
    return subprocess.run(
        ["bash", str(SCRIPT), "--config-only"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, "PLANNER_QEMU_CONF": str(conf), **env},
    )


OPERATOR_CHANGE = b'security_driver = "apparmor"\nmax_processes = 4096\n'
LEGACY_BLOCK = b"# planner-tests\n" + "\n".join(SETTINGS).encode() + b"\n"


@pytest.mark.parametrize(
    "case",
    [
        "configured by its operator",
        "installed before, never changed",
        "planner's block, then an operator's change",
        "an operator's change, then planner's block",
    ],
)
def test_a_host_whose_libvirt_was_set_up_otherwise_is_left_alone(
    tmp_path, pristine, real_conf_untouched, case
):
    content = {
        "configured by its operator": pristine + OPERATOR_CHANGE,
        "installed before, never changed": pristine,
        "planner's block, then an operator's change": pristine + LEGACY_BLOCK + OPERATOR_CHANGE,
        "an operator's change, then planner's block": pristine + OPERATOR_CHANGE + LEGACY_BLOCK,
    }[case]
    conf = tmp_path / "qemu.conf"
    conf.write_bytes(content)
    proc = setup(conf)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "disposable machine" in proc.stderr and "PLANNER_TEST_HOST=1" in proc.stderr
    assert conf.read_bytes() == content


def test_with_planner_test_host_it_changes_the_host_and_prints_every_change(
    tmp_path, pristine, real_conf_untouched
):
    conf = tmp_path / "qemu.conf"
    conf.write_bytes(pristine + OPERATOR_CHANGE)
    proc = setup(conf, PLANNER_TEST_HOST="1")
    assert proc.returncode == 0, proc.stderr
    added = conf.read_bytes()[len(pristine + OPERATOR_CHANGE) :].decode().splitlines()
    assert added[0].startswith("# planner-tests: begin") and added[-1] == "# planner-tests: end"
    assert added[1:-1] == SETTINGS
    printed = [
        line[len("host-setup:   + ") :] for line in proc.stdout.splitlines() if "  + " in line
    ]
    assert printed == added
    assert "PLANNER_TEST_HOST=1" in proc.stdout

    changed = conf.read_bytes()
    again = setup(conf, PLANNER_TEST_HOST="1")  # idempotent: nothing added twice
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert conf.read_bytes() == changed


@pytest.mark.parametrize("block", ["legacy", "current"])
def test_a_host_with_only_planners_own_earlier_changes_goes_ahead_unchanged(
    tmp_path, pristine, real_conf_untouched, block
):
    conf = tmp_path / "qemu.conf"
    conf.write_bytes(pristine)
    if block == "legacy":  # as older versions of host-setup.sh wrote it
        conf.write_bytes(pristine + LEGACY_BLOCK)
    else:
        assert setup(conf, PLANNER_TEST_HOST="1").returncode == 0
    before = conf.read_bytes()
    proc = setup(conf)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to change" in proc.stdout and "(ours)" in proc.stdout
    assert conf.read_bytes() == before
