"""`planner hotplug` against a real libvirtd: where devices land, live and persistent.

The domains are TCG (`type='qemu'`) i440fx machines with 128 MiB and no guest OS:
they sit in the BIOS, which is enough for QEMU to accept hot-plugs. Slot 2 is the
VGA card, as in real VMs. After `planner relayout` (default policy) a domain with
two NICs, a virtio-serial controller and the implicit memballoon looks like:

    00:02 video   00:03-04 NICs   00:05-0a free NIC slots   00:0b virtio-serial   00:0c memballoon
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lxml import etree

import planner

ROOT = Path(__file__).resolve().parents[2]
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")
UNREACHABLE = "qemu+tcp://127.0.0.1:1/system"  # nothing listens on port 1

libvirt_test = pytest.mark.libvirt

NIC = "<interface type='user'>\n  <model type='virtio'/>\n</interface>\n"


def domain_xml(name: str, nics: int = 2, extra: str = "") -> str:
    macs = "".join(
        f"\n    <interface type='user'><mac address='52:54:00:00:00:{i + 1:02x}'/>"
        f"<model type='virtio'/></interface>"
        for i in range(nics)
    )
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>{macs}
    <controller type='virtio-serial' index='0'/>{extra}
    <video><model type='vga'/></video>
  </devices>
</domain>
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LIBVIRT_DEFAULT_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "planner", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def hotplug(dom_name: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run("hotplug", "-c", URI, dom_name, *args, stdin=stdin)


def xmls(dom) -> tuple[str, str | None]:
    """(live XML, persistent XML); live is None for a domain that is not running."""
    import libvirt

    live = dom.XMLDesc(0) if dom.isActive() else None
    return live, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def pci_slots(xml: str, tag: str | None = None) -> list[int]:
    """Slots on bus 0 of the devices (of one kind) in a domain XML, sorted."""
    out = []
    for el in etree.fromstring(xml.encode()).find("devices"):
        a = el.find("address")
        if a is None or a.get("type") != "pci" or (tag is not None and el.tag != tag):
            continue
        if int(a.get("bus"), 16) == 0 and int(a.get("function"), 16) == 0:
            out.append(int(a.get("slot"), 16))
    return sorted(out)


def live_slots(dom, tag: str = "interface") -> list[int]:
    return pci_slots(dom.XMLDesc(0), tag)


def config_slots(dom, tag: str = "interface") -> list[int]:
    return pci_slots(xmls(dom)[1], tag)


def device_at(xml: str, slot: int) -> str:
    """The device element of a domain XML at 00:<slot>.0, serialised."""
    for el in etree.fromstring(xml.encode()).find("devices"):
        a = el.find("address")
        if a is not None and a.get("type") == "pci" and int(a.get("slot"), 16) == slot:
            return etree.tostring(el, encoding="unicode")
    raise AssertionError(f"no device at slot {slot:#04x}")


def assert_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    """One line on stderr, `planner: error: ...`, the exit code, no traceback, no output."""
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("planner: error: ")
    assert text in lines[0]


@pytest.fixture
def make_domain(conn, domain_name):
    """Define (and by default start) a test domain, laid out by `planner relayout` unless
    ``relayout=False``; ``nic_slots`` is relayout's --nic-slots."""

    def make(
        nics: int = 2,
        *,
        relayout: bool = True,
        nic_slots: int | None = None,
        start: bool = True,
        extra: str = "",
    ):
        xml = domain_xml(domain_name, nics, extra)
        if relayout:
            xml = planner.relayout(xml, nic_slots=nic_slots).xml
        dom = conn.defineXML(xml)
        if start:
            dom.create()
        return dom

    return make


@pytest.fixture
def nic_file(tmp_path: Path) -> str:
    path = tmp_path / "nic.xml"
    path.write_text(NIC)
    return str(path)


@pytest.fixture
def disk_file(tmp_path: Path):
    """A virtio disk device file, backed by a small raw image in tmp_path."""
    tmp_path.chmod(0o755)

    def make(dev: str) -> str:
        image = tmp_path / f"{dev}.raw"
        image.write_bytes(b"")
        os.truncate(image, 1 << 20)
        path = tmp_path / f"{dev}.xml"
        path.write_text(
            f"<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
            f"<source file='{image}'/><target dev='{dev}' bus='virtio'/></disk>"
        )
        return str(path)

    return make


