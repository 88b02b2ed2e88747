"""A tiny Linux test guest that reports the names its NICs get.

planner exists so that hot-plugged NICs get predictable names inside the guest. Checking
the domain XML cannot prove that: only a guest kernel and udev's ``net_id`` decide the
names. This module builds such a guest from Debian packages (a cloud kernel, a static
busybox and systemd's ``udevadm``), gives the libvirt XML that boots it by direct kernel
boot, and parses the reports its ``/init`` (``init.sh`` beside this file) prints on the
serial console at boot and after every NIC or disk hot-plug/unplug.

A TCG boot takes a few seconds, and the guest is cached per package versions, so that an
end-to-end test costs seconds, not minutes.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape, quoteattr

DEFAULT_CACHE = Path.home() / ".cache" / "planner-tests"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
# The drivers the guest needs as modules; their dependencies are found with modinfo.
MODULES = ("virtio_pci", "virtio_net", "virtio_blk")
BUSYBOX = Path("/bin/busybox")  # from busybox-static: /init runs before any library
UDEVADM = Path("/usr/bin/udevadm")  # from udev: the naming logic under test
INIT_TEMPLATE = Path(__file__).with_name("init.sh")
# Bump when the way the guest is built changes, so that cached guests are rebuilt.
BUILD_FORMAT = 1
CMDLINE = "console=ttyS0 quiet loglevel=0 panic=-1"


# --- building the guest ------------------------------------------------------------


@dataclass(frozen=True)
class Guest:
    """A bootable guest: give both to libvirt's direct kernel boot."""

    kernel: Path
    initrd: Path


def build_guest(cache_dir: Path = DEFAULT_CACHE) -> Guest:
    """Build the test guest, or return the cached one built from the same packages.

    The key is the versions of the kernel, busybox-static and udev packages plus
    ``init.sh``, so a new Debian kernel or an edited /init gives a new guest.
    """
    try:
        return _build(cache_dir)
    except _StaleAptLists:
        # Missing package lists, or old ones that name a kernel the mirror no longer has.
        _run(["apt-get", "update", "-qq"])
        return _build(cache_dir)


class _StaleAptLists(RuntimeError):
    pass


