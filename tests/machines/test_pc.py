"""The i440fx (pc) layout, through planner.relayout: where each device ends up, and why."""

from __future__ import annotations

import re

import pytest
from domains import (
    SAMPLES,
    address,
    device,
    devices_of,
    disk,
    find,
    layout_of,
    multifunction,
    nic,
    nic_slots,
    pc_domain,
    pci,
    slot_of,
    tree,
)
from lxml import etree

from planner import relayout
from planner.errors import ImpossibleError, InputError, UnsupportedError

VIDEO = "<video>\n  <model type='vga'/>\n</video>"
BALLOON = "<memballoon model='virtio'/>"
WATCHDOG = "<watchdog model='i6300esb' action='reset'/>"
CHANNEL = (
    "<channel type='unix'>\n  <target type='virtio' name='org.qemu.guest_agent.0'/>\n</channel>"
)
USB2 = [
    "<controller type='usb' index='0' model='ich9-ehci1'/>",
    *(
        f"<controller type='usb' index='0' model='ich9-uhci{n}'>\n"
        f"  <master startport='{2 * n - 2}'/>\n</controller>"
        for n in (1, 2, 3)
    ),
]
RNG = "<rng model='virtio'>\n  <backend model='random'>/dev/urandom</backend>\n</rng>"
PIIX3 = [
    "<controller type='ide' index='0'/>",
    "<controller type='usb' index='0' model='piix3-uhci'/>",
]


def out(*devices: str, **overrides) -> str:
    return relayout(pc_domain(*devices), **overrides).xml


def bsf(slot: int, function: int = 0, bus: int = 0) -> tuple[int, int, int]:
    return (bus, slot, function)


# --- the layout itself -------------------------------------------------------------------


def test_cloudstack_sample_puts_nics_at_3_and_4_and_the_rest_high_in_original_order():
    xml = relayout((SAMPLES / "cloudstack-2nic.xml").read_bytes()).xml
    assert nic_slots(xml) == [bsf(3), bsf(4)]
    assert slot_of(xml, "controller", type="virtio-serial") == bsf(0x0B)
    assert slot_of(xml, "disk", target_dev="vda") == bsf(0x0C)
    assert slot_of(xml, "memballoon") == bsf(0x0D)
    assert slot_of(xml, "watchdog") == bsf(0x0E)
    assert slot_of(xml, "video") == bsf(2)


def test_nics_take_consecutive_slots_in_document_order_whatever_their_old_slots():
    xml = out(
        VIDEO,
        nic(9, mac="52:54:00:00:00:01"),
        disk("vda", 3),
        nic(5, mac="52:54:00:00:00:02"),
        nic(model="e1000", mac="52:54:00:00:00:03"),
    )
    assert nic_slots(xml) == [bsf(3), bsf(4), bsf(5)]
    assert slot_of(xml, "disk") == bsf(0x0B)


def test_every_nic_kind_is_a_nic_hostdev_interfaces_too():
    hostdev_nic = (
        "<interface type='hostdev' managed='yes'>\n  <source>\n"
        "    <address type='pci' domain='0x0000' bus='0x03' slot='0x10' "
        "function='0x1'/>\n"
        "  </source>\n</interface>"
    )
    xml = out(VIDEO, nic(kind="user"), hostdev_nic, nic(kind="bridge", model="rtl8139"))
    assert nic_slots(xml) == [bsf(3), bsf(4), bsf(5)]
    assert "<address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x1'/>" in xml


def test_addressed_devices_keep_their_relative_order_in_the_high_block():
    xml = out(
        VIDEO,
        nic(3),
        device("watchdog", "model='i6300esb'", slot=5),
        disk("vdb", 6),
        device("memballoon", "model='virtio'", slot=9),
        device("controller", "type='virtio-serial' index='0'", slot=0x10),
    )
    assert slot_of(xml, "watchdog") == bsf(0x0B)
    assert slot_of(xml, "disk") == bsf(0x0C)
    assert slot_of(xml, "memballoon") == bsf(0x0D)
    assert slot_of(xml, "controller", type="virtio-serial") == bsf(0x0E)


