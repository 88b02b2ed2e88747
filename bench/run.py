#!/usr/bin/env python3
"""planner benchmarks: every figure is a ratio against its floor, measured in the same run.

    python3 bench/run.py [--quick] [--json FILE] [--rows 1,2,3,4,5] [--uri URI]

Rows (see issue 7):
  1  relayout throughput, in process, over a corpus  vs lxml parse + serialize of the same docs
  2  `planner relayout FILE` as a whole process      vs python3 -c 'lxml parse + serialize FILE'
  3  scale: topology read + plan, whole relayout for generated domains of 10, 100, 1,000 devices
  4  `planner hotplug` of a NIC into a running TCG domain vs `virsh attach-device --live --config`
     of the same XML at the same address; in-process overhead (XMLDesc reads + planning)
  5  peak memory of relayout on the largest document  vs lxml parse + serialize of it

Planner and floor are timed alternately (ABAB.../BABA...), so a machine that other work slows
down slows both; the ratio is the median of the per-pair ratios, and the times are medians.
Documents the planner does not support (UnsupportedError) are skipped and counted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import glob
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gen  # noqa: E402
from lxml import etree  # noqa: E402

from planner.errors import PlannerError, UnsupportedError  # noqa: E402
from planner.relayout import plan_document, relayout  # noqa: E402
from planner.xmldoc import Document  # noqa: E402

CLI_SAMPLE = ROOT / "samples" / "cloudstack-2nic.xml"
FORBIDDEN = ("libvirt", "libvirtmod", "jinja2", "xmltodict", "rich")
FLOOR_CODE = (
    "import sys, lxml.etree as e; "
    "sys.stdout.write(e.tostring(e.parse(sys.argv[1]), encoding='unicode'))"
)


# ---------------------------------------------------------------- measurement helpers


def _now() -> float:
    return time.perf_counter()


def _timed(fn) -> float:
    t = _now()
    fn()
    return _now() - t


def interleaved(fns: dict[str, object], reps: int, collect: bool = True) -> dict[str, list[float]]:
    """Run each fn once per repetition, rotating the order every repetition."""
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if collect:
                gc.collect()
            out[name].append(_timed(fns[name]))
    return out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def pair_ratio(a: list[float], b: list[float]) -> dict:
    """Median and quartiles of the per-pair ratios a[i]/b[i]."""
    ratios = sorted(x / y for x, y in zip(a, b) if y > 0)
    if len(ratios) >= 4:
        q = statistics.quantiles(ratios, n=4)
        lo, hi = q[0], q[2]
    else:
        lo, hi = ratios[0], ratios[-1]
    return {"ratio": statistics.median(ratios), "q1": lo, "q3": hi, "n": len(ratios)}


def ms(x: float) -> str:
    x *= 1e3
    return f"{x:.1f} ms" if x >= 10 else f"{x:.2f} ms" if x >= 1 else f"{x:.3f} ms"


def kib(b: float) -> str:
    return f"{b / 1024:,.0f} KiB"


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []
        self.notes: list[str] = []

    def add(self, num, what, planner, floor, ratio, target, ok) -> None:
        mark = "" if ok is None else ("yes" if ok else "**no**")
        self.rows.append((str(num), what, planner, floor, ratio, target, mark))

    def render(self) -> str:
        head = ("#", "benchmark", "planner", "floor", "ratio (IQR)", "target", "met")
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def fmt_ratio(r: dict) -> str:
    return f"{r['ratio']:.2f}× ({r['q1']:.2f}–{r['q3']:.2f})"


# ---------------------------------------------------------------- machine and versions


def _sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(uri: str) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": cpu,
        "os": os_name,
        "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "lxml": ".".join(map(str, etree.LXML_VERSION)),
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
        "loadavg_start": os.getloadavg(),
        "planner_commit": _sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "?",
        "planner_dirty": bool(_sh(["git", "-C", str(ROOT), "status", "--porcelain", "planner"])),
    }
    qemu = _sh(["qemu-system-x86_64", "--version"]).splitlines()
    info["qemu"] = qemu[0].replace("QEMU emulator version ", "") if qemu else "not installed"
    try:
        import libvirt

        v = libvirt.getVersion()
        info["libvirt_python"] = getattr(libvirt, "__version__", None) or _ver(v)
        info["libvirt_library"] = _ver(v)
        try:
            libvirt.registerErrorHandler(lambda *_: None, None)
            conn = libvirt.open(uri)
            info["libvirtd"] = _ver(conn.getLibVersion())
            info["hypervisor"] = f"{conn.getType()} {_ver(conn.getVersion())}"
            conn.close()
        except libvirt.libvirtError as exc:
            info["libvirtd"] = f"unreachable ({' '.join(str(exc).split())})"
    except ImportError:
        info["libvirt_python"] = "not installed"
    return info


def _ver(v: int) -> str:
    return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"


def render_info(info: dict) -> str:
    dirty = " (with uncommitted changes in planner/)" if info["planner_dirty"] else ""
    lines = [
        f"- date: {info['date']}; planner commit {info['planner_commit']}{dirty}",
        f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['os']}, Linux {info['kernel']}; "
        f"load average at start {'/'.join(f'{x:.2f}' for x in info['loadavg_start'])}"
        + (
            f", at end {'/'.join(f'{x:.2f}' for x in info['loadavg_end'])}"
            if "loadavg_end" in info
            else ""
        ),
        f"- versions: {info['python']}, lxml {info['lxml']} (libxml2 {info['libxml2']}), "
        f"libvirt-python {info.get('libvirt_python')} "
        f"(library {info.get('libvirt_library', '-')}), "
        f"libvirtd {info.get('libvirtd', '-')}, hypervisor {info.get('hypervisor', '-')}, "
        f"QEMU {info['qemu']}",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- corpus


def load_corpus(quick: bool) -> tuple[list[tuple[str, bytes]], dict]:
    """(name, bytes) of every supported document, and what was skipped."""
    files = sorted(glob.glob(str(ROOT / "samples" / "*.xml")))
    shared = ROOT.parent / "shared" / "corpus"
    if shared.is_dir() and not quick:
        files += sorted(glob.glob(str(shared / "**" / "*.xml"), recursive=True))
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
    return kept, {
        "total": len(docs),
        "shared_corpus": shared.is_dir() and not quick,
        "unsupported": unsupported,
        "refused": refused,
    }


def relayout_phases(docs: list[tuple[str, bytes]], reps: int) -> dict[str, float]:
    """Time relayout's stages separately (planner internals: empty if they have changed)."""
    try:
        from planner.apply import apply_plan
        from planner.plan import make_plan
        from planner.relayout import effective_policy
        from planner.topology import read_topology

        def stages(data: bytes, acc: dict[str, float]) -> None:
            t0 = _now()
            doc = Document.parse(data)
            t1 = _now()
            topo = read_topology(doc)
            t2 = _now()
            prior = (
                topo.layout.policy if topo.layout and topo.layout.machine == topo.machine else None
            )
            plan = make_plan(topo, effective_policy(prior))
            t3 = _now()
            apply_plan(doc, plan)
            t4 = _now()
            for k, dt in (
                ("parse + element map", t1 - t0),
                ("topology read", t2 - t1),
                ("plan", t3 - t2),
                ("rewrite", t4 - t3),
            ):
                acc[k] = acc.get(k, 0.0) + dt

        runs: list[dict[str, float]] = []
        for _ in range(reps):
            gc.collect()
            acc: dict[str, float] = {}
            for _, data in docs:
                stages(data, acc)
            runs.append(acc)
        return {k: med([r[k] for r in runs]) for k in runs[0]}
    except Exception:  # noqa: BLE001 - a refactored planner: no breakdown, the rows still stand
        return {}