def _build(cache_dir: Path) -> Guest:
    package, version = _kernel_package()
    init = INIT_TEMPLATE.read_text()
    key_text = "\n".join(
        [
            f"format={BUILD_FORMAT}",
            f"{package}={version}",
            f"busybox-static={_installed_version('busybox-static')}",
            f"udev={_installed_version('udev')}",
            init,
        ]
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    out = cache_dir / f"guest-{key}"
    guest = Guest(kernel=out / "vmlinuz", initrd=out / "initrd.img")
    if guest.kernel.exists() and guest.initrd.exists():
        return guest

    cache_dir.mkdir(parents=True, exist_ok=True)
    deb = _download(package, version, cache_dir / "debs")
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        root = Path(tmp) / "deb"
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        (vmlinuz,) = (root / "boot").glob("vmlinuz-*")
        (moddir,) = [d for d in root.glob("*lib/modules/*") if (d / "kernel").is_dir()]
        modules = _modules_in_load_order(moddir, MODULES)

        files: dict[str, tuple[int, bytes]] = {
            "init": (0o755, init.replace("@MODULES@", " ".join(n for n, _ in modules)).encode()),
            "bin/busybox": (0o755, BUSYBOX.read_bytes()),
            "bin/udevadm": (0o755, UDEVADM.read_bytes()),
        }
        for lib in _shared_libraries(UDEVADM):
            files[str(lib).lstrip("/")] = (0o755, lib.resolve().read_bytes())
        for name, path in modules:
            files[f"lib/modules/{name}.ko"] = (0o644, _module_bytes(path))

        staging = Path(tmp) / "guest"
        staging.mkdir()
        shutil.copyfile(vmlinuz, staging / "vmlinuz")
        with gzip.GzipFile(staging / "initrd.img", "wb", compresslevel=6, mtime=0) as gz:
            gz.write(_newc_archive(files, dirs=("proc", "sys", "dev", "tmp", "run")))
        try:
            os.replace(staging, out)
        except OSError:  # a concurrent build got there first
            if not guest.initrd.exists():
                raise
    return guest


def _run(argv: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _kernel_package() -> tuple[str, str]:
    """The current cloud kernel: e.g. ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")."""
    try:
        show = _run(["apt-cache", "show", "--no-all-versions", KERNEL_META_PACKAGE])
    except RuntimeError as exc:
        raise _StaleAptLists(str(exc)) from exc
    m = re.search(r"^Depends:.*?\b(linux-image-\S+)\s+\(=\s*([^)\s]+)\)", show, re.M)
    if not m:
        raise RuntimeError(f"cannot find the kernel {KERNEL_META_PACKAGE} depends on:\n{show}")
    return m.group(1), m.group(2)


def _installed_version(package: str) -> str:
    return _run(["dpkg-query", "-W", "-f=${Version}", package])


def _download(package: str, version: str, debs: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    deb = debs / f"{package}_{version.replace(':', '%3a')}_amd64.deb"
    if not deb.exists():
        try:
            _run(["apt-get", "download", "-qq", f"{package}={version}"], cwd=debs)
        except RuntimeError as exc:
            raise _StaleAptLists(str(exc)) from exc
    return deb


def _modules_in_load_order(moddir: Path, wanted: Iterable[str]) -> list[tuple[str, Path]]:
    """``wanted`` and their dependencies, each after what it depends on.

    The .deb ships no modules.dep, so the dependencies come from each module's modinfo.
    Modules built into the kernel are left out.
    """
    files = {_module_name(p): p for p in (moddir / "kernel").rglob("*.ko*")}
    builtin = {
        _module_name(Path(line)) for line in (moddir / "modules.builtin").read_text().split()
    }
    order: list[tuple[str, Path]] = []

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in builtin or any(done == name for done, _ in order):
            return
        if name not in files:
            raise RuntimeError(f"kernel module {name} not found in {moddir}")
        depends = _run(["modinfo", "-F", "depends", str(files[name])]).strip()
        for dep in filter(None, depends.split(",")):
            visit(dep)
        order.append((name, files[name]))

    for name in wanted:
        visit(name)
    return order


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    """A module uncompressed, since busybox insmod may not read .ko.xz or .ko.zst."""
    if path.name.endswith(".xz"):
        return lzma.decompress(path.read_bytes())
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], check=True, capture_output=True).stdout
    return path.read_bytes()


def _shared_libraries(binary: Path) -> list[Path]:
    """The libraries and the dynamic loader ``ldd`` lists for ``binary``."""
    libs = []
    for line in _run(["ldd", str(binary)]).splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


def _newc_archive(files: dict[str, tuple[int, bytes]], dirs: Iterable[str]) -> bytes:
    """An initramfs (cpio "newc") of ``files`` (path: (mode, data)), ``dirs`` and /dev/console.

    Written here rather than with cpio(1) so that /dev/console, which the kernel opens
    for /init's stdio before devtmpfs is mounted, needs no mknod (nor root) at build time.
    """
    entries: list[tuple[str, int, bytes, int]] = []  # name, mode, data, rdev (major, minor)
    all_dirs = set(dirs) | {"dev"}
    for path in files:
        parts = path.split("/")[:-1]
        all_dirs |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
    entries += [(d, 0o040755, b"", 0) for d in sorted(all_dirs)]
    entries.append(("dev/console", 0o020600, b"", (5 << 8) | 1))
    entries += [(p, 0o100000 | mode, data, 0) for p, (mode, data) in sorted(files.items())]
    entries.append(("TRAILER!!!", 0, b"", 0))

    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate(entries, start=1):
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev >> 8, rdev & 0xFF, len(name) + 1, 0)
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


# --- libvirt XML ----------------------------------------------------------------------


def os_xml(guest: Guest, machine: str = "pc", cmdline: str = CMDLINE) -> str:
    """The ``<os>`` element: direct kernel boot of ``guest`` on ``machine`` (pc or q35)."""
    return (
        "<os>"
        f"<type arch='x86_64' machine={quoteattr(machine)}>hvm</type>"
        f"<kernel>{escape(str(guest.kernel))}</kernel>"
        f"<initrd>{escape(str(guest.initrd))}</initrd>"
        f"<cmdline>{escape(cmdline)}</cmdline>"
        "</os>"
    )


def console_xml(console_log: Path) -> str:
    """Serial port 0, the guest's console, written to ``console_log`` for Console to read.

    The file is opened by QEMU (or virtlogd), so its directory must be writable by them.
    """
    source = f"<source path={quoteattr(str(console_log))}/>"
    return (
        f"<serial type='file'>{source}<target port='0'/></serial>"
        f"<console type='file'>{source}<target type='serial' port='0'/></console>"
    )