def test_unaddressed_devices_keep_the_order_libvirt_would_give_them():
    # libvirt assigns by kind (qemuDomainAssignDevicePCISlots): sound, controllers, disks,
    # hostdevs, memballoon, rng, watchdog ... whatever order the document has.
    xml = out(
        VIDEO,
        WATCHDOG,
        RNG,
        BALLOON,
        disk("vda"),
        "<controller type='scsi' index='0' model='virtio-scsi'/>",
        "<sound model='ich6'/>",
        nic(),
    )
    assert slot_of(xml, "sound") == bsf(0x0B)
    assert slot_of(xml, "controller", type="scsi") == bsf(0x0C)
    assert slot_of(xml, "disk") == bsf(0x0D)
    assert slot_of(xml, "memballoon") == bsf(0x0E)
    assert slot_of(xml, "rng") == bsf(0x0F)
    assert slot_of(xml, "watchdog") == bsf(0x10)


def test_a_hostdev_nic_takes_its_libvirt_slot_among_the_hostdevs_not_among_the_nics():
    # libvirt: NIC 3, virtio-serial 4, (rng 5), the hostdev NIC 6: so virtio-serial scans first
    hostdev_nic = device(
        "interface",
        "type='hostdev' managed='yes'",
        body=(
            "<source>\n  <address type='pci' domain='0x0000' bus='0x02' slot='0x10'"
            " function='0x1'/>\n</source>"
        ),
    )
    xml = out(
        VIDEO,
        nic(),
        hostdev_nic,
        "<controller type='virtio-serial' index='0'/>",
        device(
            "rng", "model='virtio'", slot=5, body="<backend model='random'>/dev/urandom</backend>"
        ),
    )
    assert nic_slots(xml) == [bsf(3), bsf(4)]
    assert slot_of(xml, "controller", type="virtio-serial") == bsf(0x0B)
    assert slot_of(xml, "rng") == bsf(0x0C)


def test_an_unaddressed_device_goes_where_libvirts_first_fit_puts_it_among_addressed_ones():
    # libvirt would give vda slot 3 and its implicit memballoon slot 4, both before vdb at 5.
    xml = out(VIDEO, disk("vdb", 5), disk("vda"))
    assert slot_of(xml, "disk", target_dev="vda") == bsf(0x0B)
    assert slot_of(xml, "memballoon") == bsf(0x0C)
    assert slot_of(xml, "disk", target_dev="vdb") == bsf(0x0D)


def test_unaddressed_virtio_disks_stay_in_target_order_vda_before_vdb():
    xml = out(VIDEO, disk("vda"), disk("vdb"), nic())
    assert slot_of(xml, "disk", target_dev="vda") == bsf(0x0B)
    assert slot_of(xml, "disk", target_dev="vdb") == bsf(0x0C)


def test_unaddressed_virtio_disks_written_vdb_first_still_scan_vda_first():
    # libvirt sorts disks by target name when it parses a domain, so vda gets the lower
    # slot and the guest (which names virtio disks in scan order) sees it as vda.
    xml = out(VIDEO, disk("vdb"), disk("vdaa"), disk("vda"))
    assert slot_of(xml, "disk", target_dev="vda") == bsf(0x0B)
    assert slot_of(xml, "disk", target_dev="vdb") == bsf(0x0C)
    assert slot_of(xml, "disk", target_dev="vdaa") == bsf(0x0D)


def test_chipset_devices_stay_at_slot_1_and_the_primary_video_at_slot_2():
    xml = out(
        *PIIX3,
        "<video>\n  <model type='qxl'/>\n</video>",
        "<video>\n  <model type='vga' primary='yes'/>\n</video>",
        nic(),
    )
    assert slot_of(xml, "controller", type="ide") == bsf(1, 1)
    assert slot_of(xml, "controller", type="usb") == bsf(1, 2)
    assert slot_of(xml, "video", model_primary="yes") == bsf(2)
    assert slot_of(xml, "memballoon") == bsf(0x0B)  # libvirt assigns the balloon before videos
    assert slot_of(xml, "video", model_type="qxl") == bsf(0x0C)  # a secondary video is "other"


