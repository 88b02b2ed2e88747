"""The libvirt edge: machine types from the capabilities, typed errors, closed connections."""

from __future__ import annotations

import pytest
from conftest import URI

from planner import virt
from planner.errors import UnsupportedError
from planner.xmldoc import Document

needs_libvirtd = pytest.mark.libvirt

CAPS = """<capabilities><host/>
  <guest><os_type>hvm</os_type>
    <arch name='x86_64'>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <machine canonical='pc-i440fx-7.2' maxCpus='255'>ubuntu</machine>
      <domain type='qemu'/>
      <domain type='kvm'><machine canonical='pc-q35-7.2'>kvmish</machine></domain>
    </arch>
  </guest>
  <guest><os_type>hvm</os_type><arch name='aarch64'><machine>virt</machine></arch></guest>
</capabilities>"""


class FakeConn:
    def getCapabilities(self):  # noqa: N802 - libvirt's name
        return CAPS


def root(machine: str):
    return Document.parse(
        f"<domain type='qemu'><os><type arch='x86_64' machine='{machine}'>hvm</type></os></domain>"
    ).root


@needs_libvirtd
def test_the_pc_alias_resolves_to_the_emulator_i440fx_type(conn):
    known = virt.machine_types(conn, "x86_64")
    assert known["pc"].startswith("pc-i440fx-") and known["q35"].startswith("pc-q35-")
    assert virt.resolve_machine(conn, root("pc")) == known["pc"]
    assert virt.resolve_machine(conn, root(known["q35"])) == known["q35"]


@needs_libvirtd
def test_a_machine_type_the_emulator_lacks_is_a_clear_error(conn):
    with pytest.raises(UnsupportedError, match="has no machine type 'pc-i440fx-0.1'"):
        virt.resolve_machine(conn, root("pc-i440fx-0.1"))


@needs_libvirtd
def test_hotplug_by_name_closes_the_connection_it_opened(conn, domain_name, monkeypatch):
    from planner.attach import hotplug
    from planner.errors import DomainNotFound

    opened = []
    real = virt.connect

    def spy(uri):
        c = real(uri)
        opened.append(c)
        return c

    monkeypatch.setattr(virt, "connect", spy)
    with pytest.raises(DomainNotFound):
        hotplug(domain_name, "<interface type='user'/>", conn=URI)
    (c,) = opened
    with pytest.raises(Exception):  # noqa: B017 - libvirt: the connection is closed
        c.getVersion()


def test_capabilities_are_read_as_data_aliases_and_all():
    pytest.importorskip("libvirt")
    known = virt.machine_types(FakeConn(), "x86_64")
    assert known == {
        "pc-i440fx-7.2": "pc-i440fx-7.2",
        "ubuntu": "pc-i440fx-7.2",
        "kvmish": "pc-q35-7.2",
    }
    assert virt.machine_types(FakeConn(), "aarch64") == {"virt": "virt"}


def test_an_alias_only_the_emulator_knows_is_laid_out_as_its_machine():
    pytest.importorskip("libvirt")
    from planner import relayout

    xml = root("ubuntu").getroottree()
    text = "<domain type='qemu'><os><type arch='x86_64' machine='ubuntu'>hvm</type></os></domain>"
    with pytest.raises(UnsupportedError, match="'ubuntu' is not supported yet"):
        relayout(text)
    resolved = virt.resolve_machine(FakeConn(), xml.getroot())
    assert resolved == "pc-i440fx-7.2"
    result = relayout(text, machine_type=resolved)
    assert result.plan.topology.machine == "pc"
    assert result.plan.topology.machine_type == "pc-i440fx-7.2"
    assert "machine='ubuntu'" in result.xml  # the domain's own text is left alone
