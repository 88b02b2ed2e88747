"""Generated libvirt domains for the benchmarks: pc with pci-bridges, q35 with root ports.

Every generated domain is valid for libvirt 9 (``virsh define`` accepts it; see
``python3 bench/gen.py --check``) and for the planner: bus 0 holds at most ~25
devices, everything else sits behind pci-bridges (nested when one level is not
enough) at explicit addresses, and only a few devices are NICs.
"""

from __future__ import annotations

import itertools
import string

MAX_SLOT = 0x1F
BRIDGE_SLOTS = list(range(1, MAX_SLOT + 1))  # slot 0 of a pci-bridge stays unused


def _addr(bus: int, slot: int, function: int = 0, multi: bool = False) -> str:
    m = " multifunction='on'" if multi else ""
    return (
        f"<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' "
        f"function='{function:#x}'{m}/>"
    )


def _disk_name(i: int) -> str:
    """vda, vdb, ..., vdz, vdaa, ... as libvirt names virtio disks."""
    letters = string.ascii_lowercase
    name, i = "", i + 1
    while i:
        i, r = divmod(i - 1, 26)
        name = letters[r] + name
    return "vd" + name


class _Counter:
    def __init__(self) -> None:
        self.disk = itertools.count()
        self.mac = itertools.count(1)
        self.scsi = itertools.count()


def _leaf(kind: int, c: _Counter, addr: str | None) -> str:
    """One non-NIC PCI device, cycling through the common kinds."""
    a = f"\n      {addr}" if addr else ""
    k = kind % 4
    if k in (0, 1):  # virtio disks are most of a big domain
        n = next(c.disk)
        return (
            f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='qcow2'/>\n"
            f"      <source file='/var/lib/libvirt/images/gen-{n}.qcow2'/>\n"
            f"      <target dev='{_disk_name(n)}' bus='virtio'/>{a}\n"
            f"    </disk>"
        )
    if k == 2:
        i = next(c.scsi)
        return f"    <controller type='scsi' index='{i}' model='virtio-scsi'>{a}\n    </controller>"
    return (
        f"    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>{a}\n"
        f"    </rng>"
    )


def _nic(c: _Counter, addr: str | None) -> str:
    a = f"\n      {addr}" if addr else ""
    m = next(c.mac)
    return (
        f"    <interface type='network'>\n"
        f"      <mac address='52:54:00:00:{m // 256:02x}:{m % 256:02x}'/>\n"
        f"      <source network='default'/>\n"
        f"      <model type='virtio'/>{a}\n"
        f"    </interface>"
    )


def _domain(name: str, machine: str, body: list[str]) -> str:
    devices = "\n".join(body)
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='KiB'>2097152</memory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
{devices}
    <serial type='pty'>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
    <input type='mouse' bus='ps2'/>
    <graphics type='vnc' port='-1' autoport='yes'/>
  </devices>