def test_a_primary_video_displaced_from_slot_2_shifts_the_others_as_libvirt_does():
    # libvirt gives the video the first free slot, 3, then scsi0 5, scsi1 6, balloon 7
    qxl = device("video", body="<model type='qxl'/>", slot=4)
    xml = out(
        nic(2),
        "<controller type='scsi' index='0' model='virtio-scsi'/>",
        "<controller type='scsi' index='1' model='virtio-scsi'/>",
        VIDEO,
        qxl,
    )
    assert slot_of(xml, "video", model_type="vga") == bsf(2)
    assert slot_of(xml, "video", model_type="qxl") == bsf(0x0B)
    assert slot_of(xml, "controller", index="0") == bsf(0x0C)
    assert slot_of(xml, "controller", index="1") == bsf(0x0D)
    assert slot_of(xml, "memballoon") == bsf(0x0E)


def test_the_nic_range_always_leaves_room_for_one_more_nic():
    many = [nic(mac=f"52:54:00:00:00:{i:02x}") for i in range(9)]
    result = relayout(pc_domain(VIDEO, disk("vda"), *many))
    assert result.plan.layout.nic_capacity == 10  # 9 NICs + 1, above the default of 8
    assert nic_slots(result.xml) == [bsf(s) for s in range(3, 12)]
    assert slot_of(result.xml, "disk") == bsf(13)


def test_the_layout_is_recorded_in_metadata():
    lay = layout_of(out(VIDEO, nic(), nic()))
    ns = "{urn:libvirt-nic-planner:layout:1}"
    assert lay.get("machine") == "pc"
    assert lay.find(f"{ns}policy").attrib == {
        "nic-start": "3",
        "nic-slots": "8",
        "acpi-index": "no",
    }
    assert lay.find(f"{ns}nics").attrib == {"bus": "0x00", "first-slot": "0x03", "slots": "8"}
    assert lay.find(f"{ns}others").attrib == {"bus": "0x00", "first-slot": "0x0b"}


# --- multifunction devices ---------------------------------------------------------------


def test_ich9_usb_companions_without_addresses_share_one_slot_at_functions_7_0_1_2():
    xml = out(VIDEO, nic(), *USB2)
    usb = {el.get("model"): el for el in devices_of(xml) if el.tag == "controller"}
    assert {m: address(el) for m, el in usb.items()} == {
        "ich9-ehci1": bsf(0x0B, 7),
        "ich9-uhci1": bsf(0x0B, 0),
        "ich9-uhci2": bsf(0x0B, 1),
        "ich9-uhci3": bsf(0x0B, 2),
    }
    assert [m for m, el in usb.items() if multifunction(el)] == ["ich9-uhci1"]


def test_an_addressed_ich9_group_moves_as_a_whole_and_keeps_its_functions():
    addressed = [
        device("controller", "type='usb' index='0' model='ich9-ehci1'", slot=6, function=7),
        device(
            "controller",
            "type='usb' index='0' model='ich9-uhci1'",
            slot=6,
            function=0,
            multifunction=True,
        ),
        device("controller", "type='usb' index='0' model='ich9-uhci2'", slot=6, function=1),
        device("controller", "type='usb' index='0' model='ich9-uhci3'", slot=6, function=2),
    ]
    xml = out(
        VIDEO, nic(3), disk("vda", 5), *addressed, device("memballoon", "model='virtio'", slot=7)
    )
    usb = {el.get("model"): el for el in devices_of(xml) if el.tag == "controller"}
    assert slot_of(xml, "disk") == bsf(0x0B)
    assert {m: address(el) for m, el in usb.items()} == {
        "ich9-ehci1": bsf(0x0C, 7),
        "ich9-uhci1": bsf(0x0C, 0),
        "ich9-uhci2": bsf(0x0C, 1),
        "ich9-uhci3": bsf(0x0C, 2),
    }
    assert [m for m, el in usb.items() if multifunction(el)] == ["ich9-uhci1"]
    assert slot_of(xml, "memballoon") == bsf(0x0D)


