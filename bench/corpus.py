"""The documents rows 1 and 5 run on, and the floor every in-process figure is measured against."""

from __future__ import annotations

import functools
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from planner import PlannerError, relayout
from planner.errors import UnsupportedError

from . import gen
from .harness import ROOT

SAMPLES = ROOT / "samples"
CORPUS = ROOT / "tests" / "corpus"  # real domain XML, with its SOURCES.md


@dataclass(frozen=True)
class Corpus:
    docs: tuple[tuple[str, bytes], ...]  # (name, bytes) of every document planner supports
    total: int
    with_corpus: bool  # tests/corpus was read (a full run, and the folder is there)
    unsupported: tuple[str, ...]
    refused: tuple[str, ...]

    def summary(self) -> dict:
        return {
            "total": self.total,
            "corpus": self.with_corpus,
            "unsupported": list(self.unsupported),
            "refused": list(self.refused),
        }


def floor_parse_serialize(data: bytes) -> str:
    """The floor: lxml parses and serializes the same bytes."""
    return etree.tostring(etree.fromstring(data), encoding="unicode")


@functools.cache
def load_corpus(quick: bool) -> Corpus:
    """samples/, tests/corpus/ (not with --quick) and generated pc domains with pci-bridges."""
    files = sorted(glob.glob(str(SAMPLES / "*.xml")))
    with_corpus = CORPUS.is_dir() and not quick
    if with_corpus:
        files += sorted(glob.glob(str(CORPUS / "**" / "*.xml"), recursive=True))
    docs = [(os.path.relpath(f, ROOT), Path(f).read_bytes()) for f in files]
    sizes = (60,) if quick else (25, 60, 120, 250)
    docs += [(f"generated pc {n} devices", gen.pc_domain(n).encode()) for n in sizes]
    kept, unsupported, refused = [], [], []
    for name, data in docs:
        try:
            relayout(data)
        except UnsupportedError:
            unsupported.append(name)
            continue
        except PlannerError as exc:
            refused.append(f"{name}: {exc}")
            continue
        kept.append((name, data))
    return Corpus(tuple(kept), len(docs), with_corpus, tuple(unsupported), tuple(refused))


def scale_sizes(quick: bool) -> tuple[int, ...]:
    """Device counts of row 3's generated domains."""
    return (10, 100) if quick else (10, 100, 1000)


@functools.cache
def scale_families() -> tuple[str, ...]:
    """pc, and q35 when this tree's planner lays it out."""
    try:
        relayout(gen.q35_domain(10))
    except UnsupportedError:
        return ("pc",)
    return ("pc", "q35")


def generate(family: str, n: int) -> bytes:
    return (gen.pc_domain if family == "pc" else gen.q35_domain)(n).encode()


def scale_documents(quick: bool) -> list[tuple[str, bytes]]:
    """Row 3's generated documents, (name, bytes)."""
    return [
        (f"generated {fam} {n} devices", generate(fam, n))
        for fam in scale_families()
        for n in scale_sizes(quick)
    ]
