"""Where a hot-plugged device goes: planner.hotplug.choose, without libvirt.

A running domain has two definitions, the live one and the persistent one. The
chooser gets both topologies; a slot counts as free only if it is free in both.
"""

from __future__ import annotations

import pytest

from planner.choice import choose
from planner.errors import InputError, NoRoomError
from planner.machines import read_topology
from planner.pci import PciAddress
from planner.xmldoc import Document


def layout(nic_first: int = 3, nic_slots: int = 8, other_first: int | None = None) -> str:
    """The <metadata> a relayout records (pc: NIC range, then the non-NIC block)."""
    if other_first is None:
        other_first = nic_first + nic_slots
    return f"""
  <metadata>
    <planner:layout xmlns:planner='urn:libvirt-nic-planner:layout:1' version='0.1.0' machine='pc'>
      <planner:policy nic-start='{nic_first}' nic-slots='{nic_slots}' acpi-index='no'/>
      <planner:nics bus='0x00' first-slot='{nic_first:#04x}' slots='{nic_slots}'/>
      <planner:others bus='0x00' first-slot='{other_first:#04x}'/>
    </planner:layout>
  </metadata>"""


def addr(slot: int) -> str:
    return f"<address type='pci' domain='0x0000' bus='0x00' slot='{slot:#04x}' function='0x0'/>"


def nic(slot: int) -> str:
    return f"<interface type='user'><model type='virtio'/>{addr(slot)}</interface>"


def disk(slot: int, dev: str = "vdb") -> str:
    return (
        f"<disk type='file' device='disk'><source file='/x/{dev}.raw'/>"
        f"<target dev='{dev}' bus='virtio'/>{addr(slot)}</disk>"
    )


def domain(*devices: str, metadata: str | None = None) -> str:
    """A pc domain as libvirt returns it: every PCI device has its address."""
    meta = layout() if metadata is None else metadata
    body = "\n    ".join(devices)
    return f"""<domain type='qemu'>
  <name>t</name>{meta}
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <devices>
    <controller type='pci' index='0' model='pci-root'/>
    <video><model type='vga'/>{addr(2)}</video>
    {body}
  </devices>
</domain>"""


# The non-NIC devices a relayout puts at the bottom of the non-NIC block (0x0b, 0x0c).
OTHERS = (
    f"<controller type='virtio-serial' index='0'>{addr(0x0B)}</controller>",
    f"<memballoon model='virtio'>{addr(0x0C)}</memballoon>",
)


def topo(xml: str):
    return read_topology(Document.parse(xml))


def slot_for(kind: str, *xmls: str, policy: str = "lowest") -> int:
    return choose([topo(x) for x in xmls], kind, policy).address.slot


# --- NICs: the NIC range ------------------------------------------------------------


def test_a_nic_goes_to_the_first_free_slot_of_the_nic_range():
    assert slot_for("interface", domain(nic(3), nic(4), *OTHERS)) == 5


def test_the_first_nic_of_a_domain_without_nics_goes_to_the_start_of_the_range():
    assert slot_for("interface", domain(*OTHERS)) == 3
    assert slot_for("interface", domain(*OTHERS), policy="after-last") == 3


def test_the_nic_range_can_start_elsewhere():
    xml = domain(nic(6), *OTHERS, metadata=layout(nic_first=6, nic_slots=4))
    assert slot_for("interface", xml) == 7


def test_lowest_fills_the_hole_a_detached_nic_left():
    xml = domain(nic(3), nic(5), nic(6), *OTHERS)
    assert slot_for("interface", xml, policy="lowest") == 4


def test_after_last_skips_holes_and_goes_after_the_highest_nic():
    xml = domain(nic(3), nic(5), nic(6), *OTHERS)
    assert slot_for("interface", xml, policy="after-last") == 7


def test_a_slot_used_only_in_the_config_is_not_free():
    live = domain(nic(3), nic(5), *OTHERS)
    config = domain(nic(3), nic(4), nic(5), *OTHERS)  # e.g. attached with --config only
    assert slot_for("interface", live, config) == 6
    assert slot_for("interface", config, live) == 6


def test_a_slot_used_only_live_is_not_free():
    # e.g. a NIC detached live+config whose live unplug the guest never completed
    live = domain(nic(3), nic(4), nic(5), *OTHERS)
    config = domain(nic(3), nic(5), *OTHERS)
    assert slot_for("interface", live, config) == 6


def test_after_last_counts_the_highest_nic_of_either_definition():
    live = domain(nic(3), nic(4), *OTHERS)
    config = domain(nic(3), nic(4), nic(7), *OTHERS)
    assert slot_for("interface", live, config, policy="after-last") == 8


def test_a_non_nic_device_in_the_nic_range_takes_its_slot_from_nics():
    # e.g. a disk someone attached with plain `virsh attach-device`
    assert slot_for("interface", domain(nic(3), nic(4), disk(5), *OTHERS)) == 6