@pytest.fixture(scope="module")
def untouched(conn):
    """One running laid-out domain shared by the tests of hot-plugs that must change
    nothing (dry runs and errors): each checks that its XML is still the same."""
    import libvirt

    name = f"planner-test-{uuid.uuid4().hex[:8]}-untouched"
    dom = conn.defineXML(planner.relayout(domain_xml(name)).xml)
    dom.create()
    yield name, dom
    with contextlib.suppress(libvirt.libvirtError):
        dom.destroy()
    dom.undefine()


# --- NICs fill the NIC range, live and persistent ------------------------------------


@libvirt_test
def test_nic_hotplugs_fill_the_nic_range_in_order_live_and_config(
    make_domain, domain_name, nic_file
):
    dom = make_domain()
    assert live_slots(dom) == [3, 4]

    first = hotplug(domain_name, nic_file)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "interface attached at 0000:00:05.0 (guest name ens5)\n"
    assert first.stderr == ""
    assert live_slots(dom) == config_slots(dom) == [3, 4, 5]
    # the same NIC (same MAC) in both definitions, so a restart keeps it at ens5
    live, config = xmls(dom)
    assert etree.fromstring(device_at(live, 5)).find("mac").get("address") == etree.fromstring(
        device_at(config, 5)
    ).find("mac").get("address")

    second = hotplug(domain_name, nic_file)
    assert second.stdout == "interface attached at 0000:00:06.0 (guest name ens6)\n"
    assert live_slots(dom) == config_slots(dom) == [3, 4, 5, 6]


@libvirt_test
def test_a_disk_lands_in_the_non_nic_block_and_the_next_nic_still_gets_slot_5(
    make_domain, domain_name, nic_file, disk_file
):
    dom = make_domain()
    assert pci_slots(dom.XMLDesc(0)) == [2, 3, 4, 0x0B, 0x0C]  # video, NICs, serial, balloon

    disk = hotplug(domain_name, disk_file("vdb"))
    assert disk.returncode == 0, disk.stderr
    assert disk.stdout == "disk attached at 0000:00:0d.0\n"
    assert live_slots(dom, "disk") == config_slots(dom, "disk") == [0x0D]

    nic = hotplug(domain_name, nic_file)
    assert nic.stdout == "interface attached at 0000:00:05.0 (guest name ens5)\n"

    second_disk = hotplug(domain_name, disk_file("vdc"))
    assert second_disk.stdout == "disk attached at 0000:00:0e.0\n"
    assert live_slots(dom, "disk") == config_slots(dom, "disk") == [0x0D, 0x0E]
    assert live_slots(dom) == config_slots(dom) == [3, 4, 5]


# --- output: --dry-run and --json -----------------------------------------------------


