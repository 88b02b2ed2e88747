"""What the guest-truth scenarios share: the planner CLI, disks, waiting, libvirt constants."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from lxml import etree

from .guest import Console, GuestReport

ROOT = Path(__file__).resolve().parents[2]
AFFECT_LIVE, AFFECT_CONFIG = 1, 2  # VIR_DOMAIN_AFFECT_*
XML_INACTIVE = 2  # VIR_DOMAIN_XML_INACTIVE
BOOT_TIMEOUT = 90  # seconds: TCG on a 2-core machine shared with other tests
CHANGE_TIMEOUT = 60
MB = 2048  # 512-byte sectors per MiB


def disk_xml(image: Path, target: str, serial: str) -> str:
    return f"""<disk type='file' device='disk'>
      <driver name='qemu' type='raw'/><source file='{image}'/>
      <target dev='{target}' bus='virtio'/><serial>{serial}</serial>
    </disk>"""


def make_disk(vm_dir: Path, serial: str, mib: int) -> Path:
    image = vm_dir / f"{serial}.img"
    subprocess.run(["truncate", "-s", f"{mib}M", str(image)], check=True)
    return image


def run_planner(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "planner", *args], cwd=ROOT, capture_output=True, text=True
    )


def planner(*args: str) -> str:
    """Run the planner CLI; it must succeed. Returns its stdout."""
    proc = run_planner(*args)
    command = " ".join(args)
    assert proc.returncode == 0, f"planner {command} exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def hotplug(conn, name: str, *args: str) -> dict:
    """``planner hotplug -c URI NAME ARGS --json``: the attach result as a dict."""
    return json.loads(planner("hotplug", "-c", conn.getURI(), name, *args, "--json"))


def relayout_define_start(conn, xml: str, vm_dir: Path, *relayout_args: str):
    """Write the domain XML, rewrite it with ``planner relayout``, define and start it."""
    original = vm_dir / "domain.xml"
    original.write_text(xml)
    laid_out = vm_dir / "domain-relayout.xml"
    planner("relayout", str(original), "-o", str(laid_out), *relayout_args)
    dom = conn.defineXML(laid_out.read_text())
    dom.create()
    return dom


def boot_report(console: Console, nics: int, disks: int) -> GuestReport:
    return console.wait_for(
        lambda r: len(r.nics) == nics and len(r.disks) == disks, timeout=BOOT_TIMEOUT
    )


def wait_nics(console: Console, count: int) -> GuestReport:
    """The first report with ``count`` NICs (the names are asserted by the caller)."""
    return console.wait_for(lambda r: len(r.nics) == count, timeout=CHANGE_TIMEOUT)


def wait_until(what: str, cond: Callable[[], bool], timeout: float = CHANGE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting until {what}"
        time.sleep(0.2)


def interface_xml(dom, mac: str, flags: int = 0) -> str | None:
    """The XML of the interface with this MAC in the live (or, with flags, config) XML."""
    for el in etree.fromstring(dom.XMLDesc(flags).encode()).findall("./devices/interface"):
        if el.find("mac").get("address") == mac:
            return etree.tostring(el, encoding="unicode")
    return None
