"""`--fallback`: where planner cannot place a device, libvirt chooses, and planner says where."""

from __future__ import annotations

import pytest

from planner.attach import hotplug
from planner.errors import InputError, UnsupportedError

AARCH64 = """<domain type='qemu'>
  <name>arm</name>
  <os><type arch='aarch64' machine='virt'>hvm</type></os>
  <devices>
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></interface>
  </devices>
</domain>"""


class FirstFitDomain:
    """A stand-in for a running virDomain whose libvirt puts a new NIC on bus 2."""

    def __init__(self, xml: str):
        self.xml = xml
        self.attached: list[str] = []

    def UUIDString(self):  # noqa: N802 - libvirt's names
        return "00000000-0000-0000-0000-0000000000fb"

    def isActive(self):  # noqa: N802
        return True

    def isPersistent(self):  # noqa: N802
        return True

    def XMLDesc(self, flags):  # noqa: N802
        return self.xml

    def attachDeviceFlags(self, xml, flags):  # noqa: N802
        self.attached.append(xml)
        placed = xml.replace(
            "</interface>",
            "<address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>"
            "</interface>",
        )
        self.xml = self.xml.replace("</devices>", placed + "</devices>")


NIC = "<interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>"


def test_a_domain_planner_cannot_read_is_refused_without_fallback():
    dom = FirstFitDomain(AARCH64)
    with pytest.raises(UnsupportedError, match="not supported yet"):
        hotplug(dom, NIC)
    assert dom.attached == []


def test_with_fallback_libvirt_chooses_and_the_address_is_reported():
    dom = FirstFitDomain(AARCH64)
    result = hotplug(dom, NIC, fallback=True)
    assert len(dom.attached) == 1 and "<address" not in dom.attached[0]
    assert str(result.address) == "0000:02:00.0"
    assert "domain XML" in result.warnings[0] and "libvirt chose 0000:02:00.0" in result.warnings[0]


def test_fallback_reads_tag_and_mac_from_the_parsed_element_whatever_its_namespace():
    """No second parser: the tag and MAC come from the lxml element already parsed."""
    from planner.attach import _identify
    from planner.xmldoc import parse_element

    assert _identify(parse_element(NIC)) == ("interface", "52:54:00:00:00:02")
    namespaced = NIC.replace("<interface ", "<interface xmlns='urn:x' ")
    assert _identify(parse_element(namespaced)) == ("interface", "52:54:00:00:00:02")
    dom = FirstFitDomain(AARCH64)
    with pytest.raises(InputError, match="is not a PCI device"):  # refused before any attach
        hotplug(dom, namespaced, fallback=True)
    assert dom.attached == []


def test_fallback_never_passes_on_device_xml_the_hardened_parser_refused():
    dom = FirstFitDomain(AARCH64)
    dtd = "<!DOCTYPE interface [<!ENTITY x 'y'>]><interface type='user'>&x;</interface>"
    with pytest.raises(InputError, match="device XML declares entities"):
        hotplug(dom, dtd, fallback=True)
    assert dom.attached == []


def test_an_error_that_is_not_libvirt_s_is_not_reported_as_libvirt_refusing():
    """Only libvirt's own errors become LibvirtRefused; a bug stays a bug."""
    dom = FirstFitDomain(AARCH64)

    def broken(xml, flags):
        raise RuntimeError("a bug, not libvirt")

    dom.attachDeviceFlags = broken
    with pytest.raises(RuntimeError, match="a bug"):
        hotplug(dom, NIC, fallback=True)
