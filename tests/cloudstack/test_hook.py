"""The CloudStack hook, run as the KVM agent runs it (Groovy, GroovyScriptEngine, transform).

Three properties, each over the real script in samples/cloudstack/, driven by
``agent_hook.groovy`` (an emulation of the agent's LibvirtKvmAgentHook):

- it is ``planner relayout -``: the XML the agent would start is planner's output byte for
  byte, for every sample, every corpus file (in CI; a local run takes a fixed sample of the
  corpus, see ``hook_corpus``) and CloudStack-style domains (system and user VMs, single and
  double quotes, larger than a pipe buffer, extra arguments), and the XML unchanged with one
  warning where planner refuses the input;
- it fails open: planner missing, failing, hanging or silent, or a malformed domain, each
  leaves the XML unchanged with exactly one warning, and no process behind;
- it is stable across restarts: the same XML gives the same output, and CloudStack's
  regenerated XML with one more NIC keeps every device where it was.

All cases of a property run in one JVM, as many VM starts in one agent would, in the
background while the other tests run (tests/background.py).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from background import job
from cli_runner import Completed, run_main
from lxml import etree

from .hook import (
    HOOK_LOGGER,
    IN_CI,
    ROOT,
    SYSTEM_PATH,
    Case,
    Outcome,
    collect,
    install_hook,
    planner_command,
    start_agent,
    vm_xml,
)

SAMPLES = sorted((ROOT / "samples").glob("*.xml"))
CORPUS = ROOT / "tests" / "corpus"
CORPUS_FILES = sorted(CORPUS.rglob("*.xml")) if CORPUS.is_dir() else []
SYSTEM_VM_PATTERN = r"[rsv]-\d+-VM"
MACS = [f"02:00:5d:8e:00:{i:02x}" for i in range(1, 9)]


@dataclass(frozen=True)
class Expect:
    """One case of the equality property: the XML, and the arguments the hook passes."""

    xml: bytes
    args: tuple[str, ...] = ()


def cloudstack_cases() -> dict[str, Expect]:
    dq = {"quote": '"'}
    big = "x" * 200_000  # a domain far larger than a 64 KiB pipe buffer
    return {
        "cloudstack/i-2-42-VM": Expect(vm_xml("i-2-42-VM", MACS[:2], **dq).encode()),
        "cloudstack/i-2-42-VM-single-quotes": Expect(vm_xml("i-2-42-VM", MACS[:2]).encode()),
        "cloudstack/s-1-VM": Expect(vm_xml("s-1-VM", MACS[:4], **dq).encode()),
        "cloudstack/v-2-VM": Expect(vm_xml("v-2-VM", MACS[:3], **dq).encode()),
        "cloudstack/r-3-VM": Expect(vm_xml("r-3-VM", MACS[:5], **dq).encode()),
        "cloudstack/i-2-43-VM-q35": Expect(
            vm_xml("i-2-43-VM", MACS[:2], machine="pc-q35-7.2", **dq).encode()
        ),
        "cloudstack/i-2-44-VM-200KiB": Expect(
            vm_xml("i-2-44-VM", MACS[:2], description=big, **dq).encode()
        ),
        "cloudstack/i-2-45-VM-utf8": Expect(
            vm_xml("i-2-45-VM", MACS[:2], description="Ubuntu 22.04 – Zürich ☃", **dq).encode()
        ),
        "cloudstack/i-2-42-VM-acpi-index": Expect(
            vm_xml("i-2-42-VM", MACS[:2], **dq).encode(), ("--acpi-index",)
        ),
        "cloudstack/i-2-42-VM-nic-slots-4": Expect(
            vm_xml("i-2-42-VM", MACS[:2], **dq).encode(), ("--nic-slots", "4")
        ),
    }


@functools.cache
def reference(xml: bytes, args: tuple[str, ...] = ()) -> Completed:
    """planner's own ``relayout ARGS -`` of ``xml``, in process: output, status, error line.

    That the console script and ``python -m planner`` are ``planner.cli.main`` is
    tests/cli/test_smoke.py's to prove.
    """
    return run_main("relayout", *args, "-", stdin=xml)


# More than plain ASCII markup: a non-ASCII byte, an entity or character reference, a
# comment, CDATA, a processing instruction or XML declaration, a CR or a tab.
_SPECIAL = re.compile(rb"[^\x0a\x20-\x7e]|&|<!--|<!\[CDATA\[|<\?")


def hook_corpus(files: list[Path]) -> list[Path]:
    """The corpus files that go through the hook: every one in CI, a fixed sample locally.

    Through the hook a corpus file checks the hook's plumbing (the bytes planner prints, or
    the XML back with planner's error line), not planner's layout, which tests/test_corpus.py
    checks for every file in process; and each costs a planner process and a compilation of
    the script, about 0.15 s of CPU. So a local run (``CI`` unset) takes every file planner
    refuses, the largest file of each folder, every file with more than plain ASCII markup
    (``_SPECIAL``), and every 10th file in sorted order: 16 of the 130 today. CI
    (``CI=true``) takes every file.
    """
    if IN_CI:
        return files
    chosen = set(files[::10])
    for folder in {p.parent for p in files}:
        chosen.add(max((p for p in files if p.parent == folder), key=lambda p: p.stat().st_size))
    for p in files:
        xml = p.read_bytes()
        if _SPECIAL.search(xml) or reference(xml).returncode != 0:
            chosen.add(p)
    return [p for p in files if p in chosen]


HOOK_CORPUS = hook_corpus(CORPUS_FILES)


def equality_cases() -> dict[str, Expect]:
    cases = {f"samples/{p.name}": Expect(p.read_bytes()) for p in SAMPLES}
    cases.update({f"corpus/{p.relative_to(CORPUS)}": Expect(p.read_bytes()) for p in HOOK_CORPUS})
    cases.update(cloudstack_cases())
    return cases


EQUALITY = equality_cases()
STABILITY = {
    "first start": vm_xml("i-2-42-VM", MACS[:2], quote='"'),
    "second start": vm_xml("i-2-42-VM", MACS[:2], quote='"'),
    "one more NIC": vm_xml("i-2-42-VM", MACS[:3], quote='"'),
    "two more NICs": vm_xml("i-2-42-VM", MACS[:4], quote='"'),
}
SKIPPED = {name: vm_xml(name, MACS[:3], quote='"') for name in ("s-1-VM", "v-2-VM", "r-3-VM")}
SKIPPED["i-2-42-VM"] = vm_xml("i-2-42-VM", MACS[:2], quote='"')


@dataclass
class Run:
    equality: dict[str, tuple[Outcome, Completed]]
    stability: dict[str, Outcome]
    skipped: dict[str, Outcome]

    def outcomes(self) -> list[Outcome]:
        return (
            [o for o, _ in self.equality.values()]
            + list(self.stability.values())
            + list(self.skipped.values())
        )


@job("run")
def run_happy_paths(tmp_path_factory, env: dict[str, str]) -> list[Outcome]:
    """Every happy-path case through the hook in one JVM: equality, stability, skipped.

    The hook's settings are the defaults (``planner`` from the agent's PATH) but for the
    extra arguments and the skip pattern, which get hook directories of their own.
    """
    work = tmp_path_factory.mktemp("cloudstack-hook")
    planner = planner_command(work / "bin")
    hook_dirs: dict[tuple[str, ...], Path] = {}

    def hook_dir(args: tuple[str, ...]) -> Path:
        if args not in hook_dirs:
            hook_dirs[args] = install_hook(work / f"hooks-{len(hook_dirs)}", args=args).parent
        return hook_dirs[args]

    skip_dir = install_hook(work / "hooks-skip", skip=SYSTEM_VM_PATTERN).parent
    cases = [Case(k, e.xml, hook_dir(e.args)) for k, e in EQUALITY.items()]
    cases += [Case(k, x.encode(), hook_dir(())) for k, x in STABILITY.items()]
    cases += [Case(k, x.encode(), skip_dir) for k, x in SKIPPED.items()]
    return collect(*start_agent(cases, work / "agent", f"{planner.parent}:{SYSTEM_PATH}", env))


@pytest.fixture(scope="module")
def run(background_jobs) -> Run:
    """The happy paths through the hook, and planner's own output for each.

    planner's own output, status and error line come from ``planner.cli.main`` in this
    process (the main thread: it swaps sys.stdout), while the agent runs.
    """
    references = {k: reference(e.xml, e.args) for k, e in EQUALITY.items()}
    outcomes = background_jobs.result(run_happy_paths)
    n, m = len(EQUALITY), len(STABILITY)
    return Run(
        equality={k: (o, references[k]) for k, o in zip(EQUALITY, outcomes[:n])},
        stability=dict(zip(STABILITY, outcomes[n : n + m])),
        skipped=dict(zip(SKIPPED, outcomes[n + m :])),
    )


# --- the output is planner's -----------------------------------------------------------


def test_the_corpus_is_there() -> None:
    if not CORPUS_FILES:
        message = f"no corpus at {CORPUS} (a checkout has it in tests/corpus/)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("key", list(EQUALITY))
def test_output_is_planner_relayout(run: Run, key: str) -> None:
    outcome, reference = run.equality[key]
    xml = EQUALITY[key].xml
    assert outcome.output is not None, outcome.log
    assert outcome.level("ERROR") == []
    if reference.returncode == 0:
        assert reference.stdout, "planner printed nothing"
        assert outcome.output == reference.stdout
        assert outcome.warns == []
        (info,) = outcome.level("INFO")
        assert "laid out by planner" in info
    else:
        # planner refuses this domain (e.g. a machine it does not support): fail open.
        assert outcome.output == xml
        (warn,) = outcome.warns
        (error_line,) = reference.stderr.decode().splitlines()
        reason = f"planner exited {reference.returncode}: {error_line}"
        assert warn.endswith(f"XML left unchanged: {reason}")
    assert all(r.logger == HOOK_LOGGER for r in outcome.log), outcome.log


def test_most_of_the_corpus_is_laid_out(run: Run) -> None:
    """Guard against a hook that fails open on everything and still passes the test above."""
    laid_out = [k for k, (o, _) in run.equality.items() if o.output != EQUALITY[k].xml]
    refused = [k for k, (_, ref) in run.equality.items() if ref.returncode != 0]
    print(f"\nlaid out: {len(laid_out)}, refused by planner (XML unchanged): {len(refused)}")
    assert len(laid_out) + len(refused) == len(EQUALITY)
    assert len(laid_out) >= len(SAMPLES) + len(cloudstack_cases()) + len(HOOK_CORPUS) // 2
    for key in cloudstack_cases():
        outcome, reference = run.equality[key]
        assert reference.returncode == 0, reference.stderr
        assert b"<planner:layout" in outcome.output


def test_the_hook_logs_plain_strings(run: Run) -> None:
    """log4j gets java.lang.String, never a GString."""
    classes = {r.message_class for o in run.outcomes() for r in o.log}
    assert classes == {"java.lang.String"}


def test_extra_arguments_reach_planner(run: Run) -> None:
    acpi, _ = run.equality["cloudstack/i-2-42-VM-acpi-index"]
    plain, _ = run.equality["cloudstack/i-2-42-VM"]
    assert b'<acpi index="1"/>' in acpi.output and b"<acpi index=" not in plain.output
    four, _ = run.equality["cloudstack/i-2-42-VM-nic-slots-4"]
    assert b'slots="4"' in four.output


def test_skip_pattern_leaves_system_vms_alone(run: Run) -> None:
    for name, outcome in run.skipped.items():
        assert outcome.warns == []
        (info,) = outcome.level("INFO")
        if name == "i-2-42-VM":
            assert b"<planner:layout" in outcome.output
            assert "laid out by planner" in info
        else:
            assert outcome.output == SKIPPED[name].encode()
            assert info == f"planner hook: VM {name}: matches skipVmNames; XML left unchanged"


# --- stable across restarts ------------------------------------------------------------


def pci_addresses(xml: bytes) -> dict[tuple[str, ...], tuple[int, int, int]]:
    """{device key: (bus, slot, function)} of every device with a PCI address."""
    out = {}
    for dev in etree.fromstring(xml).find("devices"):
        addr = dev.find("address")
        if not isinstance(dev.tag, str) or addr is None or addr.get("type") != "pci":
            continue
        if dev.tag == "interface":
            key = (dev.tag, dev.find("mac").get("address"))
        elif dev.tag == "disk":
            key = (dev.tag, dev.find("target").get("dev"))
        elif dev.tag == "controller":
            key = (dev.tag, dev.get("type"), dev.get("index"))
        else:
            key = (dev.tag,)
        assert key not in out, key
        out[key] = tuple(int(addr.get(k), 16) for k in ("bus", "slot", "function"))
    return out


def test_same_xml_same_output(run: Run) -> None:
    first, second = run.stability["first start"], run.stability["second start"]
    assert first.output == second.output
    assert b"<planner:layout" in first.output


@pytest.mark.parametrize("more", ["one more NIC", "two more NICs"])
def test_regenerated_xml_keeps_every_device(run: Run, more: str) -> None:
    before = pci_addresses(run.stability["first start"].output)
    after = pci_addresses(run.stability[more].output)
    for key, address in before.items():
        assert after[key] == address, key
    nic_slots = [after[("interface", mac)] for mac in MACS[: len(after) - len(before) + 2]]
    assert nic_slots == [(0, slot, 0) for slot in range(3, 3 + len(nic_slots))]
    print(f"\n{more}: NIC slots {[s for _, s, _ in nic_slots]}, others unchanged")


# --- fail-open -------------------------------------------------------------------------

FAKE_HANGS = """#!/bin/sh
echo $$ >> {pids}
sleep 300 &
echo $! >> {pids}
echo "planner: still thinking" >&2
wait
"""
FAKE_FAILS = """#!/bin/sh
echo $$ >> {pids}
cat >/dev/null
echo "planner: error: something the test made up" >&2
exit 2
"""
FAKE_SILENT = """#!/bin/sh
echo $$ >> {pids}
cat >/dev/null
exit 0
"""
MALFORMED = "<domain type='kvm'><name>i-2-99-VM</name><devices><interface type='bridge'>"


@dataclass(frozen=True)
class FailCase:
    xml: str
    fake: str | None  # a fake planner's script, or None
    planner: str = ""  # the setting, when not a fake
    expect: str = ""  # the warning ends with this
    timeout: float = 20
    vm: str = "i-2-42-VM"


FAIL_CASES = {
    "planner missing from PATH": FailCase(
        vm_xml("i-2-42-VM", MACS[:2]),
        None,
        planner="planner",
        expect=': cannot run planner: Cannot run program "planner": error=2, '
        "No such file or directory",
    ),
    "planner exits 2": FailCase(
        vm_xml("i-2-42-VM", MACS[:2]),
        FAKE_FAILS,
        expect=": planner exited 2: planner: error: something the test made up",
    ),
    "planner hangs past the timeout": FailCase(
        vm_xml("i-2-44-VM", MACS[:2], description="x" * 200_000),  # stdin blocks too
        FAKE_HANGS,
        timeout=1.5,
        vm="i-2-44-VM",
        expect=": planner did not finish within 1.5 s; killed 2 processes: planner: still thinking",
    ),
    "planner prints nothing": FailCase(
        vm_xml("i-2-42-VM", MACS[:2]), FAKE_SILENT, expect=": planner printed nothing"
    ),
    "malformed XML": FailCase(MALFORMED, None, planner="REAL", vm="i-2-99-VM"),
}


def _alive(pid: int) -> bool:
    """Running or sleeping (a zombie is dead, it only waits for its parent to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and _alive(int(proc.name)):
                found.append(f"{proc.name}: {cmdline}")
    return found


@job("failed", "fallbacks")
def run_without_planner(
    tmp_path_factory, env: dict[str, str]
) -> tuple[dict[str, tuple[Outcome, list[int]]], Fallbacks]:
    """Every fail-open case, and the driver's fallbacks, in one JVM whose PATH has no planner."""
    work = tmp_path_factory.mktemp("cloudstack-fail-open")
    real = planner_command(work / "real-bin")
    cases, pid_files = [], []
    for i, (key, case) in enumerate(FAIL_CASES.items()):
        d = work / f"fail-{i}"
        d.mkdir()
        pids = d / "pids"
        planner = case.planner
        if case.fake is not None:
            fake = d / "fake-planner"
            fake.write_text(case.fake.format(pids=pids))
            fake.chmod(0o755)
            planner = str(fake)
        elif planner == "REAL":
            planner = str(real)
        hook_dir = install_hook(d / "hooks", planner=planner, timeout=case.timeout).parent
        cases.append(Case(key, case.xml.encode(), hook_dir))
        pid_files.append(pids)
    fallback_dirs = fallback_hooks(work / "fallbacks")
    cases += [Case(k, FALLBACK_XML, d) for k, d in fallback_dirs.items()]
    empty_bin = work / "empty-bin"
    empty_bin.mkdir()
    outcomes = collect(*start_agent(cases, work / "agent", f"{empty_bin}:{SYSTEM_PATH}", env))
    leftovers = _processes_mentioning(str(work))
    assert leftovers == [], f"processes left behind: {leftovers}"
    result = {}
    for key, outcome, pids in zip(FAIL_CASES, outcomes, pid_files):
        started = [int(p) for p in pids.read_text().split()] if pids.exists() else []
        result[key] = (outcome, started)
    return result, (fallback_dirs, outcomes[len(FAIL_CASES) :])


@pytest.fixture(scope="module")
def failed(background_jobs) -> dict[str, tuple[Outcome, list[int]]]:
    return background_jobs.result(run_without_planner)[0]


@pytest.mark.parametrize("key", list(FAIL_CASES))
def test_fails_open(failed, key: str) -> None:
    outcome, started = failed[key]
    case = FAIL_CASES[key]
    print(f"\n{key}: {outcome.log}")
    assert outcome.output == case.xml.encode()
    (warn,) = outcome.warns
    assert [r.level for r in outcome.log] == ["WARN"]
    assert warn.startswith(f"planner hook: VM {case.vm}: XML left unchanged: "), warn
    assert warn.endswith(case.expect), warn
    if key == "malformed XML":
        assert ": planner exited 2: planner: error: " in warn
    # Nothing the hook started is still running.
    assert [pid for pid in started if _alive(pid)] == []
    if case.fake is not None:
        assert started, "the fake planner did not run"


# --- the driver is the agent -----------------------------------------------------------

NULL_HOOK = """class NullHook {
    def transform(logger, xml) { return null }
}
new NullHook()
"""
NO_METHOD_HOOK = """class OtherHook {
    def other(logger, xml) { return xml }
}
new OtherHook()
"""


FALLBACK_XML = vm_xml("i-2-42-VM", MACS[:2]).encode()
Fallbacks = tuple[dict[str, Path], list[Outcome]]


def fallback_hooks(where: Path) -> dict[str, Path]:
    """Hook directories with a missing script, one returning null, one without the method."""
    dirs = {}
    for key, text in {"missing": None, "null": NULL_HOOK, "no method": NO_METHOD_HOOK}.items():
        d = where / key.replace(" ", "-")
        d.mkdir(parents=True)
        if text is not None:
            (d / "libvirt-vm-xml-transformer.groovy").write_text(text)
        dirs[key] = d
    return dirs


@pytest.fixture(scope="module")
def fallbacks(background_jobs) -> Fallbacks:
    """The fallback cases, run in the fail-open cases' JVM (no planner on its PATH)."""
    return background_jobs.result(run_without_planner)[1]


def test_the_driver_falls_back_as_the_agent_does(fallbacks) -> None:
    """LibvirtKvmAgentHook and LibvirtStartCommandWrapper keep the XML when the script is
    missing, returns null or lacks the method; so does the driver."""
    xml = FALLBACK_XML
    dirs, outcomes = fallbacks
    logs = {k: [(r.logger, r.level, r.message) for r in o.log] for k, o in zip(dirs, outcomes)}
    print(f"\n{logs}")
    assert [o.output for o in outcomes] == [xml] * 3
    script = dirs["missing"] / "libvirt-vm-xml-transformer.groovy"
    assert logs["missing"] == [
        (
            HOOK_LOGGER,
            "WARN",
            f"Groovy script '{script}' is not available. Transformations will not be applied.",
        ),
        (
            HOOK_LOGGER,
            "WARN",
            "Groovy scripting engine is not initialized. Data transformation skipped.",
        ),
    ]
    assert logs["null"] == [
        (
            "LibvirtStartCommandWrapper",
            "WARN",
            "Libvirt XML transformer returned NULL, will use XML specification unchanged.",
        )
    ]
    # Groovy 2.4 throws a plain MissingMethodException here, not the MissingMethodExceptionNoStack
    # that handle() catches: the start path's catch (Exception) keeps the XML instead.
    ((logger, level, message),) = logs["no method"]
    assert (logger, level) == ("LibvirtStartCommandWrapper", "WARN")
    assert message.startswith(
        "Exception occurred when handling LibVirt XML transformer hook: {} "
        "groovy.lang.MissingMethodException: No signature of method: OtherHook.transform()"
    )