def floor_parse_serialize(data: bytes) -> str:
    return etree.tostring(etree.fromstring(data), encoding="unicode")


# ---------------------------------------------------------------- row 1: throughput


def row_throughput(t: Table, res: dict, quick: bool) -> list[tuple[str, bytes]]:
    docs, skipped = load_corpus(quick)
    reps = 3 if quick else 21
    per_doc = {name: {"planner": [], "floor": []} for name, _ in docs}
    totals = {"planner": [], "floor": []}
    for r in range(reps):
        gc.collect()
        tp = tf = 0.0
        for i, (name, data) in enumerate(docs):
            order = ("planner", "floor") if (r + i) % 2 == 0 else ("floor", "planner")
            for which in order:
                if which == "planner":
                    dt = _timed(lambda d=data: relayout(d))
                    tp += dt
                else:
                    dt = _timed(lambda d=data: floor_parse_serialize(d))
                    tf += dt
                per_doc[name][which].append(dt)
        totals["planner"].append(tp)
        totals["floor"].append(tf)
    ratio = pair_ratio(totals["planner"], totals["floor"])
    nbytes = sum(len(d) for _, d in docs)
    worst = sorted(
        ((med(v["planner"]) / med(v["floor"]), n) for n, v in per_doc.items()), reverse=True
    )
    what = (
        f"relayout throughput, in process: {len(docs)} documents, {nbytes / 1024:,.0f} KiB "
        f"({len(skipped['unsupported'])} unsupported skipped)"
    )
    tp, tf = med(totals["planner"]), med(totals["floor"])
    t.add(
        1,
        what,
        f"{ms(tp)} ({len(docs) / tp:,.0f} docs/s)",
        f"{ms(tf)} ({len(docs) / tf:,.0f} docs/s)",
        fmt_ratio(ratio),
        "≤ 3×",
        ratio["ratio"] <= 3,
    )
    t.notes.append(
        "Row 1: corpus = samples/*.xml"
        + (" + ../shared/corpus/**/*.xml" if skipped["shared_corpus"] else "")
        + f" + generated pc domains with pci-bridges; {skipped['total']} documents, "
        f"{len(skipped['unsupported'])} skipped as unsupported (UnsupportedError)"
        + (f", {len(skipped['refused'])} refused as invalid" if skipped["refused"] else "")
        + ". Floor: lxml fromstring + tostring. Highest per-document ratios: "
        + ", ".join(f"{n} {r:.1f}×" for r, n in worst[:3])
        + "."
    )
    phases = relayout_phases(docs, 3 if quick else 9)
    if phases:
        t.notes.append(
            "Row 1, where relayout's time goes (sum over the corpus, medians): "
            + ", ".join(f"{k} {ms(v)} ({v / tf:.1f}× the floor)" for k, v in phases.items())
            + "."
        )
    if ratio["ratio"] > 3:
        prof = _profile(lambda: [relayout(d) for _, d in docs])
        t.notes.append("Row 1 cProfile own time, whole corpus: " + "; ".join(prof) + ".")
    res["throughput"] = {
        "phases_s": phases,
        "documents": len(docs),
        "bytes": nbytes,
        "skipped": skipped,
        "reps": reps,
        "planner_s": totals["planner"],
        "floor_s": totals["floor"],
        **ratio,
        "per_document": {
            n: {"planner_s": med(v["planner"]), "floor_s": med(v["floor"])}
            for n, v in per_doc.items()
        },
    }
    return docs