def test_a_full_nic_range_raises_no_room():
    xml = domain(nic(3), nic(4), nic(5), *OTHERS, metadata=layout(nic_slots=3, other_first=0x0B))
    with pytest.raises(NoRoomError, match=r"NIC range \(slots 0x03-0x05\) has no free slot"):
        choose([topo(xml)], "interface")


def test_a_nic_never_spills_out_of_a_full_range_into_free_slots_above_it():
    xml = domain(nic(3), nic(4), nic(5), metadata=layout(nic_slots=3))  # 0x06.. all free
    with pytest.raises(NoRoomError):
        choose([topo(xml)], "interface")


def test_after_last_has_no_room_when_the_highest_nic_ends_the_range_even_with_a_hole():
    xml = domain(nic(3), nic(5), *OTHERS, metadata=layout(nic_slots=3, other_first=0x0B))
    assert slot_for("interface", xml, policy="lowest") == 4
    with pytest.raises(NoRoomError, match="after the last NIC"):
        choose([topo(xml)], "interface", "after-last")


def test_the_range_is_full_when_the_last_slot_is_taken_in_only_one_definition():
    live = domain(nic(3), nic(4), *OTHERS, metadata=layout(nic_slots=3, other_first=0x0B))
    config = domain(nic(3), nic(4), nic(5), *OTHERS, metadata=layout(nic_slots=3, other_first=0x0B))
    with pytest.raises(NoRoomError):
        choose([topo(live), topo(config)], "interface")


# --- other PCI devices: the non-NIC block -------------------------------------------


def test_a_non_nic_device_goes_above_the_highest_non_nic_device():
    assert slot_for("disk", domain(nic(3), nic(4), *OTHERS)) == 0x0D


def test_a_non_nic_device_skips_holes_in_the_non_nic_block():
    xml = domain(nic(3), *OTHERS, disk(0x0F))  # 0x0d and 0x0e are free, but below 0x0f
    assert slot_for("disk", xml) == 0x10


def test_a_non_nic_device_in_an_empty_block_goes_to_its_first_slot():
    assert slot_for("disk", domain(nic(3))) == 0x0B


def test_a_non_nic_device_never_goes_into_the_nic_range():
    assert slot_for("disk", domain(*OTHERS)) == 0x0D  # NIC slots 3..10 are all free


def test_a_non_nic_device_counts_devices_present_in_only_one_definition():
    live = domain(nic(3), *OTHERS)
    config = domain(nic(3), *OTHERS, disk(0x0D))
    assert slot_for("disk", live, config) == 0x0E


def test_a_full_non_nic_block_raises_no_room():
    xml = domain(nic(3), *OTHERS, disk(0x1F))
    with pytest.raises(NoRoomError, match="no free slot above the other devices"):
        choose([topo(xml)], "disk")


# --- a device that brings its own address -------------------------------------------


def test_a_free_requested_address_is_kept_even_outside_the_planned_places():
    xml = domain(nic(3), nic(4), *OTHERS)
    choice = choose([topo(xml)], "interface", requested=PciAddress(0, 0, 0x15, 0))
    assert choice.address == PciAddress(0, 0, 0x15, 0)


def test_a_requested_address_that_is_taken_raises_no_room():
    live = domain(nic(3), nic(4), *OTHERS)
    config = domain(nic(3), nic(4), nic(5), *OTHERS)
    with pytest.raises(NoRoomError, match="0000:00:05.0 is already in use"):
        choose([topo(live), topo(config)], "interface", requested=PciAddress(0, 0, 5, 0))


# --- a domain that was never laid out -----------------------------------------------


RAW = domain(
    nic(3),
    nic(4),
    f"<controller type='virtio-serial' index='0'>{addr(5)}</controller>",
    disk(6, "vda"),
    f"<memballoon model='virtio'>{addr(7)}</memballoon>",
    metadata="",
)


def test_without_a_layout_a_nic_takes_the_lowest_free_slot_after_the_first_nic_and_warns():
    choice = choose([topo(RAW)], "interface")
    assert choice.address.slot == 8
    assert len(choice.warnings) == 1
    assert "no planner layout" in choice.warnings[0]
    assert "planner relayout --domain NAME --define" in choice.warnings[0]


def test_without_a_layout_a_non_nic_device_goes_above_every_device():
    assert slot_for("disk", RAW) == 8


def test_a_layout_recorded_by_a_relayout_gives_no_warning():
    assert choose([topo(domain(nic(3), *OTHERS))], "interface").warnings == ()


def test_an_unknown_policy_is_an_input_error():
    with pytest.raises(InputError, match="unknown policy"):
        choose([topo(domain(nic(3)))], "interface", "highest")
