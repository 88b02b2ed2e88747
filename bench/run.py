#!/usr/bin/env python3
"""planner benchmarks (see bench/__init__.py): `python3 bench/run.py [--quick] [--json FILE]`."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # the tree, not bench/ (so its module names shadow nothing)

from bench.main import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
