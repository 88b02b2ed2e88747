"""Row 3, scale: topology read + plan, and the whole relayout, at 10, 100 and 1,000 devices.

Generated pc and q35 domains (bench/gen.py); the floor is lxml parse + serialize of the
same document, and the growth from 100 to 1,000 devices gives the exponent k in n^k.
"""

from __future__ import annotations

import math

from planner import Policy, relayout
from planner.machines import read_topology  # internal: see below
from planner.relayout import make_plan  # internal: see below
from planner.xmldoc import Document  # internal: see below

from .corpus import floor_parse_serialize, generate, scale_families, scale_sizes
from .harness import Line, Row, fmt_ratio, interleaved, med, ms, pair_ratio, profile

# The only planner internals the bench uses, all here: parse a document, then read its
# topology and plan it (what relayout does before it rewrites). Row 1's breakdown uses them too.
parse = Document.parse
topology = read_topology


def plan(topo):
    return make_plan(topo, Policy())


def topology_and_plan(doc):
    return plan(topology(doc))


def run(quick: bool) -> Row:
    sizes = scale_sizes(quick)
    families = scale_families()
    reps = {10: 3, 100: 3, 1000: 3} if quick else {10: 101, 100: 41, 1000: 15}
    lines: list[Line] = []
    notes: list[str] = []
    out: dict = {}
    for fam in families:
        per: dict = {}
        data = b""
        for n in sizes:
            data = generate(fam, n)
            doc = parse(data)
            ndev = len(relayout(data).plan.topology.devices)
            times = interleaved(
                {
                    "plan": lambda d=doc: topology_and_plan(d),  # on a parsed document
                    "relayout": lambda x=data: relayout(x),
                    "parse": lambda x=data: parse(x),
                    "floor": lambda x=data: floor_parse_serialize(x),
                },
                reps[n],
            )
            r = pair_ratio(times["relayout"], times["floor"])
            per[n] = {
                "devices": ndev,
                "bytes": len(data),
                **{f"{k}_s": v for k, v in times.items()},
                "relayout_vs_floor": r,
            }
            tplan, trel, tfl = med(times["plan"]), med(times["relayout"]), med(times["floor"])
            size = f"{len(data) / 1024:,.0f} KiB"
            lines.append(
                Line(
                    3,
                    f"scale {fam}, {ndev} devices ({size}): topology + plan / relayout",
                    f"{ms(tplan)} ({tplan / ndev * 1e6:.0f} µs/dev) / "
                    f"{ms(trel)} ({trel / ndev * 1e6:.0f} µs/dev)",
                    ms(tfl),
                    fmt_ratio(r) + " relayout",
                    "< 50 ms plan at 1,000" if n >= 1000 else "",
                    tplan < 0.050 if n >= 1000 else None,
                )
            )
        if len(sizes) >= 2:
            a, b = sizes[-2], sizes[-1]
            grow = {}
            for k in ("plan", "relayout", "floor"):
                ta, tb = med(per[a][f"{k}_s"]), med(per[b][f"{k}_s"])
                na, nb = per[a]["devices"], per[b]["devices"]
                grow[k] = math.log(tb / ta) / math.log(nb / na)
            ok = grow["plan"] <= 1.2 and grow["relayout"] <= 1.2
            lines.append(
                Line(
                    3,
                    f"scale {fam}: growth {a}→{b} devices, exponent k in time ∝ n^k "
                    "(plan / relayout)",
                    f"{grow['plan']:.2f} / {grow['relayout']:.2f}",
                    f"{grow['floor']:.2f}",
                    "",
                    "≤ 1.2 (n log n)",
                    ok,
                )
            )
            per["growth_exponent"] = grow
            big = per[b]
            if med(big["plan_s"]) >= 0.050 or not ok:
                doc = parse(data)
                per["profile_plan"] = profile(lambda d=doc: topology_and_plan(d))
                per["profile_relayout"] = profile(lambda x=data: relayout(x))
                notes.append(
                    f"Row 3 ({fam}, {big['devices']} devices) cProfile own time, topology + plan: "
                    + "; ".join(per["profile_plan"])
                    + ". Whole relayout: "
                    + "; ".join(per["profile_relayout"])
                    + "."
                )
        out[fam] = per
    notes.append(
        "Row 3: generated domains (bench/gen.py; `python3 bench/gen.py --check` defines each in "
        "libvirt): pc = chipset devices, 4 NICs and ~10 devices on bus 0, the rest behind "
        "pci-bridges (nested beyond 8) at explicit addresses"
        + (
            "; q35 = one device per pcie-root-port, beyond 100 behind a pcie-to-pci-bridge and "
            "pci-bridges"
            if "q35" in families
            else "; q35 not measured: this tree's planner raises UnsupportedError for q35"
        )
        + ". 'topology + plan' = read_topology + make_plan on a parsed document; relayout = parse "
        "+ plan + rewrite; floor = lxml parse + serialize of the same document."
    )
    return Row("scale", tuple(lines), tuple(notes), out)