# ---------------------------------------------------------------- row 2: CLI latency


def _package_copy(dest: Path) -> Path:
    """A copy of planner/ without __pycache__, so a run starts from known bytecode state."""
    shutil.copytree(
        ROOT / "planner", dest / "planner", ignore=shutil.ignore_patterns("__pycache__")
    )
    tpl = ROOT / "templates"
    if tpl.is_dir():
        shutil.copytree(tpl, dest / "templates")
    return dest


def cli_envs(tmp: Path) -> dict[str, dict]:
    """Two environments: bytecode cached as an install has it, and source only (no .pyc)."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONPYCACHEPREFIX")}
    warm = dict(base, PYTHONPATH=str(_package_copy(tmp / "pyc")))
    warm.pop("PYTHONDONTWRITEBYTECODE", None)
    cold = dict(base, PYTHONPATH=str(_package_copy(tmp / "src")), PYTHONDONTWRITEBYTECODE="1")
    return {"pyc": warm, "source": cold}


def _run(cmd: list[str], env: dict, cwd: Path) -> float:
    """Run cmd, stdout to /dev/null; return the child's CPU time (user + sys) in seconds."""
    with open(os.devnull, "wb") as devnull:
        p = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE, env=env, cwd=cwd)
        err = p.stderr.read()
        p.stderr.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {err.decode()[-500:]}")
    return usage.ru_utime + usage.ru_stime


