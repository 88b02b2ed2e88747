"""Running the CloudStack hook as the KVM agent does, and CloudStack-style domain XML.

``run_agent`` feeds many cases to ``agent_hook.groovy`` in one JVM: for each, a fresh
GroovyScriptEngine rooted at the case's hook directory runs the script and calls
``transform(logger, xml)`` with a recording logger, as the agent's start path does.
``install_hook`` copies the shipped script into a hook directory with its settings
edited, as an operator would. ``vm_xml`` writes a domain the way CloudStack's
``LibvirtVMDef`` does: NICs first, no PCI addresses.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "samples" / "cloudstack" / "libvirt-vm-xml-transformer.groovy"
SCRIPT_NAME = SCRIPT.name  # the agent's default agent.hooks.libvirt_vm_xml_transformer.script
METHOD = "transform"  # ... and agent.hooks.libvirt_vm_xml_transformer.method
DRIVER = Path(__file__).with_name("agent_hook.groovy")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # no planner there: the tests put one first
HOOK_LOGGER = "LibvirtKvmAgentHook"
# For the driver's JVM only: the C1 compiler alone and the serial collector make a short-lived
# JVM that compiles one script per case (a GroovyScriptEngine per VM start, as the agent has)
# about three times cheaper; neither changes what the Groovy code does. JAVA_OPTS of the
# environment come after, so they win.
DRIVER_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


# --- groovy ----------------------------------------------------------------------------


def groovy() -> str:
    """The ``groovy`` launcher, which tests/host-setup.sh installs (a fixture never runs apt).

    Without it a developer's run skips, but CI (``CI=true``) fails: never pass by skipping.
    """
    found = shutil.which("groovy")
    if found is None:
        why = "groovy is not installed: run `bash tests/host-setup.sh` (it installs it)"
        if IN_CI:
            pytest.fail(f"{why}: CI must run the CloudStack hook")
        pytest.skip(why)
    return found


# --- the hook, installed ---------------------------------------------------------------


def planner_command(bin_dir: Path) -> Path:
    """A ``planner`` in ``bin_dir`` that runs this checkout's planner, as pip's script would.

    As from an installed planner (pip compiles it), the modules run from bytecode: the
    ``.pyc`` files go to ``bin_dir/pycache`` (``PYTHONPYCACHEPREFIX``), never into the
    checkout, even where ``PYTHONDONTWRITEBYTECODE`` is set. Without them every VM start
    would compile planner afresh, a quarter of each run of ``planner relayout -``.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "planner"
    pycache = bin_dir / "pycache"
    path.write_text(
        "#!/bin/sh\nunset PYTHONDONTWRITEBYTECODE\n"
        f"PYTHONPYCACHEPREFIX='{pycache}' PYTHONPATH='{ROOT}' "  # noqa: B907
        f"exec '{sys.executable}' -m planner \"$@\"\n"  # noqa: B907
    )
    path.chmod(0o755)
    return path


def _groovy_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def install_hook(
    hook_dir: Path,
    planner: str = "planner",
    args: tuple[str, ...] = (),
    timeout: float = 20,
    skip: str = "",
) -> Path:
    """Copy the shipped script into ``hook_dir``, its settings edited; returns the file."""
    text = SCRIPT.read_text()
    settings = {
        "plannerCommand": _groovy_string(planner),
        "plannerArgs": "[" + ", ".join(_groovy_string(a) for a in args) + "]",
        "timeoutSeconds": repr(timeout),
        "skipVmNames": _groovy_string(skip),
    }
    for name, value in settings.items():
        line = f"def {name} = {value}"
        text, n = re.subn(rf"^def {name} = .*$", lambda _, line=line: line, text, flags=re.M)
        assert n == 1, f"setting {name} not found once in {SCRIPT}"
    hook_dir.mkdir(parents=True, exist_ok=True)
    path = hook_dir / SCRIPT_NAME
    path.write_text(text)
    return path


# --- the agent -------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    logger: str
    level: str
    message_class: str
    message: str


@dataclass(frozen=True)
class Case:
    name: str
    xml: bytes
    hook_dir: Path
    script: str = SCRIPT_NAME
    method: str = METHOD


@dataclass(frozen=True)
class Outcome:
    output: bytes | None  # what the agent would give createXML; None: the agent failed
    log: tuple[Record, ...]

    def level(self, level: str) -> list[str]:
        return [r.message for r in self.log if r.level == level]

    @property
    def warns(self) -> list[str]:
        return self.level("WARN")


def _unescape(text: str) -> str:
    table = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}
    return re.sub(r"\\[\\nrt]", lambda m: table[m.group(0)], text)


