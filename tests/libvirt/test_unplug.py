"""`planner unplug` against a real libvirtd: which device, which definitions, and the wait.

The domains are TCG i440fx machines without a guest OS, laid out by `planner relayout`
(NICs 52:54:00:00:00:01-03 at 00:03-00:05, so ens3 ens4 ens5). A running guest without
an OS never answers the ACPI eject: a live detach stays pending for as long as the
domain runs (measured: the device, and its slot, stay in the live XML). That is the
timeout path here; the guest-acknowledged path (the DEVICE_REMOVED event) is proven by
tests/e2e/test_unplug_names.py with a real Linux guest. A domain that is defined but
not running loses the device at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lxml import etree

import planner
import planner.detach as unplug_mod
from planner.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
URI = os.environ.get("PLANNER_TEST_URI", "qemu:///system")
UNREACHABLE = "qemu+tcp://127.0.0.1:1/system"
AFFECT_LIVE, AFFECT_CONFIG, XML_INACTIVE = 1, 2, 2

pytestmark = pytest.mark.libvirt


def domain_xml(name: str, nics: str | None = None, extra: str = "") -> str:
    if nics is None:
        nics = "".join(
            f"<interface type='user'><mac address='52:54:00:00:00:0{i}'/>"
            "<model type='virtio'/></interface>\n"
            for i in (1, 2, 3)
        )
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    {nics}
    <controller type='virtio-serial' index='0'/>{extra}
    <video><model type='vga'/></video>
  </devices>
</domain>
"""


@pytest.fixture
def make_domain(conn, domain_name):
    def make(*, start: bool = False, nics: str | None = None, extra: str = ""):
        xml = planner.relayout(domain_xml(domain_name, nics, extra)).xml
        dom = conn.defineXML(xml)
        if start:
            dom.create()
        return dom

    return make


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LIBVIRT_DEFAULT_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "planner", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def unplug(name: str, *args: str) -> subprocess.CompletedProcess:
    return run("unplug", "-c", URI, name, *args)


def macs(xml: str) -> list[str]:
    root = etree.fromstring(xml.encode())
    return [el.find("mac").get("address") for el in root.findall("./devices/interface")]


def slots(xml: str, tag: str) -> list[int]:
    root = etree.fromstring(xml.encode())
    return [int(el.find("address").get("slot"), 16) for el in root.findall(f"./devices/{tag}")]