</domain>
"""


def pc_domain(n: int, name: str | None = None) -> str:
    """A pc (i440fx) domain with about ``n`` PCI devices (bridges and chipset included).

    Up to ~22 devices sit on bus 0 (a few of them without an address, as a user
    would write them); beyond that, pci-bridges on bus 0 carry 31 devices each,
    and nested bridges behind them when bus 0 runs out of room.
    """
    c = _Counter()
    body = [
        "    <controller type='pci' index='0' model='pci-root'/>",
        f"    <controller type='ide' index='0'>\n      {_addr(0, 1, 1)}\n    </controller>",
        f"    <controller type='usb' index='0' model='piix3-uhci'>\n      {_addr(0, 1, 2)}\n"
        "    </controller>",
        f"    <video>\n      <model type='cirrus' vram='16384' heads='1' primary='yes'/>\n"
        f"      {_addr(0, 2)}\n    </video>",
    ]
    fixed = 3
    nics = 2 if n < 20 else 4
    count = fixed
    # NICs at slots 3.., the last one without an address.
    for i in range(nics):
        body.append(_nic(c, _addr(0, 3 + i) if i < nics - 1 else None))
        count += 1
    body.append(f"    <memballoon model='virtio'>\n      {_addr(0, 0x0B)}\n    </memballoon>")
    count += 1
    room_root = 22 - count  # devices kept on bus 0 besides bridges
    remaining = n - count
    if remaining <= room_root:
        for k in range(max(remaining, 0)):
            # bus 0 only: slots 0x0c.., every fourth device without an address
            body.append(_leaf(k, c, None if k % 4 == 3 else _addr(0, 0x0C + k)))
        return _domain(name or f"gen-pc-{n}", "pc-i440fx-7.2", body)

    # Bridges: each provides 31 slots; at most 8 on bus 0, nested ones behind those.
    root_leaves = 10
    behind = remaining - root_leaves
    bridges = 1
    while bridges * len(BRIDGE_SLOTS) - max(0, bridges - 8) < behind - bridges:
        bridges += 1
    top = min(bridges, 8)
    behind -= bridges
    slot = 0x0C
    for k in range(root_leaves):
        body.append(_leaf(k, c, _addr(0, slot)))
        slot += 1
    # Bridge placement: top-level bridges on bus 0, nested ones spread over them.
    free: dict[int, list[int]] = {}
    bridge_xml = []
    for b in range(1, bridges + 1):
        if b <= top:
            where = _addr(0, slot)
            slot += 1
        else:
            parent = (b - top - 1) % top + 1
            where = _addr(parent, free[parent].pop(0))
        free[b] = list(BRIDGE_SLOTS)
        bridge_xml.append(
            f"    <controller type='pci' index='{b}' model='pci-bridge'>\n"
            f"      <model name='pci-bridge'/>\n      <target chassisNr='{b}'/>\n"
            f"      {where}\n    </controller>"
        )
    body[1:1] = bridge_xml
    # One NIC an operator once put behind a bridge; the planner moves it to bus 0.
    buses = itertools.cycle(range(1, bridges + 1))
    placed = 0
    k = 0
    while placed < behind:
        bus = next(buses)
        if not free[bus]:
            continue
        where = _addr(bus, free[bus].pop(0))
        body.append(_nic(c, where) if placed == behind // 2 else _leaf(k, c, where))
        placed += 1
        k += 1
    return _domain(name or f"gen-pc-{n}", "pc-i440fx-7.2", body)


def q35_domain(n: int, name: str | None = None) -> str:
    """A q35 domain with about ``n`` PCI devices: one device per pcie-root-port,
    root ports packed 8 per slot as libvirt does; beyond 100 devices, the rest sit
    behind a pcie-to-pci-bridge and the pci-bridges plugged into it."""
    c = _Counter()
    body = [
        "    <controller type='pci' index='0' model='pcie-root'/>",
        f"    <video>\n      <model type='vga' vram='16384' heads='1' primary='yes'/>\n"
        f"      {_addr(0, 1)}\n    </video>",
        f"    <controller type='sata' index='0'>\n      {_addr(0, 0x1F, 2)}\n    </controller>",
    ]
    count = 3
    ctrls: list[str] = []
    index = itertools.count(1)

    def root_port() -> int:
        i = next(index)
        slot, fn = 2 + (i - 1) // 8, (i - 1) % 8
        ctrls.append(
            f"    <controller type='pci' index='{i}' model='pcie-root-port'>\n"
            f"      <model name='pcie-root-port'/>\n"
            f"      <target chassis='{i}' port='{0x10 + i - 1:#x}'/>\n"
            f"      {_addr(0, slot, fn, multi=fn == 0)}\n    </controller>"
        )
        return i

    nics = 2 if n < 20 else 4
    on_ports = min(n - count, 100) - 1  # one port left for the bridge chain when needed
    devices = []
    for k in range(max(on_ports, 0)):
        port = root_port()
        count += 1 + 1  # the port and its device
        if k < nics:
            devices.append(_nic(c, _addr(port, 0)))
        elif k == nics:
            devices.append(
                f"    <memballoon model='virtio'>\n      {_addr(port, 0)}\n    </memballoon>"
            )
        else:
            devices.append(_leaf(k, c, _addr(port, 0)))
        if count >= n:
            break
    if count < n:
        port = root_port()
        bridge = next(index)
        ctrls.append(
            f"    <controller type='pci' index='{bridge}' model='pcie-to-pci-bridge'>\n"
            f"      <model name='pcie-pci-bridge'/>\n      {_addr(port, 0)}\n"
            f"    </controller>"
        )
        count += 2
        free = {bridge: list(BRIDGE_SLOTS)}
        subs: list[int] = []
        k = 0
        while count < n:
            if not any(free[b] for b in subs):  # a new pci-bridge on the pcie-to-pci-bridge
                b = next(index)
                ctrls.append(
                    f"    <controller type='pci' index='{b}' model='pci-bridge'>\n"
                    f"      <model name='pci-bridge'/>\n      <target chassisNr='{b}'/>\n"
                    f"      {_addr(bridge, free[bridge].pop(0))}\n    </controller>"
                )
                free[b] = list(BRIDGE_SLOTS)
                subs.append(b)
                count += 1
                continue
            b = next(s for s in subs if free[s])
            devices.append(_leaf(k, c, _addr(b, free[b].pop(0))))
            count += 1
            k += 1
    return _domain(name or f"gen-q35-{n}", "pc-q35-7.2", [*body[:1], *ctrls, *body[1:], *devices])


def _check() -> int:
    """Define every generated size in libvirt (then undefine it): are they valid?"""
    import os
    import sys
    import uuid

    import libvirt

    conn = libvirt.open(os.environ.get("LIBVIRT_DEFAULT_URI", "qemu:///system"))
    bad = 0
    for fam, gen in (("pc", pc_domain), ("q35", q35_domain)):
        for n in (10, 25, 60, 100, 250, 1000):
            name = f"planner-bench-check-{uuid.uuid4().hex[:8]}"
            try:
                dom = conn.defineXML(gen(n, name))
                dom.undefine()
                print(f"{fam} {n}: ok")
            except libvirt.libvirtError as exc:
                bad += 1
                print(f"{fam} {n}: {exc}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--check"]:
        raise SystemExit(_check())
    fam, n = sys.argv[1], int(sys.argv[2])
    sys.stdout.write((pc_domain if fam == "pc" else q35_domain)(n))