def test_a_multifunction_nic_slot_is_split_into_one_slot_per_nic():
    first = nic(5, mac="52:54:00:00:00:01").replace("'0x0'/>", "'0x0' multifunction='on'/>")
    second = nic(5, mac="52:54:00:00:00:02").replace("function='0x0'", "function='0x1'")
    xml = out(VIDEO, first, second)
    assert nic_slots(xml) == [bsf(3), bsf(4)]
    assert "multifunction" not in xml


# --- what must not move, and what moves with something else ------------------------------


def test_a_hostdevs_source_address_is_never_touched():
    source = "<address domain='0x0000' bus='0x06' slot='0x12' function='0x5'/>"
    hostdev = (
        f"<hostdev mode='subsystem' type='pci' managed='yes'>\n  <source>\n    {source}\n"
        f"  </source>\n  {pci(4)}\n</hostdev>"
    )
    xml = out(VIDEO, nic(3), hostdev)
    assert f"<source>\n        {source}\n      </source>" in xml
    assert slot_of(xml, "hostdev") == bsf(0x0B)


def test_non_pci_addresses_are_left_exactly_as_written():
    drive = "<address type='drive' controller='0' bus='1' target='0' unit='0'/>"
    serial = "<address type='virtio-serial' controller='0' bus='0' port='1'/>"
    usb = "<address type='usb' bus='0' port='1'/>"
    xml = out(
        VIDEO,
        nic(),
        device(
            "disk", "type='file' device='cdrom'", body=f"<target dev='hdc' bus='ide'/>\n{drive}"
        ),
        "<controller type='virtio-serial' index='0'/>",
        device("channel", "type='unix'", body=f"<target type='virtio' name='a.b'/>\n{serial}"),
        f"<input type='tablet' bus='usb'>\n  {usb}\n</input>",
    )
    for addr in (drive, serial, usb):
        assert addr in xml
    assert address(find(xml, "input")) is None


def test_devices_behind_a_bridge_stay_and_a_nic_behind_it_moves_to_bus_0():
    xml = relayout((SAMPLES / "pci-bridge.xml").read_bytes()).xml
    assert slot_of(xml, "disk", target_dev="vdb") == bsf(1, bus=1)
    assert slot_of(xml, "controller", type="scsi") == bsf(2, bus=1)
    assert nic_slots(xml) == [bsf(3), bsf(4)]
    assert slot_of(xml, "controller", type="pci", index="1") == bsf(0x0B)  # the bridge itself
    assert slot_of(xml, "disk", target_dev="vda") == bsf(0x0C)


def test_unaddressed_pci_bridges_take_slots_in_index_order_whatever_the_document_order():
    xml = out(
        VIDEO,
        nic(),
        "<controller type='pci' index='2' model='pci-bridge'/>",
        "<controller type='pci' index='1' model='pci-bridge'/>",
    )
    assert slot_of(xml, "controller", type="pci", index="1") == bsf(0x0B)
    assert slot_of(xml, "controller", type="pci", index="2") == bsf(0x0C)


def test_a_console_that_mirrors_a_pci_serial_moves_with_it():
    serial = device(
        "serial",
        "type='pty'",
        slot=5,
        body="<target type='pci-serial' port='0'>\n  <model name='pci-serial'/>\n</target>",
    )
    console = device("console", "type='pty'", slot=5, body="<target type='serial' port='0'/>")
    xml = out(VIDEO, nic(3), disk("vda", 4), serial, console)
    assert slot_of(xml, "disk") == bsf(0x0B)
    assert slot_of(xml, "serial") == bsf(0x0C)
    assert slot_of(xml, "console") == bsf(0x0C)


