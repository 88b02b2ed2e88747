"""The tests read nothing outside the repository.

A copy of the repository's files (``git ls-files``, tracked and not ignored) goes to a
temporary directory with nothing beside it, in particular no ``../shared``; the corpus
tests run there in a subprocess, against the copy's own ``planner``, and must all pass
with every corpus file counted.

In CI (``CI=true``) that is every corpus test that needs no libvirtd. A local run (``CI``
unset) leaves out the schema check of each file (``test_relayout_validates_if_the_input_did``,
two runs of virt-xml-validate a file, three quarters of the time): it reads the same corpus
file as the relayout test, which still runs for every file, and nothing else of the copy.
The copy and its run are a background job, run while the other tests run
(tests/background.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from background import job
from domains import IN_CI

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_TEST = "test_relayout_validates_if_the_input_did"
CORPUS_SOURCES = ROOT / "tests" / "corpus" / "SOURCES.md"
IGNORED = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".hypothesis"
)


def _repository_files(env: dict[str, str] | None = None) -> list[str]:
    """The files a clone has: tracked ones plus new ones not ignored (none without git)."""
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:  # an unpacked sdist: no git, the tree is what ships
        return []
    return [f for f in proc.stdout.decode().split("\0") if f and (ROOT / f).is_file()]


def copy_repository(dest: Path, env: dict[str, str] | None = None) -> Path:
    files = _repository_files(env)
    if not files:
        shutil.copytree(ROOT, dest, ignore=IGNORED, symlinks=True)
        return dest
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    return dest


@job("corpus_in_a_copy")
def run_corpus_in_a_copy(
    tmp_path_factory, env: dict[str, str]
) -> tuple[list[str], subprocess.CompletedProcess]:
    """The copy's corpus tests, run in the copy: what the copy had beside it, and the run."""
    tmp_path = tmp_path_factory.mktemp("self-contained")
    copy = copy_repository(tmp_path / "clone", env)
    beside = sorted(p.name for p in tmp_path.iterdir())
    local = [] if IN_CI else ["-k", f"not {SCHEMA_TEST}"]
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, planner, pytest; assert planner.__file__.startswith(sys.argv[1]);"
            " raise SystemExit(pytest.main(sys.argv[2:]))",
            str(copy),
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not libvirt",
            "-o",
            "addopts=-ra",
            "tests/test_corpus.py",
            *local,
        ],
        cwd=copy,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    return beside, proc


@pytest.fixture
def corpus_in_a_copy(background_jobs) -> tuple[list[str], subprocess.CompletedProcess]:
    return background_jobs.result(run_corpus_in_a_copy)


def test_the_corpus_tests_pass_in_a_copy_with_nothing_beside_it(corpus_in_a_copy):
    beside, proc = corpus_in_a_copy
    assert beside == ["clone"]  # no ../shared
    listed = re.findall(
        r"^\| `([^`]+\.xml)` \|", CORPUS_SOURCES.read_text(encoding="utf-8"), flags=re.M
    )
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    summary = proc.stdout.strip().splitlines()[-1]
    # two tests per file (relayout, schema; locally relayout only), plus the two counting the
    # corpus itself
    per_file = 2 if IN_CI else 1
    assert re.match(rf"^{per_file * len(listed) + 2} passed, \d+ deselected in ", summary), tail
