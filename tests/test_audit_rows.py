"""The pure audit: a domain's live and persistent XML in, one typed row out (no libvirtd).

The XML is written as libvirt writes it (every PCI device addressed). tests/libvirt/
test_audit.py checks the same predictions against libvirtd itself, and
tests/e2e/test_audit_names.py against the names a booted guest reports.
"""

from __future__ import annotations

import pytest
from domains import device, disk, nic, pc_domain

from planner.audit import AT_RISK, FULL, OK, UNSUPPORTED, audit_domain, next_in_sequence
from planner.cli.audit import exit_status, table
from planner.relayout import relayout

MAC1, MAC2, MAC3 = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"
VGA = device("video", body="<model type='vga'/>", slot=2)


def libvirt_default(*extra: str) -> str:
    """The small VM as libvirt lays it out: NICs 3-4, then the other devices at 5-8."""
    return pc_domain(
        nic(3, mac=MAC1, kind="user"),
        nic(4, mac=MAC2, kind="user"),
        device("controller", "type='virtio-serial' index='0'", slot=5),
        disk("vda", slot=6),
        VGA,
        device("memballoon", "model='virtio'", slot=7),
        device("watchdog", "model='i6300esb' action='none'", slot=8),
        *extra,
    )


@pytest.mark.parametrize(
    "names,expected",
    [
        (["ens3", "ens4"], "ens5"),
        (["ens4", "ens3"], "ens5"),
        (["enp1s0", "enp2s0"], "enp3s0"),
        (["eno1", "eno2"], "eno3"),
        (["ens3", "ens10"], "ens11"),
        ([], None),
        (["?"], None),
    ],
)
def test_the_next_name_in_sequence(names, expected):
    assert next_in_sequence(names) == expected


def test_libvirt_default_layout_is_at_risk_ens9():
    xml = libvirt_default()
    row = audit_domain("web1", xml, xml, state="running")
    assert [(n.guest_name, n.mac, str(n.address), n.where) for n in row.nics] == [
        ("ens3", MAC1, "0000:00:03.0", "both"),
        ("ens4", MAC2, "0000:00:04.0", "both"),
    ]
    assert (row.machine, row.layout, row.expected) == ("pc", None, "ens5")
    assert (row.virsh_live.guest_name, row.virsh_config.guest_name) == ("ens9", "ens9")
    assert row.planner.guest_name == "ens9"  # never laid out: the lowest free slot after
    assert (row.verdict, row.reason) == (
        AT_RISK,
        "a plain attach gives ens9, not ens5 (live and config)",
    )


def test_a_laid_out_domain_is_ok_ens5_both_ways():
    xml = relayout(libvirt_default()).xml
    row = audit_domain("web2", xml, xml, state="running")
    assert row.verdict == OK and row.reason == ""
    assert row.layout == {"machine": "pc", "nic-start": 3, "nic-slots": 8, "acpi-index": False}
    assert (row.planner.guest_name, row.virsh_live.guest_name) == ("ens5", "ens5")


def test_a_shut_off_domain_has_no_live_prediction():
    xml = relayout(libvirt_default()).xml
    row = audit_domain("off", None, xml, state="shut off")
    assert (row.virsh_live, row.virsh_config.guest_name, row.verdict) == (None, "ens5", OK)


def test_a_full_nic_range_is_full():
    laid = relayout(libvirt_default(), nic_slots=3).xml  # NICs 3-4, one free slot: 5
    xml = laid.replace("  </devices>", nic(5, mac=MAC3, kind="user") + "\n  </devices>")
    row = audit_domain("full", xml, xml)
    assert row.verdict == FULL
    assert row.reason.startswith("planner hotplug: the NIC range (slots 0x03-0x05) has no free")


def test_acpi_index_names_make_a_plain_attach_at_risk():
    xml = relayout(libvirt_default(), acpi_index=True).xml
    row = audit_domain("acpi", xml, xml)
    assert [n.guest_name for n in row.nics] == ["eno1", "eno2"]
    assert (row.planner.guest_name, row.expected, row.virsh_live.guest_name) == (
        "eno3",
        "eno3",
        "ens5",
    )
    assert row.verdict == AT_RISK


def test_a_nic_only_in_the_config_live_and_config_differ():
    live = relayout(libvirt_default()).xml
    config = live.replace("  </devices>", nic(5, mac=MAC3, kind="user") + "\n  </devices>")
    row = audit_domain("pending", live, config, state="running")
    assert [(n.guest_name, n.where) for n in row.nics] == [
        ("ens3", "both"),
        ("ens4", "both"),
        ("ens5", "config"),
    ]
    assert (row.virsh_live.guest_name, row.virsh_config.guest_name) == ("ens5", "ens6")
    assert row.planner.guest_name == "ens6"  # free in both
    assert (row.verdict, row.reason) == (
        AT_RISK,
        "a plain attach is ens5 now and ens6 after a cold boot",
    )
    text = table([row])
    assert "ens5/ens6" in text and "ens5 00:05.0 52:54:00:00:00:03 config only" in text


@pytest.mark.parametrize(
    "xml,why",
    [
        ("<domain", "unreadable XML"),
        (pc_domain(arch="aarch64", machine="virt"), "architecture aarch64"),
        (pc_domain(machine="isapc"), "'isapc' is not supported"),
    ],
)
def test_what_planner_cannot_read_is_unsupported(xml, why):
    row = audit_domain("odd", None, xml)
    assert row.verdict == UNSUPPORTED and why in row.reason
    assert table([row]).splitlines()[1].split() == [
        "odd",
        "-",
        "-",
        "-",
        "-",
        "-",
        "unsupported",
        "-",
    ]


def test_the_exit_status_is_the_worst_row():
    ok = audit_domain("a", None, relayout(libvirt_default()).xml)
    risky = audit_domain("b", None, libvirt_default())
    odd = audit_domain("c", None, "<domain")
    assert [exit_status(r) for r in ([], [ok], [ok, risky], [ok, risky, odd])] == [0, 0, 1, 2]


def test_no_domains_is_said():
    assert table([]) == "no domains\n"


def test_the_table_is_aligned():
    rows = [
        audit_domain("a-long-domain-name", None, relayout(libvirt_default()).xml),
        audit_domain("b", libvirt_default(), libvirt_default(), state="running"),
    ]
    lines = table(rows).splitlines()
    starts = [line.index("ok") if " ok " in line else line.index("at-risk") for line in lines[1:3]]
    assert lines[0].index("VERDICT") == starts[0] == starts[1]
