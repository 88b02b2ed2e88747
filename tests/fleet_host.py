"""Throwaway TCG domains for the audit and ``relayout --all`` tests, under one unique
name prefix (the libvirtd is shared with other test runs), removed afterwards."""

from __future__ import annotations

import os
import uuid

from planner.relayout import relayout

AFFECT_LIVE, AFFECT_CONFIG, XML_INACTIVE = 1, 2, 2
NEW_MAC = "52:54:00:aa:00:01"
PLAIN_NIC = f"<interface type='user'><mac address='{NEW_MAC}'/><model type='virtio'/></interface>"
PLANNER_NIC = (
    "<interface type='user'><mac address='52:54:00:bb:00:01'/><model type='virtio'/></interface>"
)


def nic(i: int) -> str:
    return (
        f"<interface type='user'><mac address='52:54:00:00:00:{i:02x}'/>"
        "<model type='virtio'/></interface>\n"
    )


def small_vm(image: str) -> str:
    """2 NICs, virtio-serial, a virtio disk, vga, balloon, watchdog; no addresses."""
    return (
        nic(1)
        + nic(2)
        + "<controller type='virtio-serial'/>\n"
        + "<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
        f"<source file='{image}'/><target dev='vda' bus='virtio'/></disk>\n"
        "<video><model type='vga'/></video>\n<memballoon model='virtio'/>\n"
        "<watchdog model='i6300esb' action='none'/>\n"
    )


def domain(name: str, machine: str, devices: str, arch: str = "x86_64", meta: str = "") -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>{meta}
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='{arch}' machine='{machine}'>hvm</type></os>
  <features><acpi/></features>
  <devices>
{devices}
  </devices>
</domain>
"""


class Host:
    """Throwaway domains under one unique prefix, all removed afterwards."""

    def __init__(self, conn, tmp_path):
        self.conn = conn
        self.prefix = f"planner-test-{uuid.uuid4().hex[:8]}-"
        self.dir = tmp_path
        tmp_path.chmod(0o755)
        self.names: list[str] = []

    def image(self, name: str) -> str:
        path = self.dir / f"{name}.raw"
        path.write_bytes(b"")
        os.truncate(path, 1 << 20)
        path.chmod(0o666)
        return str(path)

    def xml(self, label: str, machine: str = "pc", laid_out: bool = False) -> tuple[str, str]:
        name = self.prefix + label
        xml = domain(name, machine, small_vm(self.image(name)))
        return name, relayout(xml).xml if laid_out else xml

    def define(self, label, machine="pc", laid_out=False, start=True, xml=None):
        name, made = self.xml(label, machine, laid_out)
        self.names.append(name)
        dom = self.conn.defineXML(xml or made)
        if start:
            dom.create()
        return name, dom

    def transient(self, label, machine="pc"):
        name, xml = self.xml(label, machine)
        self.names.append(name)
        return name, self.conn.createXML(xml, 0)

    def cleanup(self):
        import libvirt

        for name in self.names:
            try:
                dom = self.conn.lookupByName(name)
                if dom.isActive():
                    dom.destroy()  # a transient domain is gone after this
                dom.undefine()
            except libvirt.libvirtError:
                continue


def hosted(conn, tmp_path):
    """The body of a ``host`` fixture: a Host, cleaned up afterwards."""
    h = Host(conn, tmp_path)
    try:
        yield h
    finally:
        h.cleanup()
