"""Run ``planner`` in process through ``main(argv)``, as a subprocess would see it.

Returns what ``subprocess.run(..., capture_output=True)`` returns: the exit status and
stdout/stderr as bytes. argparse's own exits (usage errors, ``--version``) count too.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from planner.cli import main

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


def run_main(*args, stdin: bytes | None = None, cwd: Path | None = None) -> Completed:
    out, err = io.BytesIO(), io.BytesIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    here = os.getcwd()
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    sys.stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    try:
        os.chdir(cwd or ROOT)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        return Completed(code, out.getvalue(), err.getvalue())
    finally:
        for stream in (sys.stdin, sys.stdout, sys.stderr):
            stream.detach()
        sys.stdin, sys.stdout, sys.stderr = saved
        os.chdir(here)