def assert_error(proc: subprocess.CompletedProcess, code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("planner: error: ")
    assert text in line, line


# --- what a match names ---------------------------------------------------------------


@pytest.mark.parametrize(
    "match",
    ["52:54:00:00:00:02", "52:54:00:00:00:02".upper(), "ens4", "00:04.0", "0000:00:04.0"],
)
def test_a_domain_that_is_not_running_loses_the_device_at_once(make_domain, domain_name, match):
    dom = make_domain()
    proc = unplug(domain_name, match)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "interface 52:54:00:00:00:02 at 0000:00:04.0 (ens4) removed\n"
    config = dom.XMLDesc(XML_INACTIVE)
    assert macs(config) == ["52:54:00:00:00:01", "52:54:00:00:00:03"]
    assert slots(config, "interface") == [3, 5]


def test_a_disk_is_unplugged_by_its_address(make_domain, domain_name, tmp_path):
    image = tmp_path / "data.img"
    image.write_bytes(b"\0" * 1024 * 1024)
    disk = (
        f"<disk type='file' device='disk'><source file='{image}'/>"
        "<target dev='vdb' bus='virtio'/></disk>"
    )
    dom = make_domain(extra=disk)
    (slot,) = slots(dom.XMLDesc(XML_INACTIVE), "disk")
    proc = unplug(domain_name, f"00:{slot:02x}.0", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["device"] == "disk"
    assert out["address"] == f"0000:00:{slot:02x}.0"
    assert (out["status"], out["config"], out["live"]) == ("removed", True, False)
    assert etree.fromstring(dom.XMLDesc(XML_INACTIVE).encode()).find("./devices/disk") is None


def test_nothing_matching_exits_2_and_changes_nothing(make_domain, domain_name):
    dom = make_domain()
    before = dom.XMLDesc(XML_INACTIVE)
    for match in ("52:54:00:00:00:09", "ens9", "00:09.0"):
        assert_error(unplug(domain_name, match), 2, "no device matches")
    assert dom.XMLDesc(XML_INACTIVE) == before


def test_a_match_that_is_no_mac_name_or_address_exits_2(make_domain, domain_name):
    make_domain()
    assert_error(unplug(domain_name, "eth0;rm"), 2, "is not a MAC address")
    assert_error(unplug(domain_name, "00:20.0"), 2, "slot must be 00-1f")


def test_two_nics_with_one_mac_exit_2_naming_both(make_domain, domain_name):
    """libvirt defines (and starts) a domain whose NICs share a MAC: the MAC is ambiguous."""
    twice = (
        "<interface type='user'><mac address='52:54:00:00:00:07'/><model type='virtio'/>"
        "</interface>\n"
    ) * 2
    dom = make_domain(nics=twice)
    before = dom.XMLDesc(XML_INACTIVE)
    proc = unplug(domain_name, "52:54:00:00:00:07")
    assert_error(proc, 2, "matches 2 devices")
    assert "0000:00:03.0" in proc.stderr and "0000:00:04.0" in proc.stderr
    assert dom.XMLDesc(XML_INACTIVE) == before
    # The address still names one of them.
    assert unplug(domain_name, "00:04.0").returncode == 0
    assert slots(dom.XMLDesc(XML_INACTIVE), "interface") == [3]


def test_a_non_pci_device_exits_2(make_domain, domain_name):
    usb = (
        "<interface type='user'><mac address='52:54:00:00:00:08'/><model type='usb-net'/>"
        "<address type='usb' bus='0' port='1'/></interface>"
    )
    dom = make_domain(extra=usb)
    before = dom.XMLDesc(XML_INACTIVE)
    assert_error(unplug(domain_name, "52:54:00:00:00:08"), 2, "is not a PCI device")
    assert dom.XMLDesc(XML_INACTIVE) == before


def test_an_unknown_domain_exits_4(domain_name):
    assert_error(unplug(domain_name, "ens4"), 4, "not found")


def test_an_unreachable_libvirtd_exits_5():
    assert_error(run("unplug", "-c", UNREACHABLE, "x", "ens4"), 5, "cannot connect")


def test_live_on_a_domain_that_is_not_running_exits_2(make_domain, domain_name):
    make_domain()
    assert_error(unplug(domain_name, "ens4", "--live"), 2, "not running")


# --- a running guest that never releases the device -----------------------------------


def test_a_guest_that_never_ejects_times_out_and_the_slot_stays_taken_live(
    make_domain, domain_name
):
    dom = make_domain(start=True)
    started = time.monotonic()
    proc = unplug(domain_name, "ens4", "--timeout", "2")
    took = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("interface 52:54:00:00:00:02 at 0000:00:04.0 (ens4): ")
    assert "the guest has not released it after 2s" in proc.stdout
    assert "its slot stays taken in the running domain" in proc.stdout
    assert took >= 2
    # The persistent config is clean; the live domain still holds the device at slot 4.
    assert slots(dom.XMLDesc(XML_INACTIVE), "interface") == [3, 5]
    assert slots(dom.XMLDesc(0), "interface") == [3, 4, 5]


def test_json_reports_the_pending_state(make_domain, domain_name):
    make_domain(start=True)
    proc = unplug(domain_name, "52:54:00:00:00:03", "--timeout", "0.5", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "pending"
    assert (out["live"], out["config"], out["guest_name"]) == (True, True, "ens5")
    assert out["waited"] >= 0.5


def test_config_only_on_a_running_domain_leaves_the_live_device(make_domain, domain_name):
    dom = make_domain(start=True)
    proc = unplug(domain_name, "ens3", "--config")
    assert proc.returncode == 0, proc.stderr
    assert "removed from the persistent config (the running domain keeps it)" in proc.stdout
    assert slots(dom.XMLDesc(XML_INACTIVE), "interface") == [4, 5]
    assert slots(dom.XMLDesc(0), "interface") == [3, 4, 5]


def test_live_only_leaves_the_persistent_config(make_domain, domain_name):
    dom = make_domain(start=True)
    proc = unplug(domain_name, "ens5", "--live", "--timeout", "0.5")
    assert proc.returncode == 1, proc.stderr
    assert "the persistent config was not changed" in proc.stdout
    assert slots(dom.XMLDesc(XML_INACTIVE), "interface") == [3, 4, 5]


def test_library_with_a_caller_opened_connection_polls_and_times_out(conn, make_domain):
    """The session's connection was opened before any event loop: planner polls the XML."""
    dom = make_domain(start=True)
    r = planner.unplug(dom, "ENS4".lower(), timeout=1.0)
    assert (r.removed, r.status, r.observed_by) == (False, "pending", "poll")
    assert (r.address.slot, r.guest_name, r.mac) == (4, "ens4", "52:54:00:00:00:02")
    assert r.waited >= 1.0
    assert slots(dom.XMLDesc(XML_INACTIVE), "interface") == [3, 5]
    # A second unplug finds the device only in the live XML and waits again.
    r2 = planner.unplug(dom, "52:54:00:00:00:02", timeout=0.3)
    assert (r2.detached_live, r2.detached_config, r2.removed) == (True, False, False)


def test_library_raises_input_error_for_no_match(make_domain, domain_name):
    make_domain()
    with pytest.raises(InputError, match="no device matches"):
        planner.unplug(domain_name, "ens9", conn=URI)


def test_a_device_already_gone_is_not_waited_for(conn, make_domain):
    """The race: the guest released the device before the callback was registered."""
    dom = make_domain(start=True)
    (gone,) = [
        f for f in unplug_mod.devices_of(dom.XMLDesc(0), "live") if f.mac == "52:54:00:00:00:01"
    ]
    ghost = unplug_mod.Found(
        "live", gone.element, gone.kind, gone.address, "52:54:00:00:00:99", None, None, True
    )
    waiter = unplug_mod._Waiter(dom.UUIDString(), None)
    removed, waited, how = unplug_mod._wait(dom, ghost, waiter, time.monotonic(), 10.0, True)
    assert (removed, how) == (True, "absent")
    assert waited < 1.0


# --- pure parts -----------------------------------------------------------------------


def test_parse_match_lowercases_macs():
    assert unplug_mod.parse_match("52:54:00:AB:cd:01") == unplug_mod.Match(mac="52:54:00:ab:cd:01")


def test_parse_match_reads_addresses_and_names():
    a = unplug_mod.parse_match("0000:01:00.0").address
    assert (a.domain, a.bus, a.slot, a.function) == (0, 1, 0, 0)
    assert unplug_mod.parse_match("00:1f.7").address.slot == 0x1F
    assert unplug_mod.parse_match("enp2s0").name == "enp2s0"
    assert unplug_mod.parse_match("eno2").name == "eno2"
    with pytest.raises(InputError):
        unplug_mod.parse_match("")


def test_a_device_only_in_the_config_of_a_running_domain_is_removed(make_domain, domain_name):
    dom = make_domain(start=True)
    extra = (
        "<interface type='user'><mac address='52:54:00:00:00:0a'/><model type='virtio'/>"
        "</interface>"
    )
    dom.attachDeviceFlags(extra, AFFECT_CONFIG)
    proc = unplug(domain_name, "52:54:00:00:00:0A")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(" removed\n"), proc.stdout
    assert "52:54:00:00:00:0a" not in macs(dom.XMLDesc(XML_INACTIVE))


def test_unplug_waits_for_the_domain_lock_hotplug_uses(make_domain, domain_name):
    """While another planner command holds the domain's lock, unplug changes nothing."""
    from planner import lock

    dom = make_domain()
    before = dom.XMLDesc(XML_INACTIVE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "planner", "unplug", "-c", URI, domain_name, "ens4"]
    with lock.domain_lock(dom.UUIDString()):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        assert proc.poll() is None  # blocked on the lock
        assert dom.XMLDesc(XML_INACTIVE) == before
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.decode().endswith("(ens4) removed\n")
    assert slots(dom.XMLDesc(XML_INACTIVE), "interface") == [3, 5]


def test_a_live_device_gone_before_the_request_is_not_an_error(conn, make_domain):
    """The other race: the device left the running domain between planner's read of the
    live XML and its detach request (an earlier unplug the guest just acknowledged)."""
    dom = make_domain(start=True)
    (real,) = [
        f for f in unplug_mod.devices_of(dom.XMLDesc(0), "live") if f.mac == "52:54:00:00:00:01"
    ]
    ghost = unplug_mod.Found(
        "live", real.element, real.kind, real.address, "52:54:00:00:00:99", "net99", None, True
    )
    unplug_mod.request_live_detach(dom, ghost)  # libvirt: no such alias; the device is gone
    with pytest.raises(planner.errors.LibvirtRefused, match="refused to detach"):
        stale = unplug_mod.Found(
            "live", real.element, real.kind, real.address, real.mac, "net99", None, True
        )
        unplug_mod.request_live_detach(dom, stale)  # still live under another alias: refused