@libvirt_test
def test_dry_run_prints_the_device_xml_with_its_address_and_changes_nothing(untouched, nic_file):
    domain_name, dom = untouched
    before = xmls(dom)

    proc = hotplug(domain_name, nic_file, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    el = etree.fromstring(proc.stdout.encode())
    assert el.tag == "interface"
    assert el.find("model").get("type") == "virtio"
    assert dict(el.find("address").attrib) == {
        "type": "pci",
        "domain": "0x0000",
        "bus": "0x00",
        "slot": "0x05",
        "function": "0x0",
    }
    assert xmls(dom) == before

    again = hotplug(domain_name, nic_file, "--dry-run")
    assert again.stdout == proc.stdout  # nothing was reserved either


@libvirt_test
def test_json_gives_the_result_as_an_object(make_domain, domain_name, nic_file):
    dom = make_domain()

    attached = hotplug(domain_name, nic_file, "--json")
    assert attached.returncode == 0, attached.stderr
    assert json.loads(attached.stdout) == {
        "device": "interface",
        "address": "0000:00:05.0",
        "guest_name": "ens5",
        "attached": True,
        "warnings": [],
    }

    before = xmls(dom)
    dry = json.loads(hotplug(domain_name, nic_file, "--json", "--dry-run").stdout)
    assert xmls(dom) == before
    assert dry.pop("xml").startswith("<interface")
    assert dry == {
        "device": "interface",
        "address": "0000:00:06.0",
        "guest_name": "ens6",
        "attached": False,
        "warnings": [],
    }


# --- policies after a detach from the middle ------------------------------------------


@libvirt_test
def test_after_a_detach_from_the_middle_after_last_skips_the_hole_and_lowest_fills_it(
    make_domain, domain_name, nic_file
):
    """On a domain that is not running (config only): a detach completes at once."""
    import libvirt

    dom = make_domain(start=False)
    for slot in (5, 6):
        proc = hotplug(domain_name, nic_file)
        assert proc.stdout == f"interface attached at 0000:00:{slot:02x}.0 (guest name ens{slot})\n"
    dom.detachDeviceFlags(device_at(xmls(dom)[1], 4), libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert config_slots(dom) == [3, 5, 6]

    after_last = hotplug(domain_name, nic_file, "--policy", "after-last")
    assert after_last.stdout == "interface attached at 0000:00:07.0 (guest name ens7)\n"
    lowest = hotplug(domain_name, nic_file, "--policy", "lowest")
    assert lowest.stdout == "interface attached at 0000:00:04.0 (guest name ens4)\n"
    assert config_slots(dom) == [3, 4, 5, 6, 7]


@libvirt_test
def test_a_live_detach_without_a_guest_os_never_completes_so_its_slot_stays_taken(
    make_domain, domain_name, nic_file
):
    """detach LIVE|CONFIG of the slot-4 NIC: the config loses it at once, but the live
    unplug is only an ACPI request that no guest OS answers. libvirt gives up waiting
    (after ~5 s) and the NIC stays in the live domain, so slot 4 is not free."""
    import libvirt

    dom = make_domain()
    assert hotplug(domain_name, nic_file).returncode == 0  # slot 5
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    dom.detachDeviceFlags(device_at(dom.XMLDesc(0), 4), flags)
    assert config_slots(dom) == [3, 5]
    assert live_slots(dom) == [3, 4, 5]  # the unplug is still pending

    proc = hotplug(domain_name, nic_file, "--policy", "lowest")
    assert proc.stdout == "interface attached at 0000:00:06.0 (guest name ens6)\n"
    assert live_slots(dom) == [3, 4, 5, 6]
    assert config_slots(dom) == [3, 5, 6]


@libvirt_test
def test_a_slot_taken_only_live_or_only_in_the_config_is_not_free(
    make_domain, domain_name, nic_file
):
    dom = make_domain()

    live_only = hotplug(domain_name, nic_file, "--live")
    assert live_only.stdout == "interface attached at 0000:00:05.0 (guest name ens5)\n"
    assert (live_slots(dom), config_slots(dom)) == ([3, 4, 5], [3, 4])

    config_only = hotplug(domain_name, nic_file, "--config")
    assert config_only.stdout == "interface attached at 0000:00:06.0 (guest name ens6)\n"
    assert (live_slots(dom), config_slots(dom)) == ([3, 4, 5], [3, 4, 6])

    both = hotplug(domain_name, nic_file)
    assert both.stdout == "interface attached at 0000:00:07.0 (guest name ens7)\n"
    assert (live_slots(dom), config_slots(dom)) == ([3, 4, 5, 7], [3, 4, 6, 7])


# --- concurrency ----------------------------------------------------------------------


@libvirt_test
def test_six_concurrent_hotplugs_all_succeed_with_six_distinct_contiguous_slots(
    make_domain, domain_name, nic_file
):
    dom = make_domain(nic_slots=10)  # NIC range 0x03-0x0c
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "planner", "hotplug", "-c", URI, domain_name, nic_file]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(6)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]

    assert [rc for rc, _, _ in results] == [0] * 6, results
    assert all(err == "" for _, _, err in results), results
    outputs = sorted(out for _, out, _ in results)
    assert outputs == sorted(
        f"interface attached at 0000:00:{s:02x}.0 (guest name ens{s})\n" for s in range(5, 11)
    )
    assert live_slots(dom) == config_slots(dom) == list(range(3, 11))


