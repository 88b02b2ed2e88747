"""Row 5, peak memory of relayout on the largest document, against lxml parse + serialize.

Two measures: tracemalloc's peak (the Python heap only, so its floor misses libxml2's tree)
and the growth of a fresh process's max RSS (both).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path

from planner import relayout

from .corpus import floor_parse_serialize, load_corpus, scale_documents
from .harness import ROOT, Line, Row, kib, med

RSS_CODE = r"""
import gc, resource, sys
sys.path.insert(0, sys.argv[3])
import lxml.etree as e
from planner import relayout
data = open(sys.argv[2], 'rb').read()
if sys.argv[1] == 'planner':
    op = lambda: relayout(data).xml
else:
    op = lambda: e.tostring(e.fromstring(data), encoding='unicode')
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1])
gc.collect()
try:  # reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    before, key = status('VmRSS'), 'VmHWM'
except OSError:
    before, key = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, None
x = op()
after = status(key) if key else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(after - before)
"""


def run(quick: bool, tmp: Path) -> Row:
    docs = [*load_corpus(quick).docs, *scale_documents(quick)]
    name, data = max(docs, key=lambda d: len(d[1]))
    reps = 1 if quick else 3

    def peak(fn) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    mine, floor = [], []
    for _ in range(reps):
        mine.append(peak(lambda: relayout(data).xml))
        floor.append(peak(lambda: floor_parse_serialize(data)))
    path = tmp / "largest.xml"
    path.write_bytes(data)
    rss = {"planner": [], "floor": []}
    for r in range(reps):
        for which in ("planner", "floor") if r % 2 == 0 else ("floor", "planner"):
            p = subprocess.run(
                [sys.executable, "-c", RSS_CODE, which, str(path), str(ROOT)],
                capture_output=True,
                text=True,
            )
            if p.returncode == 0:
                rss[which].append(int(p.stdout.strip()) * 1024)
    pm, pf = med(mine), med(floor)
    lines = [
        Line(
            5,
            f"peak memory, relayout of the largest document ({name}, {len(data) / 1024:,.0f} KiB): "
            "tracemalloc peak (Python heap)",
            kib(pm),
            kib(pf),
            f"{pm / pf:.1f}×",
            "",
            None,
        )
    ]
    if rss["planner"] and rss["floor"]:
        rp, rf = med(rss["planner"]), med(rss["floor"])
        lines.append(
            Line(
                5,
                "peak memory, same document: growth of the process's max RSS (includes libxml2)",
                kib(rp),
                kib(rf),
                f"{rp / rf:.1f}×" if rf else "-",
                "",
                None,
            )
        )
    note = (
        "Row 5: tracemalloc sees Python allocations only, so its floor misses libxml2's tree "
        "(malloc'd in C); the max-RSS growth (one fresh process per figure, measured after "
        "imports) counts both."
    )
    data_out = {
        "document": name,
        "bytes": len(data),
        "tracemalloc_planner": mine,
        "tracemalloc_floor": floor,
        "rss_growth": rss,
    }
    return Row("memory", tuple(lines), (note,), data_out)
