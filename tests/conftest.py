"""Shared fixtures: a real libvirtd with the QEMU driver; hypothesis profiles; markers.

Tests that need libvirt take the ``conn`` fixture (which marks them ``libvirt``, so that
``-m "not libvirt"`` selects exactly the tests that need no daemon). A fixture never
installs or configures anything: if no libvirtd answers, the test says to run the set-up
command (``tests/host-setup.sh``, as root, on a disposable machine) and is skipped on a
developer's machine but **fails** under CI (``CI=true``): CI must never pass by
skipping the real thing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from background import Background, jobs_of
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SETUP_HINT = (
    "set up a disposable test machine first, as root: bash tests/host-setup.sh"
    " (PLANNER_TEST_HOST=1 bash tests/host-setup.sh where libvirt was already configured)"
)

# Property tests: CI runs 500 examples each; a local run a quick 50. A test that sets
# max_examples itself (one that defines domains in libvirtd) keeps its own number.
_HYPOTHESIS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=500, **_HYPOTHESIS)
settings.register_profile("dev", max_examples=50, **_HYPOTHESIS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))


def pytest_collection_modifyitems(config, items):
    """Mark every test that takes the ``conn`` fixture ``libvirt``, and those under
    tests/e2e ``e2e``: the marker selection is then exact, whatever a file declares.

    The modules of tests that wait for a background job (tests/background.py) run last, in
    their order: their jobs run while the other tests do."""
    e2e = ROOT / "tests" / "e2e"
    for item in items:
        if "conn" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.libvirt)
        if e2e in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
    late = {item.module for item in items if jobs_of(item)}
    items[:] = [i for i in items if getattr(i, "module", None) not in late] + [
        i for i in items if getattr(i, "module", None) in late
    ]


@pytest.fixture(scope="session", autouse=True)
def background_jobs(request, tmp_path_factory) -> Iterator[Background]:
    """Starts the background jobs the selected tests need, as the first test starts."""
    jobs = Background(tmp_path_factory)
    jobs.start(request.session.items)
    yield jobs
    jobs.close()


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
