"""The machine and the versions a run was measured on, for the head of the output."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

from lxml import etree

from .harness import ROOT


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
