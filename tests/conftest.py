"""Shared fixtures: a real libvirtd with the QEMU driver.

Tests that need libvirt take the ``conn`` fixture. A fixture never installs or
configures anything: if no libvirtd answers, the test says to run the set-up command
(``tests/host-setup.sh``, as root, on a disposable machine) and is skipped on a
developer's machine but **fails** under CI (``CI=true``): CI must never pass by
skipping the real thing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SETUP_HINT = (
    "set up a disposable test machine first, as root: bash tests/host-setup.sh"
    " (PLANNER_TEST_HOST=1 bash tests/host-setup.sh where libvirt was already configured)"
)


def _connect():
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt.open(URI)


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"libvirtd unavailable in CI: {why}")
    pytest.skip(f"libvirtd unavailable: {why}")


@pytest.fixture(scope="session")
def conn():
    try:
        import libvirt  # noqa: F401
    except ImportError as exc:
        _unavailable(f"libvirt-python not importable ({exc})")
    try:
        c = _connect()
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"{exc}; {SETUP_HINT}")
    yield c
    c.close()


@pytest.fixture
def domain_name(conn) -> Iterator[str]:
    """A unique domain name; whatever is defined under it is removed afterwards."""
    name = f"planner-test-{uuid.uuid4().hex[:8]}"
    yield name
    import libvirt

    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()
