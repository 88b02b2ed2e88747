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


# --- slot 0, the read-back, a domain that vanishes (issue 12) ---------------------------

PC = """<domain type='qemu'>
  <name>pc</name>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></interface>
  </devices>
</domain>"""


class ElsewhereDomain(FirstFitDomain):
    """libvirt puts the device at 00:07.0, whatever address the XML asks for."""

    def attachDeviceFlags(self, xml, flags):  # noqa: N802
        self.attached.append(xml)
        self.xml = self.placed(self.xml, xml)

    @staticmethod
    def placed(domain_xml: str, device_xml: str) -> str:
        """domain_xml with the device added at 00:07.0."""
        import re

        placed = re.sub(r"<address [^>]*/>", "", device_xml).replace(
            "</interface>",
            "<address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>"
            "</interface>",
        )
        return domain_xml.replace("</devices>", placed + "</devices>")


def test_a_device_asking_for_slot_0_of_bus_0_is_refused_before_any_attach():
    dom = ElsewhereDomain(PC)
    at_zero = NIC.replace(
        "</interface>",
        "<address type='pci' domain='0x0000' bus='0x00' slot='0x00' function='0x0'/></interface>",
    )
    with pytest.raises(InputError, match="slot 0 of bus 0"):
        hotplug(dom, at_zero)
    assert dom.attached == []


def test_the_address_reported_is_the_one_libvirt_used():
    dom = ElsewhereDomain(PC)
    result = hotplug(dom, NIC)
    assert len(dom.attached) == 1 and 'slot="0x04"' in dom.attached[0]  # planned 00:04.0
    assert str(result.address) == "0000:00:07.0"
    assert result.guest_name == "ens7"
    assert any("not at the planned 0000:00:04.0" in w for w in result.warnings)


class TwoXmlDomain(ElsewhereDomain):
    """A running, persistent domain with a live and a persistent XML of its own; libvirt
    puts the device at 00:07.0 in each XML the attach's flags touch. Counts XMLDesc."""

    def __init__(self, xml: str):
        super().__init__(xml)
        self.xmls = {"live": xml, "config": xml}
        self.reads: list[str] = []

    def XMLDesc(self, flags):  # noqa: N802
        import libvirt

        which = "config" if flags & libvirt.VIR_DOMAIN_XML_INACTIVE else "live"
        self.reads.append(which)
        return self.xmls[which]

    def attachDeviceFlags(self, xml, flags):  # noqa: N802
        import libvirt

        self.attached.append(xml)
        for which, flag in (
            ("live", libvirt.VIR_DOMAIN_AFFECT_LIVE),
            ("config", libvirt.VIR_DOMAIN_AFFECT_CONFIG),
        ):
            if flags & flag:
                self.xmls[which] = self.placed(self.xmls[which], xml)


def test_the_read_back_reads_one_xml_the_one_the_attach_changed():
    dom = TwoXmlDomain(PC)
    result = hotplug(dom, NIC)  # live and config: the live XML shows it
    assert dom.reads == ["live", "config", "live"]  # before (both), then one read back
    assert str(result.address) == "0000:00:07.0"
    dom = TwoXmlDomain(PC)
    result = hotplug(dom, NIC, config=True)  # a running domain, its next boot only
    assert dom.reads == ["live", "config", "config"]
    assert str(result.address) == "0000:00:07.0" and result.guest_name == "ens7"


def test_the_read_back_finds_a_device_without_a_mac_by_its_new_address():
    dom = TwoXmlDomain(PC)
    no_mac = "<interface type='user'><model type='virtio'/></interface>"
    result = hotplug(dom, no_mac, config=True)
    assert str(result.address) == "0000:00:07.0"
    assert any("not at the planned" in w for w in result.warnings)


def test_fallback_never_crashes_after_attaching_whatever_the_domain_xml_holds():
    """After the attach, XML planner cannot read (here an address libvirt would not
    write) only costs the report its address: no exception, so no second attach."""
    dom = FirstFitDomain(AARCH64)

    def attach_and_garble(xml, flags):
        dom.attached.append(xml)
        dom.xml = dom.xml.replace(
            "</devices>", "<rng model='virtio'><address type='pci' slot='zz'/></rng></devices>"
        )

    dom.attachDeviceFlags = attach_and_garble
    result = hotplug(dom, NIC.replace("52:54:00:00:00:02", "52:54:00:00:00:09"), fallback=True)
    assert len(dom.attached) == 1 and result.attached
    assert result.address is None and "libvirt chose an address" in result.warnings[0]


def _no_domain_error():
    import libvirt

    # libvirtError takes its message from the thread's last libvirt error, if any: a test
    # before this one (a refused define) must not lend it its message.
    libvirt.virResetLastError()
    exc = libvirt.libvirtError("Domain not found: no domain with matching uuid")
    text = "Domain not found: no domain with matching uuid"
    exc.err = (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, text, 2, "", None, None, 0, 0)
    return exc


def test_a_domain_that_vanishes_mid_command_is_domain_not_found():
    from planner.errors import DomainNotFound

    dom = FirstFitDomain(PC)

    def gone(*_):
        raise _no_domain_error()

    dom.isPersistent = gone
    with pytest.raises(DomainNotFound, match="no longer exists"):
        hotplug(dom, NIC)
    dom = FirstFitDomain(PC)
    dom.XMLDesc = gone
    with pytest.raises(DomainNotFound):
        hotplug(dom, NIC)
    dom = FirstFitDomain(PC)
    dom.attachDeviceFlags = gone
    with pytest.raises(DomainNotFound):
        hotplug(dom, NIC)
