"""Row 1, relayout throughput in process: every document of the corpus, against lxml."""

from __future__ import annotations

import gc

from planner import relayout

from .corpus import Corpus, floor_parse_serialize, load_corpus
from .harness import Line, Row, fmt_ratio, med, ms, now, pair_ratio, profile, timed


def phases(docs: tuple[tuple[str, bytes], ...], reps: int) -> dict[str, float]:
    """Where relayout's time goes, summed over the documents (medians over reps).

    Parse, topology read and plan are timed through the scale row's internal surface; the
    rewrite is the rest of a whole relayout of the same document. Empty if those internals
    have moved: the row still stands without its breakdown.
    """
    try:
        from . import scale
    except ImportError:
        return {}
    runs: list[dict[str, float]] = []
    for _ in range(reps):
        gc.collect()
        acc = dict.fromkeys(("parse + element map", "topology read", "plan", "rewrite"), 0.0)
        for _, data in docs:
            t0 = now()
            doc = scale.parse(data)
            t1 = now()
            topo = scale.topology(doc)
            t2 = now()
            scale.plan(topo)
            t3 = now()
            whole = timed(lambda d=data: relayout(d))
            acc["parse + element map"] += t1 - t0
            acc["topology read"] += t2 - t1
            acc["plan"] += t3 - t2
            acc["rewrite"] += max(whole - (t3 - t0), 0.0)
        runs.append(acc)
    return {k: med([r[k] for r in runs]) for k in runs[0]}


def run(quick: bool) -> Row:
    corpus: Corpus = load_corpus(quick)
    docs = corpus.docs
    reps = 3 if quick else 21
    per_doc = {name: {"planner": [], "floor": []} for name, _ in docs}
    totals: dict[str, list[float]] = {"planner": [], "floor": []}
    for r in range(reps):
        gc.collect()
        tp = tf = 0.0
        for i, (name, data) in enumerate(docs):
            order = ("planner", "floor") if (r + i) % 2 == 0 else ("floor", "planner")
            for which in order:
                if which == "planner":
                    dt = timed(lambda d=data: relayout(d))
                    tp += dt
                else:
                    dt = timed(lambda d=data: floor_parse_serialize(d))
                    tf += dt
                per_doc[name][which].append(dt)
        totals["planner"].append(tp)
        totals["floor"].append(tf)
    ratio = pair_ratio(totals["planner"], totals["floor"])
    nbytes = sum(len(d) for _, d in docs)
    worst = sorted(
        ((med(v["planner"]) / med(v["floor"]), n) for n, v in per_doc.items()), reverse=True
    )
    tp, tf = med(totals["planner"]), med(totals["floor"])
    line = Line(
        1,
        f"relayout throughput, in process: {len(docs)} documents, {nbytes / 1024:,.0f} KiB "
        f"({len(corpus.unsupported)} unsupported skipped)",
        f"{ms(tp)} ({len(docs) / tp:,.0f} docs/s)",
        f"{ms(tf)} ({len(docs) / tf:,.0f} docs/s)",
        fmt_ratio(ratio),
        "≤ 3×",
        ratio["ratio"] <= 3,
    )
    if corpus.with_corpus:
        real = " + tests/corpus/**/*.xml"
    else:  # --quick leaves it out; a full run without it says so
        real = "" if quick else " (tests/corpus/ is missing: not measured)"
    notes = [
        "Row 1: corpus = samples/*.xml"
        + real
        + f" + generated pc domains with pci-bridges; {corpus.total} documents, "
        f"{len(corpus.unsupported)} skipped as unsupported (UnsupportedError)"
        + (f", {len(corpus.refused)} refused as invalid" if corpus.refused else "")
        + ". Floor: lxml fromstring + tostring. Highest per-document ratios: "
        + ", ".join(f"{n} {r:.1f}×" for r, n in worst[:3])
        + "."
    ]
    stages = phases(docs, 3 if quick else 9)
    if stages:
        notes.append(
            "Row 1, where relayout's time goes (sum over the corpus, medians; rewrite = the rest "
            "of a whole relayout): "
            + ", ".join(f"{k} {ms(v)} ({v / tf:.1f}× the floor)" for k, v in stages.items())
            + "."
        )
    if ratio["ratio"] > 3:
        prof = profile(lambda: [relayout(d) for _, d in docs])
        notes.append("Row 1 cProfile own time, whole corpus: " + "; ".join(prof) + ".")
    data = {
        "phases_s": stages,
        "documents": len(docs),
        "bytes": nbytes,
        "skipped": corpus.summary(),
        "reps": reps,
        "planner_s": totals["planner"],
        "floor_s": totals["floor"],
        **ratio,
        "per_document": {
            n: {"planner_s": med(v["planner"]), "floor_s": med(v["floor"])}
            for n, v in per_doc.items()
        },
    }
    return Row("throughput", (line,), tuple(notes), data)
