"""``planner audit`` and ``relayout --all`` against libvirtd: throwaway TCG domains (no guest
OS) with libvirt's default layout, laid out by planner, q35, transient, and ones planner
cannot handle; the audit's predictions are then checked by attaching for real.

The host is shared with other test runs: every domain here is named with a unique
prefix, audits name their domains, and ``relayout --all --define`` is limited to the
prefix with ``--only`` (an unfiltered ``--all`` runs only with ``--dry-run``).
"""

from __future__ import annotations

import shutil

import pytest
from conftest import IN_CI, ROOT
from fleet_host import (
    AFFECT_CONFIG,
    AFFECT_LIVE,
    NEW_MAC,
    PLAIN_NIC,
    PLANNER_NIC,
    XML_INACTIVE,
    domain,
    hosted,
    nic,
)
from lxml import etree

from planner import hotplug
from planner.audit import AT_RISK, ERROR, GONE, OK, UNSUPPORTED
from planner.fleet import audit_host, audit_one, relayout_all
from planner.layout import NAMESPACE
from planner.pci import PciAddress

pytestmark = pytest.mark.libvirt


@pytest.fixture
def host(conn, tmp_path):
    yield from hosted(conn, tmp_path)


def where(xml: str, mac: str) -> PciAddress | None:
    for el in etree.fromstring(xml.encode()).iterfind("devices/interface"):
        if el.find("mac").get("address") == mac:
            a = el.find("address")
            return PciAddress(*(int(a.get(k), 16) for k in ("domain", "bus", "slot", "function")))
    return None


def by_name(rows):
    return {r.domain: r for r in rows}


def plain_attach(dom) -> tuple[PciAddress | None, PciAddress | None]:
    """``virsh attach-device --live --config`` of a NIC without an address; where it went."""
    flags = (AFFECT_LIVE if dom.isActive() else 0) | (AFFECT_CONFIG if dom.isPersistent() else 0)
    dom.attachDeviceFlags(PLAIN_NIC, flags)
    live = where(dom.XMLDesc(0), NEW_MAC) if dom.isActive() else None
    config = where(dom.XMLDesc(XML_INACTIVE), NEW_MAC) if dom.isPersistent() else None
    return live, config


def test_audit_of_default_laid_out_q35_shut_off_and_transient_domains(conn, host):
    default, _ = host.define("default")
    laid, _ = host.define("laidout", laid_out=True)
    q35, _ = host.define("q35", "q35", laid_out=True)
    q35_default, _ = host.define("q35-default", "q35")
    off, _ = host.define("off", start=False)
    transient, _ = host.transient("transient")

    def xmls():
        return {
            n: (d.XMLDesc(0), d.XMLDesc(XML_INACTIVE) if d.isPersistent() else None)
            for n in host.names
            for d in [conn.lookupByName(n)]
        }

    before = xmls()
    rows = by_name(audit_host(conn, host.names))
    assert xmls() == before  # the audit reads; it changes nothing
    print("\n" + "\n".join(f"{n}: {r.as_dict()}" for n, r in rows.items()))

    r = rows[default]
    assert (r.state, r.persistent, r.machine, r.layout) == ("running", True, "pc", None)
    assert [(n.guest_name, str(n.address), n.mac) for n in r.nics] == [
        ("ens3", "0000:00:03.0", "52:54:00:00:00:01"),
        ("ens4", "0000:00:04.0", "52:54:00:00:00:02"),
    ]
    assert (r.expected, r.virsh_live.guest_name, r.virsh_config.guest_name) == (
        "ens5",
        "ens9",
        "ens9",
    )
    assert r.verdict == AT_RISK and "ens9, not ens5" in r.reason

    r = rows[laid]
    assert r.layout["nic-slots"] == 8 and r.verdict == OK, r.reason
    assert (r.planner.guest_name, r.virsh_live.guest_name, r.virsh_config.guest_name) == (
        "ens5",
        "ens5",
        "ens5",
    )

    r = rows[q35]
    assert [n.guest_name for n in r.nics] == ["enp1s0", "enp2s0"]
    assert r.layout["spare-ports"] == 4 and r.verdict == OK, r.reason
    assert r.planner.guest_name == "enp3s0" == r.virsh_live.guest_name

    r = rows[q35_default]
    assert r.verdict == AT_RISK and r.planner.guest_name is None
    assert "no planner layout" in r.reason

    r = rows[off]
    assert (r.state, r.virsh_live, r.virsh_config.guest_name) == ("shut off", None, "ens9")
    assert r.verdict == AT_RISK

    r = rows[transient]
    assert (r.persistent, r.virsh_config, r.virsh_live.guest_name) == (False, None, "ens9")
    assert r.verdict == AT_RISK