class RacedDomain:
    """A virDomain whose first attach loses a race: another tool (think `virsh
    attach-device`) puts a NIC of its own at the chosen address just before."""

    def __init__(self, dom):
        self._dom = dom
        self.taken: list[str] = []

    def __getattr__(self, name):
        return getattr(self._dom, name)

    def attachDeviceFlags(self, xml: str, flags: int) -> int:  # noqa: N802  (libvirt's name)
        if not self.taken:
            address = etree.fromstring(xml.encode()).find("address")
            other = etree.fromstring(NIC.encode())
            other.append(address)
            self.taken.append(address.get("slot"))
            self._dom.attachDeviceFlags(etree.tostring(other, encoding="unicode"), flags)
        return self._dom.attachDeviceFlags(xml, flags)


@libvirt_test
def test_when_another_tool_takes_the_slot_first_planner_retries_with_the_next(make_domain):
    dom = make_domain()
    raced = RacedDomain(dom)
    mac = "52:54:00:0a:0b:0c"

    result = planner.hotplug(
        raced, f"<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>"
    )
    assert raced.taken == ["0x05"]
    assert result.address.slot == 6
    assert live_slots(dom) == config_slots(dom) == [3, 4, 5, 6]
    for xml in xmls(dom):
        assert xml.count(mac) == 1  # attached once, at slot 6
        assert mac in device_at(xml, 6)


# --- errors: one line, an exit code, nothing half-done ----------------------------------


@libvirt_test
def test_an_unknown_domain_exits_4(domain_name, nic_file):
    assert_error(hotplug(domain_name, nic_file), 4, f"domain {domain_name!r} not found")


@libvirt_test
def test_an_unreachable_libvirtd_exits_5(nic_file):
    proc = run("hotplug", "-c", UNREACHABLE, "somedomain", nic_file)
    assert_error(proc, 5, f"cannot connect to {UNREACHABLE}")


@libvirt_test
def test_malformed_device_xml_exits_2_and_attaches_nothing(untouched, tmp_path):
    domain_name, dom = untouched
    before = xmls(dom)
    bad = tmp_path / "bad.xml"
    bad.write_text("<interface type='user'><model type='virtio'>\n")

    assert_error(hotplug(domain_name, str(bad)), 2, "malformed device XML")
    # --fallback lets libvirt choose the address, but libvirt cannot read it either
    assert_error(hotplug(domain_name, str(bad), "--fallback"), 2, "malformed device XML")
    assert_error(hotplug(domain_name, str(tmp_path / "missing.xml")), 2, "cannot read")
    assert xmls(dom) == before


@libvirt_test
def test_device_xml_with_entities_exits_2_even_with_fallback(untouched, tmp_path):
    domain_name, dom = untouched
    before = xmls(dom)
    dtd = tmp_path / "dtd.xml"
    dtd.write_text(
        "<!DOCTYPE interface [<!ENTITY m 'virtio'>]>\n"
        "<interface type='user'><model type='&m;'/></interface>\n"
    )

    assert_error(hotplug(domain_name, str(dtd)), 2, "DTDs are not allowed in device XML")
    assert_error(hotplug(domain_name, str(dtd), "--fallback"), 2, "device XML declares entities")
    assert xmls(dom) == before


@libvirt_test
def test_unreadable_planner_metadata_in_the_domain_exits_2(conn, domain_name, nic_file):
    xml = planner.relayout(domain_xml(domain_name)).xml.replace(
        "first-slot='0x03'", "first-slot='three'"
    )
    dom = conn.defineXML(xml)
    before = xmls(dom)
    assert_error(hotplug(domain_name, nic_file), 2, "unreadable planner metadata")
    assert xmls(dom) == before