class Child:
    """A command to time as a whole process; keeps the CPU time of each run."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path):
        self.cmd, self.env, self.cwd = cmd, env, cwd
        self.cpu: list[float] = []

    def __call__(self) -> None:
        self.cpu.append(_run(self.cmd, self.env, self.cwd))


def import_check(env: dict, cwd: Path) -> dict:
    """Modules the relayout path imports beyond the floor's, and any forbidden one."""

    def modules(cmd):
        p = subprocess.run(
            [sys.executable, "-X", "importtime", *cmd],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
        )
        out = {}
        for line in p.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
            if m:
                out[m.group(3)] = int(m.group(1))
        return out

    sample = str(CLI_SAMPLE)
    mine = modules(["-m", "planner", "relayout", sample])
    floor = modules(["-c", FLOOR_CODE, sample])
    extra = {k: v for k, v in mine.items() if k not in floor}
    forbidden = sorted(k for k in mine if k.split(".")[0] in FORBIDDEN)
    top = sorted(extra.items(), key=lambda kv: -kv[1])[:6]
    return {
        "modules": len(mine),
        "floor_modules": len(floor),
        "extra": len(extra),
        "extra_self_us": sum(extra.values()),
        "forbidden": forbidden,
        "top_extra": top,
    }


def row_cli(t: Table, res: dict, quick: bool, tmp: Path, envs: dict) -> dict:
    reps = 3 if quick else 31
    sample = str(CLI_SAMPLE)
    floor = [sys.executable, "-c", FLOOR_CODE, sample]
    bare = [sys.executable, "-c", "pass"]
    variants = [
        (
            "pyc",
            "python3 -m planner relayout, bytecode cached (as installed)",
            [sys.executable, "-m", "planner", "relayout", sample],
            envs["pyc"],
        ),
        (
            "source",
            "python3 -m planner relayout, no .pyc (PYTHONDONTWRITEBYTECODE=1)",
            [sys.executable, "-m", "planner", "relayout", sample],
            envs["source"],
        ),
    ]
    script = shutil.which("planner")
    if script:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        variants.append(
            (
                "script",
                f"installed console script {script} relayout",
                [script, "relayout", sample],
                env,
            )
        )
    out = {}
    for key, label, cmd, env in variants:
        for c in (
            cmd,
            floor,
            bare,
            cmd,
        ):  # warm-up: writes .pyc where allowed, fills the page cache
            _run(c, env, tmp)
        kids = {
            "planner": Child(cmd, env, tmp),
            "floor": Child(floor, env, tmp),
            "python": Child(bare, env, tmp),
        }
        times = interleaved(kids, reps, collect=False)
        ratio = pair_ratio(times["planner"], times["floor"])
        cpu = pair_ratio(kids["planner"].cpu, kids["floor"].cpu)
        tp, tf, tb = med(times["planner"]), med(times["floor"]), med(times["python"])
        t.add(
            "2",
            f"CLI latency: {label}",
            ms(tp),
            ms(tf),
            fmt_ratio(ratio),
            "≤ 1.5×",
            ratio["ratio"] <= 1.5,
        )
        out[key] = {
            "label": label,
            "cmd": cmd,
            "planner_s": times["planner"],
            "floor_s": times["floor"],
            "python_s": times["python"],
            **ratio,
            "cpu_planner_s": kids["planner"].cpu,
            "cpu_floor_s": kids["floor"].cpu,
            "cpu_ratio": cpu,
        }
        out[key]["note"] = (
            f"{label}: python3 -c pass {ms(tb)}, so planner adds {ms(tp - tf)} "
            f"to the floor's {ms(tf)}; in CPU time (user+sys of the child) "
            f"{ms(med(kids['planner'].cpu))} vs {ms(med(kids['floor'].cpu))}, {fmt_ratio(cpu)}"
        )
    imp = import_check(envs["pyc"], tmp)
    out["imports"] = imp
    t.notes.append(
        "Row 2: floor = `python3 -c '"
        + FLOOR_CODE
        + "' FILE` on samples/cloudstack-2nic.xml; "
        + "; ".join(v["note"] for k, v in out.items() if k != "imports")
        + f". Relayout path imports {imp['modules']} modules, {imp['extra']} more than the floor "
        f"(largest self times under -X importtime: "
        + ", ".join(f"{k} {v / 1000:.1f} ms" for k, v in imp["top_extra"])
        + "); "
        + (
            "forbidden imports: " + ", ".join(imp["forbidden"])
            if imp["forbidden"]
            else "no libvirt, jinja2, xmltodict or rich import"
        )
        + ("." if script else "; no `planner` console script on PATH, so it is not measured.")
    )
    res["cli"] = out
    return out