def domain_xml(
    name: str,
    guest: Guest,
    console_log: Path,
    machine: str = "pc",
    devices_xml: str = "",
    memory_mib: int = 256,
    cmdline: str = CMDLINE,
) -> str:
    """A complete TCG domain that boots ``guest``, with ``devices_xml`` in ``<devices>``.

    ``type='qemu'`` because /dev/kvm may hang on test machines; ``<acpi/>`` because
    without it i440fx has no ACPI PCI hot-plug ("Bus 'pci.0' does not support
    hotplugging") and the guest would not see NICs come and go.
    """
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  {os_xml(guest, machine, cmdline)}
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {console_xml(console_log)}
    {devices_xml}
  </devices>
</domain>
"""


# --- reading the guest's reports ---------------------------------------------------


@dataclass(frozen=True)
class GuestNic:
    """One NIC as the guest sees it; ``name`` is what systemd would call it."""

    iface: str
    pci: str
    mac: str
    onboard: str
    slot: str
    path: str
    name: str


@dataclass(frozen=True)
class GuestDisk:
    name: str
    pci: str
    serial: str
    size: int  # in 512-byte sectors


@dataclass(frozen=True)
class GuestReport:
    """One complete report: what the guest saw at one moment, sorted by PCI address."""

    seq: int
    nics: tuple[GuestNic, ...]
    disks: tuple[GuestDisk, ...]

    @property
    def names(self) -> list[str]:
        """The NICs' chosen names in PCI order."""
        return [nic.name for nic in self.nics]


_LINE = re.compile(r"PLANNER-(REPORT|NIC|DISK) (.*)")
_BEGIN = re.compile(r"(\d+) BEGIN")
_END = re.compile(r"(\d+) END nics=(\d+) disks=(\d+)")


def _fields(text: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in text.split() if "=" in word)


def parse_reports(text: str) -> list[GuestReport]:
    """All complete reports in a console log, oldest first.

    Kernel messages can land anywhere on ttyS0, even inside a line, so a line counts
    from its ``PLANNER-`` marker, and a report whose END counts do not match the lines
    collected (a torn line) is dropped; the guest prints a new one on the next change.
    """
    reports: list[GuestReport] = []
    seq: int | None = None  # the report being collected, if any
    nics: list[GuestNic] = []
    disks: list[GuestDisk] = []
    for line in text.replace("\r", "").splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        kind, rest = m.groups()
        try:
            if kind == "NIC" and seq is not None:
                nics.append(GuestNic(**_fields(rest)))
            elif kind == "DISK" and seq is not None:
                f = _fields(rest)
                disks.append(GuestDisk(f["name"], f["pci"], f["serial"], int(f["size"])))
            elif kind == "REPORT":
                begin, end = _BEGIN.fullmatch(rest), _END.fullmatch(rest)
                if end and tuple(map(int, end.groups())) == (seq, len(nics), len(disks)):
                    nics.sort(key=lambda n: n.pci)
                    disks.sort(key=lambda d: d.pci)
                    reports.append(GuestReport(seq, tuple(nics), tuple(disks)))
                seq = int(begin.group(1)) if begin else None
                nics, disks = [], []
        except (TypeError, KeyError, ValueError):
            seq = None  # a torn line: drop this report
    return reports


class Console:
    """The guest's serial console log, as written by QEMU."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def text(self) -> str:
        try:
            return self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def reports(self) -> list[GuestReport]:
        return parse_reports(self.text())

    def latest(self) -> GuestReport | None:
        reports = self.reports()
        return reports[-1] if reports else None

    def wait_for(
        self,
        predicate: Callable[[GuestReport], bool] = lambda _: True,
        timeout: float = 60.0,
        poll: float = 0.2,
    ) -> GuestReport:
        """Wait until the latest complete report satisfies ``predicate``, and return it.

        Only the latest counts: an older report that matched describes a past state.
        Raises AssertionError with that report and the log's tail on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest()
            if latest is not None and predicate(latest):
                return latest
            if time.monotonic() >= deadline:
                tail = "\n".join(self.text().replace("\r", "").splitlines()[-40:])
                raise AssertionError(
                    f"guest report did not match within {timeout:.0f}s\n"
                    f"latest report: {latest}\n--- tail of {self.path} ---\n{tail}"
                )
            time.sleep(poll)