def test_a_laid_out_domain_keeps_a_nic_where_it_is_when_an_earlier_one_was_unplugged():
    first = relayout(
        pc_domain(
            VIDEO,
            nic(mac="52:54:00:00:00:01"),
            nic(mac="52:54:00:00:00:02"),
            nic(mac="52:54:00:00:00:03"),
        )
    ).xml
    root = tree(first)
    devs = root.find("devices")
    devs.remove([el for el in devs if el.tag == "interface"][1])  # ens4 unplugged
    again = relayout(etree.tostring(root, encoding="unicode")).xml
    assert nic_slots(again) == [bsf(3), bsf(5)]


# --- devices libvirt would add by itself -------------------------------------------------


def test_without_a_memballoon_an_explicit_virtio_one_is_added_high():
    xml = out(VIDEO, nic(), disk("vda"))
    assert slot_of(xml, "memballoon", model="virtio") == bsf(0x0C)


def test_memballoon_model_none_is_left_alone():
    xml = out(VIDEO, nic(), "<memballoon model='none'/>")
    assert len([el for el in devices_of(xml) if el.tag == "memballoon"]) == 1
    assert address(find(xml, "memballoon")) is None


def test_a_virtio_channel_without_its_controller_gets_an_explicit_virtio_serial_high():
    xml = out(VIDEO, nic(), CHANNEL)
    assert slot_of(xml, "controller", type="virtio-serial", index="0") == bsf(0x0B)
    assert slot_of(xml, "memballoon") == bsf(0x0C)


def test_implicit_controllers_come_in_libvirts_order_scsi_sata_then_virtio_serial():
    sata = "<disk type='file' device='disk'>\n  <target dev='sdb' bus='sata'/>\n</disk>"
    scsi = "<disk type='file' device='disk'>\n  <target dev='sda' bus='scsi'/>\n</disk>"
    xml = out(VIDEO, nic(), CHANNEL, sata, scsi)
    assert slot_of(xml, "controller", type="scsi") == bsf(0x0B)
    assert slot_of(xml, "controller", type="sata") == bsf(0x0C)
    assert slot_of(xml, "controller", type="virtio-serial") == bsf(0x0D)


def test_scsi_controllers_below_the_highest_one_used_are_made_explicit_too():
    # libvirt adds SCSI controllers 0..max; unaddressed sdh is on controller 1 (7 per controller)
    scsi = "<disk type='file' device='disk'>\n  <target dev='sdh' bus='scsi'/>\n</disk>"
    xml = out(VIDEO, nic(), scsi)
    assert slot_of(xml, "controller", type="scsi", index="0") == bsf(0x0B)
    assert slot_of(xml, "controller", type="scsi", index="1") == bsf(0x0C)


def test_a_domain_without_devices_gets_its_implicit_memballoon_pinned():
    xml = relayout(
        "<domain type='kvm'><name>a</name><memory>1</memory>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
    ).xml
    assert slot_of(xml, "memballoon") == bsf(0x0B)


# --- policy ------------------------------------------------------------------------------


def test_nic_start_moves_the_nic_range_and_the_block_above_it():
    result = relayout(pc_domain(VIDEO, nic(), nic(), disk("vda")), nic_start=5)
    assert nic_slots(result.xml) == [bsf(5), bsf(6)]
    assert slot_of(result.xml, "disk") == bsf(5 + 8)
    assert (
        layout_of(result.xml).find("{urn:libvirt-nic-planner:layout:1}policy").get("nic-start")
        == "5"
    )


def test_nic_slots_sets_the_capacity_of_the_nic_range():
    assert slot_of(out(VIDEO, nic(), disk("vda"), nic_slots=12), "disk") == bsf(3 + 12)
    assert slot_of(out(VIDEO, nic(), disk("vda"), nic_slots=4), "disk") == bsf(3 + 4)


def test_nic_slots_below_the_nic_count_still_keeps_one_free_nic_slot():
    result = relayout(pc_domain(VIDEO, nic(), nic(), nic(), disk("vda")), nic_slots=1)
    assert result.plan.layout.nic_capacity == 4
    assert slot_of(result.xml, "disk") == bsf(3 + 4)