def start_agent(
    cases: list[Case], work: Path, path: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, list[Path]]:
    """Start the driver JVM on ``cases`` with ``PATH=path`` in ``env`` (by default this
    process's environment); finish with ``collect``."""
    launcher = groovy()
    work.mkdir(parents=True, exist_ok=True)
    lines, dirs = [], []
    for i, case in enumerate(cases):
        d = work / f"case-{i:04d}"
        d.mkdir()
        (d / "in.xml").write_bytes(case.xml)
        (d / "name").write_text(case.name)
        fields = [case.hook_dir, case.script, case.method, d / "in.xml", d / "out.xml", d / "log"]
        assert not any("\t" in str(f) or "\n" in str(f) for f in fields)
        lines.append("\t".join(map(str, fields)))
        dirs.append(d)
    manifest = work / "manifest.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    base = dict(os.environ) if env is None else env
    java_opts = f"{DRIVER_JAVA_OPTS} {base.get('JAVA_OPTS', '')}".strip()
    proc = subprocess.Popen(
        [launcher, str(DRIVER), str(manifest)],
        env={**base, "PATH": path, "JAVA_OPTS": java_opts},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, dirs


def collect(proc: subprocess.Popen, dirs: list[Path], timeout: float = 900) -> list[Outcome]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"the agent driver exited {proc.returncode}:\n{out}\n{err}"
    outcomes = []
    for d in dirs:
        log = []
        for line in (d / "log").read_text().splitlines():
            logger, level, cls, message = line.split("\t", 3)
            log.append(Record(logger, level, cls, _unescape(message)))
        result = d / "out.xml"
        outcomes.append(Outcome(result.read_bytes() if result.exists() else None, tuple(log)))
    return outcomes


def run_agent(cases: list[Case], work: Path, path: str) -> list[Outcome]:
    """Each case through the hook as the agent's start path runs it, in one JVM."""
    return collect(*start_agent(cases, work, path))


def transform(xml: str, work: Path, **settings) -> tuple[str, Outcome]:
    """One domain through the shipped script, installed with ``settings``."""
    bin_dir = work / "bin"
    planner_command(bin_dir)
    hook_dir = install_hook(work / "hooks", **settings).parent
    (outcome,) = run_agent(
        [Case("vm", xml.encode(), hook_dir)], work / "agent", f"{bin_dir}:{SYSTEM_PATH}"
    )
    assert outcome.output is not None, outcome.log
    return outcome.output.decode(), outcome


# --- CloudStack's domain XML -----------------------------------------------------------


def vm_xml(
    name: str,
    macs: list[str],
    *,
    machine: str = "pc",
    quote: str = "'",
    net: str = "bridge",
    os_xml: str | None = None,
    serial_xml: str | None = None,
    disk: str = "/mnt/primary/8f1c3a2e-root.qcow2",
    disk_format: str = "qcow2",
    disk_cache: str | None = "none",
    channel_dir: str = "/var/lib/libvirt/qemu",
    domain_type: str = "kvm",
    description: str = "CentOS 7 (64-bit)",
    uuid: str = "5d3c8f6e-2b7a-4b11-9a0e-1f4c2d6e8a10",
) -> str:
    """A domain as CloudStack's LibvirtVMDef writes it (cf. samples/cloudstack-2nic.xml).

    NICs first, in device-id order, then the virtio-serial controller and the guest-agent
    channel, the root disk (virtio), the cdrom (IDE on pc, SATA on q35), console, video,
    balloon and watchdog; no PCI address anywhere. ``net='user'`` gives user-mode NICs for
    a test host without CloudStack's bridges; ``os_xml``/``serial_xml`` replace the boot and
    serial elements (to boot the test guest).
    """

    def a(value: str) -> str:
        value = escape(value, {'"': "&quot;", "'": "&apos;"})
        return f"{quote}{value}{quote}"

    nics = []
    for i, mac in enumerate(macs):
        if net == "bridge":
            head = f"<interface type={a('bridge')}>\n      <source bridge={a(f'cloudbr{i % 2}')}/>"
        else:
            head = f"<interface type={a(net)}>"
        nics.append(
            f"""    {head}
      <mac address={a(mac)}/>
      <model type={a("virtio")}/>
      <link state={a("up")}/>
    </interface>
"""
        )
    if os_xml is None:
        os_xml = f"""<os>
    <type arch={a("x86_64")} machine={a(machine)}>hvm</type>
    <boot dev={a("hd")}/>
  </os>"""
    if serial_xml is None:
        serial_xml = f"""<serial type={a("pty")}>
      <target port={a("0")}/>
    </serial>
    <console type={a("pty")}>
      <target type={a("serial")} port={a("0")}/>
    </console>"""
    cache = f" cache={a(disk_cache)}" if disk_cache else ""
    cdrom_bus, cdrom_dev = ("sata", "sda") if "q35" in machine else ("ide", "hdc")
    video = "vga" if "q35" in machine else "cirrus"
    return f"""<domain type={a(domain_type)}>
  <name>{escape(name)}</name>
  <uuid>{uuid}</uuid>
  <description>{escape(description)}</description>
  <memory>262144</memory>
  <currentMemory>262144</currentMemory>
  <vcpu>1</vcpu>
  {os_xml}
  <features>
    <acpi/>
    <apic/>
    <pae/>
  </features>
  <clock offset={a("utc")}/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
{"".join(nics)}    <controller type={a("virtio-serial")} index={a("0")}/>
    <channel type={a("unix")}>
      <source mode={a("bind")} path={a(f"{channel_dir}/{name}.org.qemu.guest_agent.0")}/>
      <target type={a("virtio")} name={a("org.qemu.guest_agent.0")}/>
    </channel>
    <disk type={a("file")} device={a("disk")}>
      <driver name={a("qemu")} type={a(disk_format)}{cache}/>
      <source file={a(disk)}/>
      <target dev={a("vda")} bus={a("virtio")}/>
      <serial>8f1c3a2e1b2c4d5e</serial>
    </disk>
    <disk type={a("file")} device={a("cdrom")}>
      <driver name={a("qemu")} type={a("raw")}/>
      <target dev={a(cdrom_dev)} bus={a(cdrom_bus)}/>
      <readonly/>
    </disk>
    {serial_xml}
    <video>
      <model type={a(video)}/>
    </video>
    <memballoon model={a("virtio")}>
      <stats period={a("10")}/>
    </memballoon>
    <watchdog model={a("i6300esb")} action={a("none")}/>
  </devices>
</domain>
"""
