"""Minimal reproductions of what the libvirt oracle found outside issue 11's listed classes.

Each is a domain libvirt 9.0 defines; before its fix, planner's output was refused by
libvirt or was not a fixed point (P1/P2, see ``oracle.py``).
"""

from __future__ import annotations

import pytest
from domains import address, devices_of, find
from oracle import judge

from planner import relayout

SLOT_1 = "<address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/>"
SLOT_1B = "<address type='pci' domain='0x0000' bus='0x00' slot='0x1b' function='0x0'/>"
RNG = "<rng model='virtio'><backend model='random'>/dev/urandom</backend>{}</rng>"


def q35(*devices: str, features: str = "") -> str:
    body = "\n".join(f"    {d}" for d in devices)
    return f"""<domain type='qemu'>
  <name>regression</name>
  <memory unit='KiB'>131072</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>{features}
  <devices>
    <interface type='user'><model type='virtio'/></interface>
{body}
  </devices>
</domain>
"""


# q35: libvirt pins the primary video to 00:01.0 only while that slot is free
# (qemuDomainValidateDevicePCISlotsQ35); planner put it there anyway, next to the device
# that holds it: "Attempted double use of PCI Address 0000:00:01.0".
SLOT_1_TAKEN = {
    "rng-at-01-vga": q35(
        "<video><model type='vga'/></video>",
        RNG.format(SLOT_1),
    ),
    "virtio-iommu-at-01-virtio-video": q35(
        "<video><model type='virtio'/></video>",
        f"<iommu model='virtio'>{SLOT_1}</iommu>",
        features="<features><acpi/></features>",
    ),
}


@pytest.mark.parametrize("name", SLOT_1_TAKEN)
def test_q35_primary_video_does_not_take_slot_1_another_device_holds(name):
    out = relayout(SLOT_1_TAKEN[name]).xml
    assert address(find(out, "video")) != (0, 1, 0)


@pytest.mark.parametrize("name", SLOT_1_TAKEN)
def test_q35_primary_video_with_slot_1_taken_libvirt_judges(conn, name):
    verdict = judge(conn, SLOT_1_TAKEN[name])
    assert verdict.input_defined
    assert verdict.ok, verdict.explain()


# q35: likewise, libvirt gives 00:1b.0 to the first ICH9 sound card only while that slot is
# free; planner pinned every ICH9 sound card there.
SLOT_1B_TAKEN = {
    "two-ich9-sound-cards": q35("<sound model='ich9'/>", "<sound model='ich9'/>"),
    "rng-at-1b-ich9-sound": q35("<sound model='ich9'/>", RNG.format(SLOT_1B)),
}


@pytest.mark.parametrize("name", SLOT_1B_TAKEN)
def test_q35_ich9_sound_takes_1b_only_while_it_is_free(name):
    out = relayout(SLOT_1B_TAKEN[name]).xml
    at_1b = [el.tag for el in devices_of(out) if address(el) == (0, 0x1B, 0)]
    assert len(at_1b) == 1, at_1b


@pytest.mark.parametrize("name", SLOT_1B_TAKEN)
def test_q35_ich9_sound_with_1b_taken_libvirt_judges(conn, name):
    verdict = judge(conn, SLOT_1B_TAKEN[name])
    assert verdict.input_defined
    assert verdict.ok, verdict.explain()


# q35: the ICH9 USB2 controllers of index 0 go to 00:1d, or to 00:1a when a device holds 1d
# (libvirt, measured); planner put them on 1d next to that device.
USB2_1D_TAKEN = q35(
    "<controller type='usb' index='0' model='ich9-ehci1'/>",
    "<controller type='usb' index='0' model='ich9-uhci1'><master startport='0'/></controller>",
    "<controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller>",
    RNG.format(SLOT_1B.replace("0x1b", "0x1d")),
)


def test_q35_ich9_usb_group_goes_to_1a_while_a_device_holds_1d():
    out = relayout(USB2_1D_TAKEN).xml
    slots = {address(el) for el in devices_of(out) if el.tag == "controller"}
    assert {(0, 0x1A, 7), (0, 0x1A, 0), (0, 0x1A, 1)} <= slots


def test_q35_ich9_usb_group_with_1d_taken_libvirt_judges(conn):
    verdict = judge(conn, USB2_1D_TAKEN)
    assert verdict.input_defined
    assert verdict.ok, verdict.explain()