def test_a_second_relayout_keeps_the_recorded_policy():
    first = relayout(pc_domain(VIDEO, nic(), disk("vda")), nic_start=4, nic_slots=5).xml
    second = relayout(first)
    assert second.xml == first
    assert not second.changed
    assert (second.plan.policy.nic_start, second.plan.policy.nic_slots) == (4, 5)


def test_relayout_is_idempotent_on_every_sample():
    for sample in sorted(SAMPLES.glob("*.xml")):
        once = relayout(sample.read_bytes()).xml
        assert relayout(once).xml == once, sample.name


# --- errors ------------------------------------------------------------------------------


def test_two_devices_claiming_one_address_are_refused():
    with pytest.raises(InputError, match="both claim PCI address 0000:00:05.0"):
        relayout(pc_domain(nic(5), disk("vda", 5)))


@pytest.mark.parametrize(
    "attrs, message",
    [
        ("slot='0x20'", "out of range"),
        ("slot='32'", "out of range"),
        ("slot='0x05' function='8'", "out of range"),
        ("slot='five'", "is not a number"),
        ("slot='-1'", "is negative"),
        ("bus='0x100' slot='0x05'", "out of range"),
    ],
)
def test_pci_address_values_out_of_range_are_refused(attrs, message):
    bad = device(
        "disk",
        "type='file' device='disk'",
        body=f"<target dev='vda' bus='virtio'/>\n<address type='pci' {attrs}/>",
    )
    with pytest.raises(InputError, match=message):
        relayout(pc_domain(bad))


def test_an_address_on_a_bus_no_controller_provides_gets_the_bridges_libvirt_adds():
    """libvirt adds pci-bridges 1 and 2 for a disk on bus 2 (issue 11, class 8): planner
    writes them out, placed above the NIC range, and leaves the disk where it is."""
    out = relayout(pc_domain(disk("vda", 1, bus=2))).xml
    bridges = re.findall(
        r"<controller type='pci' index='(\d)' model='pci-bridge'>\s*"
        r"<address type='pci' domain='0x0000' bus='0x00' slot='(0x..)'",
        out,
    )
    assert [i for i, _ in bridges] == ["1", "2"]
    assert all(int(slot, 16) >= 11 for _, slot in bridges)
    assert "bus='0x02' slot='0x01'" in out


def test_a_nic_range_that_does_not_fit_on_bus_0_is_refused():
    with pytest.raises(ImpossibleError, match="--nic-slots 40"):
        relayout(pc_domain(VIDEO, nic()), nic_slots=40)


def test_a_nic_start_on_the_video_slot_is_refused():
    with pytest.raises(ImpossibleError, match="collides with the primary video"):
        relayout(pc_domain(VIDEO, nic()), nic_start=2)


def test_a_nic_start_so_high_that_no_nic_fits_is_refused():
    with pytest.raises(ImpossibleError):
        relayout(pc_domain(VIDEO, nic(), disk("vda")), nic_start=0x1F)


@pytest.mark.parametrize(
    "arch, machine",
    [
        ("aarch64", "virt"),
        ("ppc64le", "pseries"),
        ("s390x", "s390-ccw-virtio"),
        ("x86_64", "microvm"),
        ("x86_64", "isapc"),
    ],
)
def test_other_machine_types_are_not_supported_yet(arch, machine):
    with pytest.raises(UnsupportedError, match="not supported yet"):
        relayout(pc_domain(nic(), arch=arch, machine=machine))


def test_a_root_that_is_not_a_domain_is_refused():
    with pytest.raises(InputError, match="expected <domain>"):
        relayout("<network><name>default</name></network>")


def test_a_slot_written_with_a_leading_zero_is_octal_as_libvirt_reads_it():
    """libvirt parses address attributes with strtoul base 0: slot='010' is slot 8."""
    from planner.pci import parse_number

    assert parse_number("010", "slot") == 8
    assert parse_number("0x10", "slot") == 16
    assert parse_number("10", "slot") == 10


