"""The corpus of real domain XML: every file relayouts, validates and defines.

The corpus is part of the repository, in ``tests/corpus/`` (origins and licences in
its SOURCES.md): the top folder holds domains as orchestrators and libvirt's tests
write them, and ``libvirt90-assigned/`` the same domains as libvirt 9.0 dumps them,
every address assigned. Nothing here reads outside the repository
(``tests/test_self_contained.py`` proves it).

Every machine type relayout supports is checked; a file whose machine type planner
reports as "not supported yet" is skipped until support lands. The schema checks (two runs
of virt-xml-validate a file) are a background job, run while the other tests run
(tests/background.py).
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest
from background import job
from domains import (
    ROOT,
    address,
    defined,
    device_keys,
    devices_of,
    libvirt_order_differences,
    nic_slots,
    schema_check,
    tree,
)

from planner import relayout
from planner.errors import UnsupportedError

CORPUS = ROOT / "tests" / "corpus"
ASSIGNED = "libvirt90-assigned"


def _files() -> list[Path]:
    return sorted(CORPUS.glob("*.xml")) + sorted((CORPUS / ASSIGNED).glob("*.xml"))


def _listed() -> list[str]:
    """The files SOURCES.md names: the first cell of each row of its file table."""
    text = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `([^`]+\.xml)` \|", text, flags=re.MULTILINE)


def _id(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def _machine(path: Path) -> str:
    typ = tree(path.read_bytes()).find("os/type")
    return typ.get("machine", "pc") if typ is not None else "pc"


FILES = _files()
PC_FILES = [p for p in FILES if re.match(r"^(pc|pc-i440fx-.*|pc-\d.*)$", _machine(p))]


def test_the_corpus_is_there_with_both_folders():
    assert CORPUS.is_dir(), f"the corpus is missing: {CORPUS}"
    top = [p for p in FILES if p.parent == CORPUS]
    assigned = [p for p in FILES if p.parent.name == ASSIGNED]
    assert len(top) >= 60 and len(assigned) == len(top)
    assert len(PC_FILES) >= 40


def test_the_corpus_has_every_file_sources_lists_and_no_other():
    listed = _listed()
    assert len(listed) >= 130 and len(set(listed)) == len(listed)
    assert len(FILES) >= len(listed), f"{len(FILES)} corpus files, SOURCES.md lists {len(listed)}"
    assert sorted(_id(p) for p in FILES) == sorted(listed)


@functools.cache
def _relayout(path: Path):
    return relayout(path.read_bytes())


def laid_out(path: Path):
    """The relayout of a corpus file; skips only machine types not supported yet."""
    try:
        return _relayout(path)
    except UnsupportedError as exc:
        if "not supported yet" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(params=FILES, ids=[_id(p) for p in FILES])
def corpus_file(request) -> Path:
    return request.param


def test_relayout_succeeds_and_is_idempotent(corpus_file):
    result = laid_out(corpus_file)
    again = relayout(result.xml)
    assert again.xml == result.xml
    assert not again.changed


Checked = tuple[str, subprocess.CompletedProcess]


@job("schema_checks")
def check_schemas(tmp_path_factory, env: dict[str, str]) -> dict[Path, Checked | None]:
    """virt-xml-validate on every corpus file and, where the file validates, on its relayout.

    {file: (the relayout, virt-xml-validate's run on it)}, or None where the file does not
    validate or planner refuses it (the test's own relayout reports that).
    """
    out_dir = tmp_path_factory.mktemp("corpus-schema")
    checks: dict[Path, Checked | None] = {}
    for i, path in enumerate(FILES):
        checks[path] = None
        if schema_check(path, env).returncode != 0:
            continue
        try:
            xml = relayout(path.read_bytes()).xml
        except Exception:  # noqa: BLE001
            continue
        out = out_dir / f"{i:03d}-{path.name}"
        out.write_text(xml, encoding="utf-8")
        checks[path] = (xml, schema_check(out, env))
    return checks


@pytest.fixture
def schema_checks(background_jobs) -> dict[Path, Checked | None]:
    return background_jobs.result(check_schemas)


def test_relayout_validates_if_the_input_did(corpus_file, schema_checks):
    result = laid_out(corpus_file)
    checked = schema_checks[corpus_file]
    if checked is None:
        return  # three files use elements newer than libvirt 9.0's schema (see SOURCES.md)
    xml, check = checked
    assert xml == result.xml
    assert check.returncode == 0, check.stderr


def _in_nic_range(plan, el) -> bool:
    """Does a device in libvirt's dumpxml sit inside the NIC range the plan recorded?"""
    a = address(el)
    if a is None:
        return False
    lay = plan.layout
    if lay.machine == "pc":
        return a[0] == 0 and a[1] in lay.nic_slots
    return a[0] in lay.nic_ports  # q35: a NIC port is the root port a NIC plugs into


@pytest.mark.libvirt
def test_relayout_defines_and_libvirt_keeps_the_nic_range_for_nics(conn, corpus_file):
    result = laid_out(corpus_file)
    with defined(conn, result.xml) as (_, dumped):
        intruders = [
            (el.tag, address(el))
            for el in devices_of(dumped)
            if el.tag != "interface" and _in_nic_range(result.plan, el)
        ]
        assert not intruders, f"non-NIC devices inside the NIC range after define: {intruders}"
        theirs, nics = device_keys(dumped), nic_slots(dumped)
    ours = device_keys(result.xml)
    assert {key: theirs.get(key) for key in ours} == ours, "libvirt changed a planned address"
    assert nics == nic_slots(result.xml)


@pytest.mark.libvirt
@pytest.mark.parametrize("path", PC_FILES, ids=[_id(p) for p in PC_FILES])
def test_pc_relayout_keeps_the_order_libvirt_gives_the_other_devices(conn, path):
    original = path.read_text(encoding="utf-8")
    theirs, ours = libvirt_order_differences(conn, original, laid_out(path).xml)
    assert ours == theirs