@libvirt_test
def test_a_full_nic_range_exits_3_and_only_fallback_lets_libvirt_choose(
    make_domain, domain_name, nic_file
):
    dom = make_domain(nic_slots=3)  # NIC range 0x03-0x05; virtio-serial 6, memballoon 7
    assert hotplug(domain_name, nic_file).returncode == 0  # the last NIC slot, 5
    before = xmls(dom)

    assert_error(hotplug(domain_name, nic_file), 3, "NIC range (slots 0x03-0x05) has no free slot")
    assert xmls(dom) == before

    dry = hotplug(domain_name, nic_file, "--fallback", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stderr == (
        "planner: warning: the NIC range (slots 0x03-0x05) has no free slot; libvirt would choose\n"
    )
    assert etree.fromstring(dry.stdout.encode()).find("address") is None
    assert xmls(dom) == before

    proc = hotplug(domain_name, nic_file, "--fallback")
    assert proc.returncode == 0, proc.stderr
    # libvirt's own choice: its lowest free slot, above the balloon
    assert live_slots(dom) == config_slots(dom) == [3, 4, 5, 8]
    assert proc.stdout == "interface attached at 0000:00:08.0 (guest name ens8)\n"
    assert proc.stderr == (
        "planner: warning: the NIC range (slots 0x03-0x05) has no free slot; "
        "libvirt chose 0000:00:08.0\n"
    )


@libvirt_test
def test_libvirt_refusing_the_attach_exits_6_and_attaches_nothing(untouched):
    domain_name, dom = untouched
    before = xmls(dom)
    proc = hotplug(domain_name, "--network", "nosuchnet")
    assert_error(proc, 6, "libvirt refused the attach: Network not found")
    assert xmls(dom) == before


@libvirt_test
def test_live_on_a_domain_that_is_not_running_exits_2(make_domain, domain_name, nic_file):
    dom = make_domain(start=False)
    before = xmls(dom)
    assert_error(hotplug(domain_name, nic_file, "--live"), 2, "--live: the domain is not running")
    assert xmls(dom) == before


# --- a device that brings its own address ---------------------------------------------


def _nic_at(slot: int) -> str:
    return (
        f"<interface type='user'><model type='virtio'/><address type='pci' domain='0x0000' "
        f"bus='0x00' slot='{slot:#04x}' function='0x0'/></interface>"
    )


@libvirt_test
def test_a_device_with_its_own_free_address_keeps_it(make_domain, domain_name):
    dom = make_domain()
    proc = hotplug(domain_name, "-", stdin=_nic_at(0x15))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "interface attached at 0000:00:15.0 (guest name ens21)\n"
    assert live_slots(dom) == config_slots(dom) == [3, 4, 0x15]


@libvirt_test
def test_a_device_whose_own_address_is_taken_fails_and_attaches_nothing(untouched):
    domain_name, dom = untouched
    before = xmls(dom)
    proc = hotplug(domain_name, "-", stdin=_nic_at(0x0B))  # the virtio-serial controller
    assert_error(proc, 3, "the device's own address 0000:00:0b.0 is already in use")
    assert xmls(dom) == before


# --- a domain that was never laid out -------------------------------------------------


RAW_EXTRA = """
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"""


@libvirt_test
def test_a_domain_never_laid_out_warns_and_attaches_then_relayout_takes_effect_at_cold_boot(
    conn, make_domain, domain_name, nic_file
):
    import libvirt

    dom = make_domain(relayout=False, extra=RAW_EXTRA)
    # libvirt's own layout: NICs 3-4, then virtio-serial, scsi, memballoon, rng at 5-8
    assert pci_slots(dom.XMLDesc(0)) == [2, 3, 4, 5, 6, 7, 8]

    proc = hotplug(domain_name, nic_file)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "interface attached at 0000:00:09.0 (guest name ens9)\n"
    warning = proc.stderr.splitlines()
    assert len(warning) == 1
    assert warning[0].startswith("planner: warning: domain has no planner layout")
    assert "planner relayout --domain NAME --define" in warning[0]
    assert live_slots(dom) == config_slots(dom) == [3, 4, 9]

    relayout = run("relayout", "-c", URI, "--domain", domain_name, "--define")
    assert relayout.returncode == 0, relayout.stderr
    assert relayout.stdout == (
        f"domain {domain_name} defined; it takes effect at the next cold boot (destroy + start)\n"
    )
    layout_tag = "{urn:libvirt-nic-planner:layout:1}layout"
    persistent = etree.fromstring(xmls(dom)[1].encode())
    assert persistent.find(f"metadata/{layout_tag}") is not None
    assert etree.fromstring(dom.XMLDesc(0).encode()).find(f"metadata/{layout_tag}") is None
    assert live_slots(dom) == [3, 4, 9]  # the running domain is untouched

    dom.destroy()
    dom.create()
    live = dom.XMLDesc(0)
    assert pci_slots(live, "interface") == [3, 4, 5]  # the hot-plugged NIC is now ens5
    assert pci_slots(live) == [2, 3, 4, 5, 0x0B, 0x0C, 0x0D, 0x0E]
    assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == xmls(dom)[1]

    after = hotplug(domain_name, nic_file)
    assert after.stdout == "interface attached at 0000:00:06.0 (guest name ens6)\n"
    assert after.stderr == ""


# --- the library API ------------------------------------------------------------------


@libvirt_test
def test_library_hotplug_takes_a_virdomain_or_a_name_and_a_uri(make_domain, domain_name):
    import planner.attach  # noqa: F401  the submodule: planner.hotplug is still the function

    dom = make_domain()

    result = planner.hotplug(dom, NIC)
    assert result.address.slot == 5
    assert (result.kind, result.guest_name, result.attached) == ("interface", "ens5", True)
    assert result.summary() == "interface attached at 0000:00:05.0 (guest name ens5)"

    by_name = planner.hotplug(domain_name, NIC, conn=URI)
    assert by_name.address.slot == 6
    assert live_slots(dom) == config_slots(dom) == [3, 4, 5, 6]


def test_library_relayout_works_without_libvirt():
    sample = ROOT / "samples" / "cloudstack-2nic.xml"
    code = (
        f"import planner, sys; r = planner.relayout(open({str(sample)!r}).read()); "
        "assert r.changed; assert 'libvirt' not in sys.modules, 'libvirt imported'"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


# --- NICs rendered from a template ----------------------------------------------------


@libvirt_test
def test_network_bridge_and_user_nics_are_rendered_from_the_default_template(
    make_domain, domain_name
):
    make_domain(start=False)

    net = hotplug(domain_name, "--network", "default", "--dry-run")
    assert net.returncode == 0, net.stderr
    el = etree.fromstring(net.stdout.encode())
    assert (el.tag, el.get("type")) == ("interface", "network")
    assert el.find("source").get("network") == "default"
    assert el.find("model").get("type") == "virtio"
    assert el.find("mac") is None  # libvirt generates one
    assert el.find("address").get("slot") == "0x05"

    bridge = hotplug(
        domain_name,
        "--bridge",
        "br0",
        "--model",
        "e1000",
        "--mac",
        "52:54:00:12:34:56",
        "--dry-run",
    )
    el = etree.fromstring(bridge.stdout.encode())
    assert el.get("type") == "bridge"
    assert el.find("source").get("bridge") == "br0"
    assert el.find("model").get("type") == "e1000"
    assert el.find("mac").get("address") == "52:54:00:12:34:56"


@libvirt_test
def test_a_user_nic_with_a_mac_is_attached_with_that_mac(make_domain, domain_name):
    dom = make_domain(start=False)
    proc = hotplug(domain_name, "--user", "--mac", "52:54:00:ab:cd:ef")
    assert proc.stdout == "interface attached at 0000:00:05.0 (guest name ens5)\n"
    nic = etree.fromstring(device_at(xmls(dom)[1], 5))
    assert nic.find("mac").get("address") == "52:54:00:ab:cd:ef"


@libvirt_test
def test_a_custom_template_renders_the_nic(make_domain, domain_name, tmp_path):
    make_domain(start=False)
    template = tmp_path / "mynic.xml.j2"
    template.write_text(
        "<interface type='{{ type }}'>\n"
        "  <source {{ type }}='{{ source }}'/>\n"
        "  <model type='{{ model }}'/>\n"
        "  <mtu size='9000'/>\n"
        "</interface>\n"
    )
    proc = hotplug(domain_name, "--network", "storage", "--template", str(template), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    el = etree.fromstring(proc.stdout.encode())
    assert el.find("source").get("network") == "storage"
    assert el.find("mtu").get("size") == "9000"
    assert el.find("address").get("slot") == "0x05"


@libvirt_test
def test_nic_options_and_a_device_file_together_are_refused(untouched, nic_file):
    domain_name, dom = untouched
    before = xmls(dom)
    assert_error(hotplug(domain_name, nic_file, "--network", "default"), 2, "not both")
    assert xmls(dom) == before