# ---------------------------------------------------------------- row 3: scale


def q35_supported() -> bool:
    try:
        relayout(gen.q35_domain(10))
        return True
    except UnsupportedError:
        return False


def _profile(fn, top: int = 6) -> list[str]:
    import cProfile
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(3):
        fn()
    pr.disable()
    st = pstats.Stats(pr)
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:top]  # by own time
    total = sum(v[2] for v in st.stats.values()) or 1
    out = []
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in rows:
        where = f"{Path(file).name}:{line}({func})" if file != "~" else func
        out.append(f"{where} {100 * tt / total:.0f}% ({nc // 3} calls)")
    return out


def row_scale(t: Table, res: dict, quick: bool) -> list[tuple[str, bytes]]:
    sizes = (10, 100) if quick else (10, 100, 1000)
    families = ["pc"] + (["q35"] if q35_supported() else [])
    reps = {10: 3, 100: 3, 1000: 3} if quick else {10: 101, 100: 41, 1000: 15}
    out: dict = {}
    docs = []
    for fam in families:
        make = gen.pc_domain if fam == "pc" else gen.q35_domain
        per: dict[int, dict] = {}
        for n in sizes:
            data = make(n).encode()
            docs.append((f"generated {fam} {n} devices", data))
            doc = Document.parse(data)
            ndev = len(plan_document(doc).topology.devices)
            times = interleaved(
                {
                    "plan": lambda d=doc: plan_document(d),  # topology read + plan, parsed doc
                    "relayout": lambda x=data: relayout(x),
                    "parse": lambda x=data: Document.parse(x),
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
            ok = tplan < 0.050 if n >= 1000 else None
            size = f"{len(data) / 1024:,.0f} KiB"
            t.add(
                "3",
                f"scale {fam}, {ndev} devices ({size}): topology + plan / relayout",
                f"{ms(tplan)} ({tplan / ndev * 1e6:.0f} µs/dev) / "
                f"{ms(trel)} ({trel / ndev * 1e6:.0f} µs/dev)",
                ms(tfl),
                fmt_ratio(r) + " relayout",
                "< 50 ms plan at 1,000" if n >= 1000 else "",
                ok,
            )
        if len(sizes) >= 2:
            a, b = sizes[-2], sizes[-1]
            grow = {}
            for k in ("plan", "relayout", "floor"):
                ta, tb = med(per[a][f"{k}_s"]), med(per[b][f"{k}_s"])
                na, nb = per[a]["devices"], per[b]["devices"]
                grow[k] = math.log(tb / ta) / math.log(nb / na)
            ok = grow["plan"] <= 1.2 and grow["relayout"] <= 1.2
            t.add(
                "3",
                f"scale {fam}: growth {a}→{b} devices, exponent k in time ∝ n^k (plan / relayout)",
                f"{grow['plan']:.2f} / {grow['relayout']:.2f}",
                f"{grow['floor']:.2f}",
                "",
                "≤ 1.2 (n log n)",
                ok,
            )
            per["growth_exponent"] = grow
            big = per[b]
            if med(big["plan_s"]) >= 0.050 or not ok:
                data = docs[-1][1]
                doc = Document.parse(data)
                per["profile_plan"] = _profile(lambda d=doc: plan_document(d))
                per["profile_relayout"] = _profile(lambda x=data: relayout(x))
                t.notes.append(
                    f"Row 3 ({fam}, {big['devices']} devices) cProfile own time, topology + plan: "
                    + "; ".join(per["profile_plan"])
                    + ". Whole relayout: "
                    + "; ".join(per["profile_relayout"])
                    + "."
                )
        out[fam] = per
    t.notes.append(
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
    res["scale"] = out
    return docs


# ---------------------------------------------------------------- row 4: hot-plug


HP_DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <interface type='user'>
      <mac address='52:54:00:be:{tag}:01'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
    <interface type='user'>
      <mac address='52:54:00:be:{tag}:02'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>
  </devices>
</domain>
"""
PY_ATTACH = (
    "import sys, libvirt; d = libvirt.open(sys.argv[1]).lookupByName(sys.argv[2]); "
    "d.attachDeviceFlags(open(sys.argv[3]).read(), libvirt.VIR_DOMAIN_AFFECT_LIVE | "
    "libvirt.VIR_DOMAIN_AFFECT_CONFIG)"
)
HP_NIC = (
    "<interface type='user'><mac address='52:54:00:be:{tag}:03'/>"
    "<model type='virtio'/></interface>\n"
)


def _qemu_ticks(name: str) -> int | None:
    try:
        pid = Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def _settle(names: list[str], timeout: float = 8.0) -> None:
    """Wait until the guests' firmware has stopped using the CPU (no OS: it then idles)."""
    start = time.monotonic()
    last = [_qemu_ticks(n) for n in names]
    if None in last:
        time.sleep(2.0)
        return
    quiet = 0
    while time.monotonic() - start < timeout and quiet < 2:
        time.sleep(0.25)
        now = [_qemu_ticks(n) for n in names]
        if None in now:
            return
        quiet = quiet + 1 if max(b - a for a, b in zip(last, now)) <= 2 else 0
        last = now


def _hotplug_ops(doms, files, uri: str, env: dict, tmp: Path, virsh: str | None, cpu: dict):
    """The timed operations of one round, each on its own fresh domain.

    Whole-process variants append the child's CPU time to cpu[variant].
    """
    import libvirt

    from planner.attach import hotplug
    from planner.virt import domain_xmls

    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    planner_cli = [sys.executable, "-m", "planner", "hotplug", "-c", uri]
    name = {v: d.name() for v, d in doms.items()}
    spare_nic = HP_NIC.format(tag="ff")
    return {
        "cli": lambda: cpu["cli"].append(
            _run([*planner_cli, name["cli"], str(files["cli"][0])], env, tmp)
        ),
        "cli-dry-run": lambda: _run(
            [*planner_cli, "--dry-run", name["cli"], str(files["cli"][0])], env, tmp
        ),
        "virsh": lambda: cpu["virsh"].append(
            _run(
                [
                    virsh or "virsh",
                    "-c",
                    uri,
                    "attach-device",
                    name.get("virsh", "-"),
                    str(files.get("virsh", files["cli"])[1]),
                    "--live",
                    "--config",
                ],
                env,
                tmp,
            )
        ),
        "pyscript": lambda: cpu["pyscript"].append(
            _run(
                [sys.executable, "-c", PY_ATTACH, uri, name["pyscript"], str(files["pyscript"][1])],
                env,
                tmp,
            )
        ),
        "inproc": lambda: hotplug(doms["inproc"], files["inproc"][0].read_text()),
        "libvirt": lambda: doms["libvirt"].attachDeviceFlags(
            files["libvirt"][1].read_text(), flags
        ),
        "inproc-dry-run": lambda: hotplug(doms["inproc"], spare_nic, dry_run=True),
        "reads": lambda: domain_xmls(doms["inproc"]),
    }


def row_hotplug(t: Table, res: dict, quick: bool, tmp: Path, uri: str, envs: dict) -> None:
    try:
        import libvirt

        libvirt.registerErrorHandler(lambda *_: None, None)
        conn = libvirt.open(uri)
    except Exception as exc:  # noqa: BLE001 - ImportError or libvirtError: no daemon
        t.add(4, "hot-plug: skipped", "-", "-", "-", "≤ 1.5×", None)
        t.notes.append(
            f"Row 4 skipped: libvirt unavailable at {uri} ({' '.join(str(exc).split())})."
        )
        res["hotplug"] = {"skipped": str(exc)}
        return
    from planner.attach import hotplug
    from planner.virt import domain_xmls

    virsh = shutil.which("virsh")
    env = dict(envs["pyc"], LIBVIRT_DEFAULT_URI=uri)
    rounds = 1 if quick else 7
    run_id = uuid.uuid4().hex[:6]
    variants = ["cli", "virsh", "pyscript", "inproc", "libvirt"]
    if not virsh:
        variants.remove("virsh")
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    dry, reads = [], []
    checks: list[str] = []
    made: list = []

    def cleanup() -> None:
        for dom in made:
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        made.clear()

    try:
        for r in range(rounds):
            doms, files = {}, {}
            for i, v in enumerate(variants):
                name = f"planner-bench-{run_id}-{r}-{v}"
                tag = f"{(r * 8 + i) % 256:02x}"
                dom = conn.defineXML(relayout(HP_DOMAIN.format(name=name, tag=tag)).xml)
                made.append(dom)
                dom.create()
                doms[v] = dom
                nic = HP_NIC.format(tag=tag)
                planned = hotplug(dom, nic, dry_run=True)  # untimed: the address planner picks
                files[v] = (tmp / f"{name}.xml", tmp / f"{name}-addr.xml", planned.address)
                files[v][0].write_text(nic)
                files[v][1].write_text(planned.xml)
            _settle([d.name() for d in doms.values()])
            ops = _hotplug_ops(doms, files, uri, env, tmp, virsh, cpu)
            if r == 0:  # warm-up of the CLI path: bytecode, libvirt-python import
                ops["cli-dry-run"]()
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
                times[v].append(_timed(ops[v]))
            for v, dom in doms.items():  # each NIC landed where planner said, live and config
                want = files[v][2]
                for xml in domain_xmls(dom).values():
                    addrs = etree.fromstring(xml.encode()).iterfind("devices/interface/address")
                    if not any(
                        int(a.get("slot"), 16) == want.slot and int(a.get("bus"), 16) == want.bus
                        for a in addrs
                    ):
                        checks.append(f"round {r} {v}: no NIC at {want}")
            # In-process overhead: XMLDesc reads + planning, nothing attached (dry run).
            for _ in range(3 if quick else 10):
                got = interleaved({"dry": ops["inproc-dry-run"], "reads": ops["reads"]}, 2, False)
                dry += got["dry"]
                reads += got["reads"]
            cleanup()
    finally:
        cleanup()
        conn.close()
    out: dict = {
        "rounds": rounds,
        **{f"{v}_s": x for v, x in times.items()},
        **{f"cpu_{v}_s": x for v, x in cpu.items() if x},
        "dry_run_s": dry,
        "xmldesc_reads_s": reads,
        "address_check_failures": checks,
    }
    if virsh:
        r = pair_ratio(times["cli"], times["virsh"])
        out["cli_vs_virsh"] = r
        t.add(
            4,
            f"hot-plug, whole process: planner hotplug vs virsh attach-device --live --config "
            f"({rounds} fresh domains each)",
            ms(med(times["cli"])),
            ms(med(times["virsh"])),
            fmt_ratio(r),
            "≤ 1.5×",
            r["ratio"] <= 1.5,
        )
    r = pair_ratio(times["cli"], times["pyscript"])
    out["cli_vs_pyscript"] = r
    if virsh:
        out["pyscript_vs_virsh"] = pair_ratio(times["pyscript"], times["virsh"])
    t.add(
        4,
        "hot-plug, whole process: planner hotplug vs a 1-line python3 libvirt script making "
        "the same attachDeviceFlags call",
        ms(med(times["cli"])),
        ms(med(times["pyscript"])),
        fmt_ratio(r),
        "",
        None,
    )
    r = pair_ratio(times["inproc"], times["libvirt"])
    out["inproc_vs_attach"] = r
    t.add(
        4,
        "hot-plug, in process: planner.hotplug() vs dom.attachDeviceFlags() at the same address",
        ms(med(times["inproc"])),
        ms(med(times["libvirt"])),
        fmt_ratio(r),
        "",
        None,
    )
    td, tr = med(dry), med(reads)
    t.add(
        4,
        "hot-plug overhead in process: dry run (lock, 2× XMLDesc, parse, plan) vs nothing "
        "/ of which XMLDesc",
        f"{ms(td)} / {ms(tr)}",
        "0",
        f"+{ms(td)}",
        "< 20 ms",
        td < 0.020,
    )
    t.notes.append(
        "Row 4: TCG domains (type='qemu', 128 MiB, ACPI, 2 user-mode virtio NICs, no OS), "
        f"relayouted, defined and started fresh for every attach, {rounds} round(s), the order of "
        "the variants rotating each round; the NIC is `<interface type='user'>` without an address "
        "for planner and with the address planner picks (from a dry run) for virsh, the script and "
        "attachDeviceFlags; after each round every "
        "NIC is checked at that address in the live and the persistent XML"
        + (f" (failures: {'; '.join(checks)})" if checks else " (all found)")
        + (
            f". The one-line python3 script alone is {fmt_ratio(out['pyscript_vs_virsh'])} virsh"
            if virsh
            else ""
        )
        + ". Child CPU time (user+sys), medians: "
        + ", ".join(f"{v} {ms(med(x))}" for v, x in cpu.items() if x)
        + f". The dry run's {ms(td)} split: libvirt's two XMLDesc calls and isActive/isPersistent "
        f"{ms(tr)}, planner {ms(max(td - tr, 0))}."
        + ("" if virsh else " virsh is not installed: the whole-process comparison is skipped.")
    )
    res["hotplug"] = out


# ---------------------------------------------------------------- row 5: memory

RSS_CODE = r"""
import gc, resource, sys
sys.path.insert(0, sys.argv[3])
import lxml.etree as e
from planner.relayout import relayout
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


def row_memory(t: Table, res: dict, quick: bool, docs: list[tuple[str, bytes]], tmp: Path) -> None:
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
    t.add(
        5,
        f"peak memory, relayout of the largest document ({name}, {len(data) / 1024:,.0f} KiB): "
        "tracemalloc peak (Python heap)",
        kib(pm),
        kib(pf),
        f"{pm / pf:.1f}×",
        "",
        None,
    )
    if rss["planner"] and rss["floor"]:
        rp, rf = med(rss["planner"]), med(rss["floor"])
        t.add(
            5,
            "peak memory, same document: growth of the process's max RSS (includes libxml2)",
            kib(rp),
            kib(rf),
            f"{rp / rf:.1f}×" if rf else "-",
            "",
            None,
        )
    t.notes.append(
        "Row 5: tracemalloc sees Python allocations only, so its floor misses libxml2's tree "
        "(malloc'd in C); the max-RSS growth (one fresh process per figure, measured after "
        "imports) counts both."
    )
    res["memory"] = {
        "document": name,
        "bytes": len(data),
        "tracemalloc_planner": mine,
        "tracemalloc_floor": floor,
        "rss_growth": rss,
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a tiny run for a smoke test: few repeats, small corpus",
    )
    ap.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    ap.add_argument("--rows", default="1,2,3,4,5", help="rows to run, e.g. 1,3 (default all)")
    ap.add_argument(
        "--uri",
        default=os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system"),
        help="libvirt URI for row 4 (default qemu:///system)",
    )
    args = ap.parse_args(argv)
    rows = {int(x) for x in args.rows.split(",") if x.strip()}
    info = machine_info(args.uri)
    print(
        "planner benchmarks"
        + (" (--quick: smoke run, figures not meaningful)" if args.quick else "")
    )
    print(render_info(info), flush=True)
    t = Table()
    res: dict = {"quick": args.quick, "machine": info}
    docs: list[tuple[str, bytes]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="planner-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        envs = cli_envs(tmp) if rows & {2, 4} else {}
        if 1 in rows:
            print("row 1: relayout throughput ...", file=sys.stderr, flush=True)
            docs += row_throughput(t, res, args.quick)
        if 2 in rows:
            print("row 2: CLI latency ...", file=sys.stderr, flush=True)
            row_cli(t, res, args.quick, tmp, envs)
        if 3 in rows or 5 in rows:
            print("row 3: scale ...", file=sys.stderr, flush=True)
            scale_table = t if 3 in rows else Table()
            docs += row_scale(scale_table, res, args.quick)
        if 4 in rows:
            print("row 4: hot-plug ...", file=sys.stderr, flush=True)
            (tmp / "hp").mkdir()
            os.chmod(tmp / "hp", 0o755)
            row_hotplug(t, res, args.quick, tmp / "hp", args.uri, envs)
        if 5 in rows:
            print("row 5: memory ...", file=sys.stderr, flush=True)
            row_memory(t, res, args.quick, docs, tmp)
    info["loadavg_end"] = os.getloadavg()
    info["duration_s"] = round(time.monotonic() - started, 1)
    print()
    print(t.render())
    print()
    for note in t.notes:
        print(f"- {note}")
    print(
        f"- Run took {info['duration_s']:.0f} s; load average at end "
        f"{'/'.join(f'{x:.2f}' for x in info['loadavg_end'])}."
    )
    res["table"] = t.rows
    res["notes"] = t.notes
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
