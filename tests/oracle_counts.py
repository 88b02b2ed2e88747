"""The counts issue 11 asks for, from libvirt as the oracle of a relayout.

    python3 tests/oracle_counts.py [-n 500] [--seed 11] [-v] [--save DIR]

Runs ``oracle.judge`` (P1 and P2, see tests/oracle.py) over the samples and both corpus
folders (each with the default policy and with ACPI indexes), N generated domains
(``strategies.oracle_domains``, seeded, so a run is repeatable) as written and as libvirt
dumps them once defined, and, if ``tests/libvirt/test_fidelity.py`` exists, its
hand-written reproductions. It prints per source and in total: inputs tried, planner
crashes (a traceback is counted, not raised), defined before (libvirt accepts the input),
defined after (libvirt accepts planner's output), refused by planner although libvirt
accepts (target 0), fixed-point failures (P2, target 0) and P1 differences; then every
failing input, with the issue 11 classes its generated form triggers (``[classes ...]``;
``[no listed class]`` is a failure nobody has claimed yet). ``-v`` prints each failure's
whole verdict, ``--save DIR`` writes each failing input there.
Needs libvirtd (``qemu:///system``, or ``PLANNER_TEST_URI``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]  # this checkout's planner, and the test helpers

from oracle import define_dump, judge  # noqa: E402
from strategies import KNOWN_CLASSES, sample  # noqa: E402

COLUMNS = (
    ("tried", "inputs tried"),
    ("crashed", "planner crashed, a traceback (target 0)"),
    ("defined_before", "defined before"),
    ("defined_after", "defined after"),
    ("planner_refused", "refused by planner although libvirt accepts (target 0)"),
    ("output_refused", "output refused by libvirt"),
    ("p1", "P1 differences"),
    ("p2", "fixed-point failures (target 0)"),
)


def file_inputs():
    files = sorted((ROOT / "samples").glob("*.xml"))
    files += sorted((ROOT / "samples" / "cloudstack").glob("*.xml"))
    corpus = ROOT / "tests" / "corpus"
    files += sorted(corpus.glob("*.xml")) + sorted((corpus / "libvirt90-assigned").glob("*.xml"))
    for path in files:
        source = "samples" if path.is_relative_to(ROOT / "samples") else "corpus"
        text = path.read_text(encoding="utf-8")
        for name, policy in (("default", {}), ("acpi-index", {"acpi_index": True})):
            yield source, f"{path.relative_to(ROOT)} [{name}]", text, policy, None


def generated_inputs(conn, n: int, at: int):
    """The generated domains as written, then as libvirt dumps them once defined."""
    cases = sample(n, at)
    for i, case in enumerate(cases):
        label = f"generated #{i} ({', '.join(sorted(case.features))})"
        yield "generated", label, case.xml, case.policy, case.classes
    for i, case in enumerate(cases):
        dumped, _ = define_dump(conn, case.xml)
        if dumped is not None:
            label = f"generated #{i} as dumped ({', '.join(sorted(case.features))})"
            yield "gen. dumped", label, dumped, case.policy, frozenset()


def fidelity_inputs():
    path = HERE / "libvirt" / "test_fidelity.py"
    if not path.exists():
        return
    spec = importlib.util.spec_from_file_location("fidelity_reproductions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, xml in getattr(module, "ACCEPTED", {}).items():
        yield "reproductions", f"test_fidelity ACCEPTED[{name}]", xml, {}, None
    for name, value in getattr(module, "REFUSED", {}).items():
        yield "reproductions", f"test_fidelity REFUSED[{name}]", value[0], {}, None


def _classes(classes) -> str:
    if classes is None:
        return ""
    if not classes:
        return " [no listed class]"
    return " [classes " + ", ".join(map(str, sorted(classes))) + "]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=500, help="generated domains (default 500)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--save", metavar="DIR", type=Path, help="write each failing input there")
    args = ap.parse_args(argv)

    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(os.environ.get("PLANNER_TEST_URI", "qemu:///system"))
    counts: dict[str, Counter] = {}
    failures: list[tuple[str, str, str]] = []
    start = time.monotonic()
    try:
        streams = (file_inputs(), generated_inputs(conn, args.n, args.seed), fidelity_inputs())
        for stream in streams:
            for source, label, xml, policy, classes in stream:
                c = counts.setdefault(source, Counter())
                c["tried"] += 1
                try:
                    v = judge(conn, xml, **policy)
                except Exception as exc:  # noqa: BLE001 - a traceback is a finding too
                    c["crashed"] += 1
                    why = f"planner crashed: {type(exc).__name__}: {exc}"
                    failures.append((label + _classes(classes), why, policy))
                    continue
                if not v.input_defined:
                    continue
                c["defined_before"] += 1
                if v.planner_error:
                    c["planner_refused"] += 1
                elif v.output_error:
                    c["output_refused"] += 1
                else:
                    c["defined_after"] += 1
                    c["p1"] += bool(v.p1_diff)
                    c["p2"] += bool(v.p2_diff)
                if not v.ok:
                    failures.append((label + _classes(classes), v.explain(), policy))
                    if args.save:
                        args.save.mkdir(parents=True, exist_ok=True)
                        name = f"{len(failures):03d}-{source.replace(' ', '')}.xml"
                        (args.save / name).write_text(f"<!-- {label} {policy} -->\n{xml}")
    finally:
        conn.close()
    elapsed = time.monotonic() - start

    total = Counter()
    for c in counts.values():
        total.update(c)
    names = [*counts, "total"]
    print(f"libvirt oracle: {len(failures)} failing inputs, {elapsed:.1f} s")
    print(
        f"(generated: {args.n} domains, seed {args.seed}, each as written and as libvirt "
        f"dumps it; classes still open on this branch: {sorted(KNOWN_CLASSES) or 'none'})"
    )
    width = max(len(label) for _, label in COLUMNS)
    print(f"{'':{width}}  " + "  ".join(f"{n:>13}" for n in names))
    for key, label in COLUMNS:
        row = [counts[n][key] for n in counts] + [total[key]]
        print(f"{label:{width}}  " + "  ".join(f"{v:>13}" for v in row))
    for label, why, _ in failures:
        print(f"FAIL {label}: {why if args.verbose else why.splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
