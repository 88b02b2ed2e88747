"""planner installed as a user has it: a throwaway venv, ``pip install`` of this tree.

The venv sees the system site-packages (lxml and libvirt-python come from there, as for the
floor run by the same venv's python); planner itself is built once into a wheel from a copy
of the tree (the build writes build/ and *.egg-info, which stay out of the checkout) and
installed non-editable, with .pyc compiled as pip does, or ``--no-compile`` for the
no-bytecode variant.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .harness import ROOT

# What the copy of the tree leaves out: VCS, caches, build output, and what is not packaged.
_SKIP = (".git", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis")
_SKIP_TOP = {"tests", "bench", "samples", "docs"}


@dataclass(frozen=True)
class Venv:
    root: Path
    python: Path  # the venv's interpreter
    script: Path  # the installed `planner` console script
    env: dict  # the environment to run both with
    compiled: bool  # planner's .pyc files were written by pip

    def package_dir(self) -> Path:
        out = subprocess.run(
            [
                str(self.python),
                "-c",
                "import planner, os; print(os.path.dirname(planner.__file__))",
            ],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            check=True,
        )
        return Path(out.stdout.strip())


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args[:1])} failed: {p.stderr.strip()[-800:]}")


def build_wheel(tmp: Path, root: Path = ROOT) -> Path:
    """A wheel of the tree at root (this one by default), built from a clean copy of it."""
    src = tmp / "src"

    def ignore(d: str, names: list[str]) -> set[str]:
        skip = set(shutil.ignore_patterns(*_SKIP)(d, names))
        if Path(d) == root:
            skip |= _SKIP_TOP & set(names)
        return skip

    shutil.copytree(root, src, ignore=ignore)
    wheels = tmp / "wheels"
    try:  # an isolated build fetches setuptools (and wheel) from the index or pip's cache
        _pip("wheel", "--no-deps", "-w", str(wheels), str(src))
    except RuntimeError as isolated:  # offline: the build tools installed here, if any
        try:
            _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src))
        except RuntimeError as local:
            raise RuntimeError(f"{isolated}; without build isolation: {local}") from None
    (wheel,) = wheels.glob("*.whl")
    return wheel


def make_venv(where: Path, wheel: Path, compiled: bool) -> Venv:
    """A venv at `where` with the wheel installed; no .pyc files for planner unless compiled."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(where)],
        check=True,
        capture_output=True,
    )
    python = where / "bin" / "python"
    _pip(
        "--python",
        str(python),
        "install",
        "--no-deps",
        "--compile" if compiled else "--no-compile",
        str(wheel),
    )
    drop = ("PYTHONPATH", "PYTHONPYCACHEPREFIX", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{where / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(where)
    if not compiled:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # stays without .pyc, as a read-only install
    venv = Venv(where, python, where / "bin" / "planner", env, compiled)
    pyc = list(venv.package_dir().rglob("*.pyc"))
    if compiled and not pyc:
        raise RuntimeError(f"pip wrote no .pyc files into {venv.package_dir()}")
    if not compiled and pyc:
        raise RuntimeError(f"{len(pyc)} .pyc files in {venv.package_dir()} (--no-compile)")
    return venv
