"""libvirt judges the relayout of every sample and every corpus file (issue 11).

For each file, with the default policy and with ACPI indexes: P1, if libvirtd defines
the input it defines the output and the guest sees the same devices; P2, a relayout of
libvirt's dumpxml of the output changes nothing (see ``oracle.py``). Both corpus folders
are judged (``libvirt90-assigned/`` holds libvirt's own addresses), q35 files included.

A file that fails because of one of issue 11's classes is marked ``xfail(strict=True)``
in ``KNOWN`` below, naming the class; the fix lands on branch ``fidelity``, and the
strict mark then turns the pass into a failure until the mark is removed. None is
needed today: every file passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from domains import ROOT
from oracle import judge

CORPUS = ROOT / "tests" / "corpus"


def inputs() -> list[Path]:
    """Every sample domain (samples/*.xml, and samples/cloudstack/ if it holds XML) and
    every corpus file, both folders."""
    samples = sorted((ROOT / "samples").glob("*.xml"))
    samples += sorted((ROOT / "samples" / "cloudstack").glob("*.xml"))
    corpus = sorted(CORPUS.glob("*.xml")) + sorted((CORPUS / "libvirt90-assigned").glob("*.xml"))
    return samples + corpus


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


# file (relative to the repository) -> the issue 11 class it fails by: strict xfail
KNOWN: dict[str, str] = {}

POLICIES = {"default": {}, "acpi-index": {"acpi_index": True}}


def _params():
    for path in inputs():
        marks = ()
        if _id(path) in KNOWN:
            marks = pytest.mark.xfail(strict=True, reason=KNOWN[_id(path)])
        yield pytest.param(path, marks=marks, id=_id(path))


def test_the_oracle_sees_every_sample_and_both_corpus_folders():
    files = inputs()
    assert len([p for p in files if p.parent == ROOT / "samples"]) >= 8
    assert len([p for p in files if p.parent == CORPUS]) >= 60
    assert len([p for p in files if p.parent.name == "libvirt90-assigned"]) >= 60
    assert any("q35" in p.read_text(encoding="utf-8") for p in files)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("path", list(_params()))
def test_libvirt_defines_the_relayout_the_guest_sees_no_difference_and_it_is_a_fixed_point(
    conn, path, policy
):
    verdict = judge(conn, path.read_text(encoding="utf-8"), **POLICIES[policy])
    assert verdict.input_defined, "every sample and corpus file is one libvirt defines"
    assert verdict.ok, verdict.explain()