@pytest.mark.parametrize(
    "label,machine,laid_out",
    [("pc-default", "pc", False), ("pc", "pc", True), ("q35", "q35", True)],
)
def test_the_audit_predicts_where_planner_and_a_plain_attach_put_the_next_nic(
    conn, host, label, machine, laid_out
):
    name, dom = host.define(label, machine, laid_out=laid_out)
    (before,) = audit_host(conn, [name])
    result = hotplug(dom, PLANNER_NIC)
    assert (result.address, result.guest_name) == (
        before.planner.address,
        before.planner.guest_name,
    )

    (after,) = audit_host(conn, [name])  # the NIC planner added counts now
    live, config = plain_attach(dom)
    print(
        f"\n{label}: planner {result.guest_name} at {result.address}; then plain attach: "
        f"predicted {after.virsh_live.guest_name} {after.virsh_live.address} / "
        f"{after.virsh_config.address}, libvirt {live} / {config}"
    )
    assert (live, config) == (after.virsh_live.address, after.virsh_config.address)


def test_a_domain_planner_cannot_read_is_unsupported_and_the_others_still_audited(conn, host):
    bad_meta = (
        f"\n  <metadata><planner:layout xmlns:planner='{NAMESPACE}' machine='pc'>"
        "<planner:policy nic-start='three'/></planner:layout></metadata>"
    )
    name = host.prefix + "badmeta"
    host.names.append(name)
    conn.defineXML(domain(name, "pc", nic(1), meta=bad_meta))
    good, _ = host.define("good", laid_out=True, start=False)
    rows = by_name(audit_host(conn, [name, good, host.prefix + "nonexistent"]))
    assert rows[name].verdict == UNSUPPORTED
    assert "unreadable" in rows[name].reason
    assert rows[good].verdict == OK
    assert rows[host.prefix + "nonexistent"].verdict == ERROR


def test_an_unsupported_machine_libvirt_accepts_is_unsupported(conn, host):
    """isapc: an x86 machine without PCI that planner does not handle."""
    name = host.prefix + "isapc"
    host.names.append(name)
    conn.defineXML(
        domain(name, "isapc", "<controller type='usb' model='none'/><memballoon model='none'/>")
    )
    (row,) = audit_host(conn, [name])
    assert row.verdict == UNSUPPORTED and "isapc" in row.reason, row.reason


def test_an_aarch64_virt_domain_is_unsupported(conn, host):
    emulator = shutil.which("qemu-system-aarch64")
    if emulator is None:
        # tests/host-setup.sh installs the ARM emulator (qemu-system-arm): CI fails without it.
        promised = "qemu-system-arm" in (ROOT / "tests" / "host-setup.sh").read_text()
        if IN_CI and promised:
            pytest.fail("tests/host-setup.sh installs qemu-system-arm, but it is missing")
        pytest.skip("qemu-system-aarch64 is not installed (not part of tests/host-setup.sh)")
    name = host.prefix + "aarch64"
    host.names.append(name)
    conn.defineXML(
        domain(name, "virt", f"<emulator>{emulator}</emulator>", arch="aarch64").replace(
            "<features><acpi/></features>", ""
        )
    )
    (row,) = audit_host(conn, [name])
    assert row.verdict == UNSUPPORTED and "aarch64" in row.reason


