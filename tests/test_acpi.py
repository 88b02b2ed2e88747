"""ACPI index naming: relayout --acpi-index, show, and the hot-plug choice (no libvirtd)."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from planner import acpi
from planner.cli import EXIT_INPUT, exit_code, main
from planner.errors import InputError, NoRoomError, PlannerError
from planner.machines import read_topology
from planner.relayout import nic_names, relayout
from planner.report import show
from planner.xmldoc import Document, parse_element


def nic(mac: str, extra: str = "") -> str:
    return f"<interface type='user'><mac address='{mac}'/><model type='virtio'/>{extra}</interface>"


def domain(devices: str, machine: str = "pc", metadata: str = "") -> str:
    return f"""<domain type='qemu'>
  <name>acpi</name>
  {metadata}
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    {devices}
    <video><model type='vga'/></video>
  </devices>
</domain>
"""


TWO_NICS = domain(nic("52:54:00:00:00:01") + nic("52:54:00:00:00:02"))


def indexes(xml: str) -> dict[str, int]:
    """MAC -> ACPI index of every NIC, read back from the XML."""
    out = {}
    for el in Document.parse(xml).root.iter("interface"):
        a = el.find("acpi")
        out[el.find("mac").get("address")] = int(a.get("index")) if a is not None else None
    return out


def names(xml: str, **overrides) -> list[str]:
    return [n for _, _, n in nic_names(relayout(xml, **overrides).plan)]


# --- relayout ------------------------------------------------------------------------


def test_fresh_domain_gets_1_to_n_in_document_order():
    xml = domain("".join(nic(f"52:54:00:00:00:0{i}") for i in (3, 1, 2)))
    out = relayout(xml, acpi_index=True)
    assert indexes(out.xml) == {
        "52:54:00:00:00:03": 1,
        "52:54:00:00:00:01": 2,
        "52:54:00:00:00:02": 3,
    }
    assert "<acpi index='1'/>" in out.xml
    assert "acpi-index='yes'" in out.xml
    assert names(xml, acpi_index=True) == ["eno1", "eno2", "eno3"]


def test_without_the_option_no_index_is_written():
    out = relayout(TWO_NICS)
    assert "<acpi index" not in out.xml
    assert "acpi-index='no'" in out.xml
    assert names(TWO_NICS) == ["ens3", "ens4"]


def test_keeps_a_valid_existing_index_and_writes_only_new_ones():
    xml = domain(
        nic("52:54:00:00:00:01")
        + nic("52:54:00:00:00:02", "<acpi index='7'/>")
        + nic("52:54:00:00:00:03")
    )
    out = relayout(xml, acpi_index=True)
    assert indexes(out.xml) == {
        "52:54:00:00:00:01": 1,
        "52:54:00:00:00:02": 7,
        "52:54:00:00:00:03": 2,
    }
    topo = out.plan.topology
    written = {topo.device(pos).detail.split()[-1]: i for pos, i in out.plan.acpi_indexes.items()}
    assert written == {"52:54:00:00:00:01": 1, "52:54:00:00:00:03": 2}
    assert out.xml.count("<acpi index='7'/>") == 1  # untouched


def test_an_existing_index_of_1_is_kept_and_the_others_fill_around_it():
    xml = domain(nic("52:54:00:00:00:01") + nic("52:54:00:00:00:02", "<acpi index='1'/>"))
    assert indexes(relayout(xml, acpi_index=True).xml) == {
        "52:54:00:00:00:01": 2,
        "52:54:00:00:00:02": 1,
    }


def test_skips_indexes_held_by_other_devices():
    disk = (
        "<disk type='file' device='disk'><source file='/x.img'/>"
        "<target dev='vda' bus='virtio'/><acpi index='1'/></disk>"
    )
    hostdev = (
        "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='5' "
        "slot='0' function='0'/></source><acpi index='3'/></hostdev>"
    )
    xml = domain(
        nic("52:54:00:00:00:01")
        + disk
        + nic("52:54:00:00:00:02")
        + hostdev
        + nic("52:54:00:00:00:03")
    )
    out = relayout(xml, acpi_index=True)
    assert indexes(out.xml) == {
        "52:54:00:00:00:01": 2,
        "52:54:00:00:00:02": 4,
        "52:54:00:00:00:03": 5,
    }
    assert out.xml.count("<acpi index='1'/>") == 1 and out.xml.count("<acpi index='3'/>") == 1


def test_a_nic_whose_index_another_device_holds_gets_a_new_one_with_a_warning():
    disk = (
        "<disk type='file' device='disk'><source file='/x.img'/>"
        "<target dev='vda' bus='virtio'/><acpi index='1'/></disk>"
    )
    xml = domain(nic("52:54:00:00:00:01", "<acpi index='1'/>") + disk)
    out = relayout(xml, acpi_index=True)
    assert indexes(out.xml) == {"52:54:00:00:00:01": 2}
    assert any("ACPI index 1" in w and "vda" in w for w in out.plan.warnings)


@pytest.mark.parametrize("bad", ["0", "16384", "99999"])
def test_a_nic_with_an_invalid_index_gets_a_valid_one(bad):
    xml = domain(nic("52:54:00:00:00:01", f"<acpi index='{bad}'/>") + nic("52:54:00:00:00:02"))
    out = relayout(xml, acpi_index=True)
    assert indexes(out.xml) == {"52:54:00:00:00:01": 1, "52:54:00:00:00:02": 2}
    assert f"<acpi index='{bad}'" not in out.xml
    assert any(f"ACPI index {bad}" in w for w in out.plan.warnings)


def test_duplicate_nic_indexes_the_first_in_document_order_keeps_it():
    xml = domain(
        nic("52:54:00:00:00:01", "<acpi index='2'/>")
        + nic("52:54:00:00:00:02", "<acpi index='2'/>")
    )
    out = relayout(xml, acpi_index=True)
    assert indexes(out.xml) == {"52:54:00:00:00:01": 2, "52:54:00:00:00:02": 1}


def test_a_bare_acpi_element_gets_its_index_attribute():
    xml = domain(nic("52:54:00:00:00:01", "<acpi/>"))
    out = relayout(xml, acpi_index=True)
    assert "<acpi index='1'/>" in out.xml and out.xml.count("<acpi") == 2  # and <features>


def test_16383_is_the_highest_index_and_kept():
    xml = domain(nic("52:54:00:00:00:01", "<acpi index='16383'/>"))
    assert indexes(relayout(xml, acpi_index=True).xml) == {"52:54:00:00:00:01": 16383}


@pytest.mark.parametrize(
    "extra, message",
    [
        ("<acpi index='0'/>", r"<disk> vda has ACPI index 0, outside libvirt's 1-16383"),
        ("<acpi index='16384'/>", r"<disk> vda has ACPI index 16384"),
    ],
)
def test_an_invalid_index_on_another_device_is_an_input_error(extra, message):
    disk = (
        f"<disk type='file' device='disk'><source file='/x.img'/>"
        f"<target dev='vda' bus='virtio'/>{extra}</disk>"
    )
    with pytest.raises(InputError, match=re.escape(message)):
        relayout(domain(nic("52:54:00:00:00:01") + disk), acpi_index=True)


def test_two_other_devices_with_one_index_is_an_input_error(tmp_path, capsys):
    disks = "".join(
        f"<disk type='file' device='disk'><source file='/{d}.img'/>"
        f"<target dev='{d}' bus='virtio'/><acpi index='4'/></disk>"
        for d in ("vda", "vdb")
    )
    path = tmp_path / "dom.xml"
    path.write_text(domain(nic("52:54:00:00:00:01") + disks))
    assert main(["relayout", "--acpi-index", str(path)]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err == "planner: error: <disk> vda and <disk> vdb both have ACPI index 4\n"


def test_relayout_is_idempotent_and_the_policy_is_remembered():
    once = relayout(TWO_NICS, acpi_index=True)
    assert once.changed
    twice = relayout(once.xml, acpi_index=True)
    assert not twice.changed and twice.plan.acpi_indexes == {}
    remembered = relayout(once.xml)  # no option: the recorded policy says acpi-index='yes'
    assert not remembered.changed
    assert names(once.xml) == ["eno1", "eno2"]


def test_cli_relayout_check_after_acpi_relayout_is_clean(tmp_path):
    path = tmp_path / "dom.xml"
    path.write_text(TWO_NICS)
    assert main(["relayout", "--acpi-index", "-i", str(path)]) == 0
    assert "<acpi index='2'/>" in path.read_text()
    assert main(["relayout", "--check", str(path)]) == 0
    assert main(["relayout", "--check", "--acpi-index", str(path)]) == 0


def test_show_predicts_eno_names():
    planned = show(TWO_NICS, planned=True, acpi_index=True)
    assert re.findall(r"\b(eno\d+|ens\d+)\b", planned) == ["eno1", "eno2"]
    after = show(relayout(TWO_NICS, acpi_index=True).xml)
    assert re.findall(r"\b(eno\d+|ens\d+)\b", after) == ["eno1", "eno2"]
    assert re.findall(r"\b(eno\d+|ens\d+)\b", show(TWO_NICS, planned=True)) == ["ens3", "ens4"]


def test_cli_show_json_predicts_eno_names(tmp_path, capsys):
    import json

    path = tmp_path / "dom.xml"
    path.write_text(relayout(TWO_NICS, acpi_index=True).xml)
    assert main(["show", "--json", str(path)]) == 0
    slots = json.loads(capsys.readouterr().out)["slots"]
    assert [s["guest_name"] for s in slots if s["role"] == "nic"] == ["eno1", "eno2"]


# --- hot-plug choice -----------------------------------------------------------------


def topo(xml: str):
    return read_topology(Document.parse(xml))


def laid_out(*nic_indexes: int | None, others: str = "") -> str:
    """A domain laid out with --acpi-index whose NICs hold these indexes (None: none)."""
    nics = "".join(
        nic(f"52:54:00:00:00:{i + 1:02x}", f"<acpi index='{x}'/>" if x else "")
        for i, x in enumerate(nic_indexes)
    )
    return relayout(domain(nics + others), acpi_index=False).xml.replace(
        "acpi-index='no'", "acpi-index='yes'"
    )


def test_lowest_takes_the_lowest_unused_index():
    assert acpi.choose_index([topo(laid_out(1, 2))], "lowest") == 3
    assert acpi.choose_index([topo(laid_out(1, 3))], "lowest") == 2  # the hole of an unplug
    assert acpi.choose_index([topo(laid_out())], "lowest") == 1


def test_after_last_goes_above_the_highest_nic():
    assert acpi.choose_index([topo(laid_out(1, 3))], "after-last") == 4
    assert acpi.choose_index([topo(laid_out(1, 2))], "after-last") == 3
    assert acpi.choose_index([topo(laid_out())], "after-last") == 1


def test_an_index_held_only_in_the_live_or_the_persistent_xml_is_not_reused():
    live, config = topo(laid_out(1, 3)), topo(laid_out(1, 2))
    assert acpi.choose_index([live, config], "lowest") == 4
    assert acpi.choose_index([config, live], "lowest") == 4


def test_indexes_of_other_devices_are_skipped():
    disk = (
        "<disk type='file' device='disk'><source file='/x.img'/>"
        "<target dev='vda' bus='virtio'/><acpi index='3'/></disk>"
    )
    t = topo(laid_out(1, 2, others=disk))
    assert acpi.choose_index([t], "lowest") == 4
    assert acpi.choose_index([t], "after-last") == 4
    t = topo(laid_out(1, others=disk.replace("'3'", "'2'")))
    assert acpi.choose_index([t], "after-last") == 3


def test_a_requested_index_is_kept_if_unused_and_refused_if_not():
    t = topo(laid_out(1, 2))
    assert acpi.choose_index([t], "lowest", requested=9) == 9
    with pytest.raises(NoRoomError, match="ACPI index 2 is already in use"):
        acpi.choose_index([t], "lowest", requested=2)
    with pytest.raises(InputError, match="outside 1-16383"):
        acpi.choose_index([t], "lowest", requested=0)
    assert exit_code(NoRoomError("x")) == 3


def test_no_index_left():
    t = topo(laid_out(16383))
    with pytest.raises(NoRoomError, match="no unused ACPI index left above 16383"):
        acpi.choose_index([t], "after-last")
    assert acpi.choose_index([t], "lowest") == 1


def test_hotplug_index_applies_to_nics_of_acpi_domains_only():
    new_nic = parse_element(nic("52:54:00:00:00:99"))
    disk = parse_element("<disk type='file' device='disk'><target dev='vdb' bus='virtio'/></disk>")
    on = [topo(laid_out(1, 2))]
    off = [topo(relayout(laid_out(1, 2)).xml.replace("acpi-index='yes'", "acpi-index='no'"))]
    bare = [topo(domain(nic("52:54:00:00:00:01")))]
    assert acpi.enabled(on) and not acpi.enabled(off) and not acpi.enabled(bare)
    assert acpi.hotplug_index(on, new_nic, "lowest") == 3
    assert acpi.hotplug_index(off, new_nic, "lowest") is None
    assert acpi.hotplug_index(bare, new_nic, "lowest") is None
    assert acpi.hotplug_index(on, disk, "lowest") is None
    own = parse_element(nic("52:54:00:00:00:99", "<acpi index='5'/>"))
    assert acpi.hotplug_index(off, own, "lowest") == 5  # its own index, checked even so
    with pytest.raises(NoRoomError):
        acpi.hotplug_index(
            off, parse_element(nic("52:54:00:00:00:99", "<acpi index='2'/>")), "lowest"
        )


def with_index(xml: str, index: int | None) -> str:
    el = parse_element(xml)
    acpi.set_index(el, index)
    return etree.tostring(el, encoding="unicode")


def test_with_index_sets_or_adds_the_acpi_element():
    assert with_index("<interface type='user'/>", 3) == (
        '<interface type="user"><acpi index="3"/></interface>'
    )
    assert with_index("<interface><acpi index='9'/></interface>", 4) == (
        '<interface><acpi index="4"/></interface>'
    )
    assert with_index("<interface/>", None) == "<interface/>"


# --- hotplug() end to end against a fake libvirt domain ---------------------------------


class FakeConn:
    def __init__(self, lib: int = 9_000_000, qemu: int = 7_002_000):
        self.lib, self.qemu = lib, qemu

    def getLibVersion(self):  # noqa: N802 - libvirt's names
        return self.lib

    def getVersion(self):  # noqa: N802
        return self.qemu


class FakeDomain:
    """Just what planner.hotplug calls: a running, persistent domain with two XMLs."""

    def __init__(self, live: str, config: str, conn: FakeConn | None = None):
        self.live, self.config, self.conn = live, config, conn or FakeConn()
        self.attached: list[tuple[str, int]] = []

    def UUIDString(self):  # noqa: N802
        return "00000000-0000-0000-0000-00000000acpi"

    def isActive(self):  # noqa: N802
        return True

    def isPersistent(self):  # noqa: N802
        return True

    def XMLDesc(self, flags):  # noqa: N802
        return self.config if flags else self.live

    def connect(self):
        return self.conn

    def attachDeviceFlags(self, xml, flags):  # noqa: N802
        self.attached.append((xml, flags))


@pytest.fixture
def hotplug():
    pytest.importorskip("libvirt")
    from planner.attach import hotplug

    return hotplug


def test_hotplug_writes_the_index_and_names_the_nic_eno(hotplug):
    dom = FakeDomain(laid_out(1, 2), laid_out(1, 2))
    result = hotplug(dom, nic("52:54:00:00:00:99"))
    assert result.guest_name == "eno3"
    ((xml, flags),) = dom.attached
    assert '<acpi index="3"/>' in xml and 'slot="0x05"' in xml and flags == 3
    assert "(guest name eno3)" in result.summary()


def test_hotplug_default_policy_fills_the_hole_after_last_does_not(hotplug):
    dom = FakeDomain(laid_out(1, 3), laid_out(1, 3))  # eno2 was unplugged
    assert hotplug(dom, nic("52:54:00:00:00:99"), dry_run=True).guest_name == "eno2"
    assert hotplug(dom, nic("52:54:00:00:00:99"), dry_run=True, policy="after-last").guest_name == (
        "eno4"
    )


def test_hotplug_keeps_the_device_own_free_index_and_refuses_a_used_one(hotplug):
    dom = FakeDomain(laid_out(1, 2), laid_out(1, 2))
    result = hotplug(dom, nic("52:54:00:00:00:99", "<acpi index='12'/>"), dry_run=True)
    assert result.guest_name == "eno12" and '<acpi index="12"/>' in result.xml
    with pytest.raises(NoRoomError):
        hotplug(dom, nic("52:54:00:00:00:99", "<acpi index='1'/>"), dry_run=True)


def test_hotplug_on_a_domain_without_acpi_index_is_unchanged(hotplug):
    xml = laid_out(None, None).replace("acpi-index='yes'", "acpi-index='no'")
    dom = FakeDomain(xml, xml)
    result = hotplug(dom, nic("52:54:00:00:00:99"), dry_run=True)
    assert result.guest_name == "ens5" and "acpi" not in result.xml


@pytest.mark.parametrize("lib, qemu", [(7_002_000, 7_002_000), (9_000_000, 5_002_000)])
def test_hotplug_refuses_acpi_index_on_old_libvirt_or_qemu(hotplug, lib, qemu):
    dom = FakeDomain(laid_out(1, 2), laid_out(1, 2), FakeConn(lib, qemu))
    with pytest.raises(PlannerError, match=r"needs libvirt >= 7\.3\.0 and QEMU >= 6\.0\.0"):
        hotplug(dom, nic("52:54:00:00:00:99"))
    assert dom.attached == []
    xml = laid_out(None, None).replace("acpi-index='yes'", "acpi-index='no'")
    assert hotplug(FakeDomain(xml, xml, FakeConn(lib, qemu)), nic("52:54:00:00:00:99")).attached


def test_support_check_accepts_the_minimum_versions():
    pytest.importorskip("libvirt")
    from planner.virt import check_acpi_index_support

    check_acpi_index_support(FakeConn(7_003_000, 6_000_000))
    with pytest.raises(PlannerError, match="this host has libvirt 7.2.9 and QEMU 6.0.0"):
        check_acpi_index_support(FakeConn(7_002_009, 6_000_000))


CLASH = (
    "internal error: unable to execute QEMU command 'device_add': "
    "a PCI device with acpi-index = 3 already exist"
)


def clash():
    """libvirt's error for a duplicate index (a real libvirtError: only those are libvirt's)."""
    import libvirt

    class Clash(libvirt.libvirtError):
        def __init__(self):
            Exception.__init__(self, CLASH)

        def get_error_message(self):
            return CLASH

    return Clash()


def test_hotplug_retries_when_another_tool_takes_the_index_first(hotplug):
    """QEMU's own words for a duplicate index; planner re-reads the XML and moves on."""
    from planner.virt import is_address_clash

    assert is_address_clash(clash())
    dom = FakeDomain(laid_out(1, 2), laid_out(1, 2))
    raced = laid_out(1, 2, 3)
    attach = dom.attachDeviceFlags

    def first_loses(xml, flags):
        if not dom.attached and dom.live != raced:
            dom.live = dom.config = raced
            raise clash()
        attach(xml, flags)

    dom.attachDeviceFlags = first_loses
    result = hotplug(dom, nic("52:54:00:00:00:99"))
    assert result.guest_name == "eno4"
    ((xml, _),) = dom.attached
    assert '<acpi index="4"/>' in xml