@pytest.mark.parametrize(
    "text", ["0x-1", "0x 1", "0x_1", "1_0", "0x", "09", "", "0x0x5", "0o5", " 5 ", "5 ", "-0"]
)
def test_numbers_libvirt_would_not_read_are_refused(text):
    from planner.errors import InputError
    from planner.pci import parse_number

    with pytest.raises(InputError):
        parse_number(text, "slot")


@pytest.mark.parametrize("text", ["+1", " 1", "\t1"])
def test_a_sign_or_leading_space_is_read_as_libvirts_strtoul_reads_it(text):
    """libvirt 9.0 defines slot='+5' and slot=' 5' as slot 5 (strtoul skips leading space
    and takes a '+'; measured with virsh define): planner must not refuse them."""
    from planner.pci import parse_index, parse_number

    assert parse_number(text, "slot") == 1
    assert parse_index(text) == 1


def test_a_controller_index_is_decimal_as_libvirt_reads_it():
    """virDomainControllerDefParseXML reads index base 10: '010' is 10, '0x3' is refused."""
    from planner.errors import InputError
    from planner.pci import parse_index

    assert parse_index("010") == 10
    with pytest.raises(InputError, match="index '0x3'"):
        parse_index("0x3")


def test_32_nics_fill_the_nic_range_and_the_rest_go_behind_a_bridge_with_a_warning():
    """libvirt places 32 NICs by adding a pci-bridge (issue 11, class 8): planner gives the
    NIC range all of bus 0 it can, pins the bridge in slot 31 and says so."""
    result = relayout(pc_domain(*[nic() for _ in range(32)]))
    slots = nic_slots(result.xml)
    assert slots[:28] == [(0, s, 0) for s in range(3, 31)]
    assert slots[28:] == [(1, s, 0) for s in range(1, 5)]
    assert "<controller type='pci' index='1' model='pci-bridge'>" in result.xml
    assert any("4 NIC(s) do not fit on bus 0" in w for w in result.plan.warnings)
    again = relayout(result.xml)
    assert not again.changed, "a second relayout moves nothing"


def test_105_other_devices_grow_as_many_bridges_as_libvirt_would():
    rng = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
    result = relayout(pc_domain(nic(), *[rng] * 105))
    bridges = re.findall(r"index='(\d+)' model='pci-bridge'", result.xml)
    assert bridges == ["1", "2", "3"]
    assert nic_slots(result.xml) == [(0, 3, 0)]
    assert not relayout(result.xml).changed


def test_a_controller_index_with_a_leading_zero_does_not_break_adding_a_bridge():
    """Issue 11, class 10: with --nic-slots 26 on a crowded domain the new pci-bridge is
    inserted after the controllers by index, and index='01' (decimal 1 for libvirt) was
    read with int(.., 0): a ValueError traceback."""
    rng = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
    bridge = device("controller", "type='pci' index='01' model='pci-bridge'", slot=0x1F)
    behind = [device("rng", "model='virtio'", slot=s, bus=1) for s in range(1, 32)]
    result = relayout(pc_domain(nic(), bridge, *behind, *[rng] * 10), nic_slots=26)
    assert "<controller type='pci' index='2' model='pci-bridge'>" in result.xml
    assert not relayout(result.xml).changed


def test_when_bus_0_has_no_slot_left_for_a_second_bridge_it_goes_behind_the_first():
    """29 NICs and 30 other devices (with a video): bus 0 holds the NIC range and one
    bridge; libvirt then plugs the next bridge into the last one (first-fit)."""
    rng = "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
    video = "<video><model type='vga'/></video>"
    result = relayout(pc_domain(video, *[nic() for _ in range(29)], *[rng] * 30))
    assert re.search(
        r"index='2' model='pci-bridge'>\s*<address type='pci' domain='0x0000' bus='0x01' "
        r"slot='0x1f'",
        result.xml,
    )
    assert not relayout(result.xml).changed