def test_a_domain_that_vanishes_during_the_audit_is_reported(conn, host):
    name, dom = host.define("vanishing", start=False)
    dom.undefine()  # the handle outlives the domain, as in a listing taken before
    row = audit_one(conn, name, dom)
    assert row.verdict == GONE


def test_relayout_all_defines_the_default_ones_and_skips_the_rest(conn, host):
    default, d1 = host.define("a-default")
    off, d2 = host.define("b-off", start=False)
    laid, d3 = host.define("c-laidout", laid_out=True, start=False)
    transient, _ = host.transient("d-transient")
    name = host.prefix + "e-badmeta"
    host.names.append(name)
    conn.defineXML(
        domain(
            name,
            "pc",
            nic(1),
            meta=f"\n  <metadata><planner:layout xmlns:planner='{NAMESPACE}'>"
            "<planner:policy nic-start='x'/></planner:layout></metadata>",
        )
    )
    isapc = host.prefix + "f-isapc"
    host.names.append(isapc)
    conn.defineXML(
        domain(isapc, "isapc", "<controller type='usb' model='none'/><memballoon model='none'/>")
    )
    before = {n: conn.lookupByName(n).XMLDesc(XML_INACTIVE) for n in (default, off, laid)}

    dry = relayout_all(conn, define=False, only=host.prefix + "*")
    assert [o.status for o in dry] == ["would be defined"] * 2 + ["skipped"] * 2 + [
        "failed",
        "skipped",
    ]
    assert {n: conn.lookupByName(n).XMLDesc(XML_INACTIVE) for n in before} == before

    out = {o.domain: o for o in relayout_all(conn, define=True, only=host.prefix + "*")}
    print("\n" + "\n".join(o.summary() for o in out.values()))
    assert (out[default].status, out[default].running) == ("defined", True)
    assert "next cold boot" in out[default].note
    assert (out[off].status, out[off].note) == ("defined", "")
    assert (out[laid].status, out[laid].note) == ("skipped", "already laid out")
    assert out[transient].status == "skipped" and "transient" in out[transient].note
    assert out[name].failed and "unreadable planner metadata" in out[name].note
    assert out[isapc].status == "skipped" and "'isapc' is not supported" in out[isapc].note
    for dom in (d1, d2):
        assert NAMESPACE in dom.XMLDesc(XML_INACTIVE)
    assert d1.XMLDesc(0) != d1.XMLDesc(XML_INACTIVE)  # the running one keeps its layout


def test_a_planner_bug_on_one_domain_is_a_row_and_the_others_go_on(conn, host, monkeypatch):
    from planner import fleet
    from planner.cli import main

    first, _ = host.define("bug-a", start=False)
    second, _ = host.define("bug-b", start=False)
    real_audit, real_relayout = fleet.audit_domain, fleet.relayout

    def audit_bug(name, *args, **kw):
        if name == first:
            raise KeyError("boom")
        return real_audit(name, *args, **kw)

    def relayout_bug(doc, **kw):
        if first in doc.text:
            raise KeyError("boom")
        return real_relayout(doc, **kw)

    monkeypatch.setattr(fleet, "audit_domain", audit_bug)
    monkeypatch.setattr(fleet, "relayout", relayout_bug)
    rows = by_name(audit_host(conn, [first, second]))
    assert rows[first].verdict == ERROR
    assert rows[first].reason == (
        "internal error (a planner bug: please report it): KeyError: 'boom'"
    )
    assert rows[second].verdict == AT_RISK
    code = main(
        ["relayout", "-c", conn.getURI(), "--all", "--define", "--only", host.prefix + "bug-*"]
    )
    assert code == 70
    assert NAMESPACE in conn.lookupByName(second).XMLDesc(XML_INACTIVE)
