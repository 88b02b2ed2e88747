"""Golden tests: ``planner relayout samples/<name>.xml`` is exactly ``tests/golden/<name>.xml``.

After a deliberate change of the output, regenerate the goldens and review the diff:

    PLANNER_REGEN_GOLDEN=1 python3 -m pytest tests/test_golden.py

Every sample, and its relayout, must also validate against libvirt's schema and
define in a real libvirtd, which must keep the addresses planner wrote.
"""

from __future__ import annotations

import os

import pytest
from domains import (
    GOLDEN,
    SAMPLES,
    address,
    defined,
    device_keys,
    devices_of,
    libvirt_order_differences,
    nic_slots,
    schema_check,
)

from planner import relayout

REGENERATE = os.environ.get("PLANNER_REGEN_GOLDEN") == "1"
SAMPLE_FILES = sorted(SAMPLES.glob("*.xml"))
NAMES = [p.name for p in SAMPLE_FILES]


@pytest.fixture(params=SAMPLE_FILES, ids=NAMES)
def sample(request):
    return request.param


def test_every_sample_has_a_golden_and_every_golden_a_sample():
    assert len(SAMPLE_FILES) >= 7
    if not REGENERATE:
        assert sorted(p.name for p in GOLDEN.glob("*.xml")) == NAMES


def test_relayout_output_matches_the_golden_file(sample):
    produced = relayout(sample.read_bytes()).xml
    golden = GOLDEN / sample.name
    if REGENERATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(produced, encoding="utf-8", newline="")
    assert golden.exists(), f"no golden for {sample.name}: run with PLANNER_REGEN_GOLDEN=1"
    assert produced == golden.read_text(encoding="utf-8")


def test_golden_output_is_already_laid_out(sample):
    golden = (GOLDEN / sample.name).read_text(encoding="utf-8")
    again = relayout(golden)
    assert again.xml == golden
    assert not again.changed
    assert again.plan.moves == ()


def _machine(path):
    from planner.machines import machine_family
    from planner.xmldoc import Document

    return machine_family(Document.parse(path.read_bytes()).root)[0]


PC_SAMPLES = [p for p in SAMPLE_FILES if _machine(p) == "pc"]
Q35_SAMPLES = [p for p in SAMPLE_FILES if _machine(p) == "q35"]


@pytest.mark.parametrize("sample", PC_SAMPLES, ids=[p.name for p in PC_SAMPLES])
def test_golden_nics_sit_at_slot_3_upwards_in_document_order(sample):
    golden = (GOLDEN / sample.name).read_text(encoding="utf-8")
    nics = nic_slots(golden)
    assert nics == [(0, 3 + i, 0) for i in range(len(nics))]


@pytest.mark.parametrize("sample", Q35_SAMPLES, ids=[p.name for p in Q35_SAMPLES])
def test_golden_q35_nics_are_enp1s0_enp2s0_in_document_order(sample):
    from planner.relayout import nic_names

    plan = relayout((GOLDEN / sample.name).read_text(encoding="utf-8")).plan
    names = [name for _, _, name in nic_names(plan)]
    assert names == [f"enp{i}s0" for i in range(1, len(names) + 1)] and names


def test_sample_and_its_relayout_validate_against_libvirts_schema(sample, tmp_path):
    assert schema_check(sample).returncode == 0, schema_check(sample).stderr
    out = tmp_path / sample.name
    out.write_text(relayout(sample.read_bytes()).xml, encoding="utf-8")
    result = schema_check(out)
    assert result.returncode == 0, result.stderr


@pytest.mark.libvirt
def test_sample_and_its_relayout_define_and_libvirt_keeps_every_planned_address(conn, sample):
    original = sample.read_text(encoding="utf-8")
    with defined(conn, original):
        pass
    result = relayout(original)
    with defined(conn, result.xml) as (_, dumped):
        theirs = device_keys(dumped)
        assert nic_slots(dumped) == nic_slots(result.xml)
        nic_range = result.plan.layout.nic_slots
        intruders = [
            (el.tag, a)
            for el in devices_of(dumped)
            if el.tag != "interface" and (a := address(el)) and a[0] == 0 and a[1] in nic_range
        ]
        assert not intruders, f"libvirt put devices into the NIC range: {intruders}"
    ours = device_keys(result.xml)
    assert {key: theirs.get(key) for key in ours} == ours


@pytest.mark.libvirt
def test_planner_orders_the_other_devices_as_libvirt_itself_would(conn, sample):
    original = sample.read_text(encoding="utf-8")
    theirs, ours = libvirt_order_differences(conn, original, relayout(original).xml)
    assert ours == theirs
