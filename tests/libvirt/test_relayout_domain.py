"""``planner relayout --domain`` against a real libvirtd: the same output options as a file.

In process through ``main(argv)``; each test defines its own (never started) domain.
"""

from __future__ import annotations

import json

import pytest
from conftest import URI
from lxml import etree

from planner import relayout
from planner.cli import main

pytestmark = pytest.mark.libvirt

LAYOUT = "{urn:libvirt-nic-planner:layout:1}layout"


def domain_xml(name: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <interface type='user'><mac address='52:54:00:00:00:01'/><model type='virtio'/></interface>
    <interface type='user'><mac address='52:54:00:00:00:02'/><model type='virtio'/></interface>
    <controller type='virtio-serial' index='0'/>
    <video><model type='vga'/></video>
  </devices>
</domain>
"""


@pytest.fixture
def dom(conn, domain_name):
    return conn.defineXML(domain_xml(domain_name))


def persistent(dom) -> str:
    import libvirt

    return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


def cli(*args: str) -> int:
    return main(["relayout", "-c", URI, *args])


def test_without_an_output_option_the_xml_goes_to_stdout(dom, domain_name, capsys):
    assert cli("--domain", domain_name) == 0
    out = capsys.readouterr().out
    assert out == relayout(persistent(dom)).xml
    assert etree.fromstring(persistent(dom).encode()).find(f"metadata/{LAYOUT}") is None


def test_output_writes_the_file_and_prints_nothing(dom, domain_name, capsys, tmp_path):
    target = tmp_path / "out.xml"
    assert cli("--domain", domain_name, "-o", str(target)) == 0
    assert capsys.readouterr().out == ""
    assert target.read_text() == relayout(persistent(dom)).xml


def test_json_prints_the_plan(dom, domain_name, capsys):
    assert cli("--domain", domain_name, "--json") == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["machine"] == "pc" and plan["changed"] is True
    assert [n["guest_name"] for n in plan["nics"]] == ["ens3", "ens4"]


def test_diff_prints_a_unified_diff_of_the_persistent_xml(dom, domain_name, capsys):
    assert cli("--domain", domain_name, "--diff") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"--- a/domain/{domain_name}\n+++ b/domain/{domain_name}\n")
    assert "+    <planner:layout" in out


def test_check_says_whether_a_relayout_would_change_it(dom, domain_name, capsys):
    assert cli("--domain", domain_name, "--check") == 1
    assert cli("--domain", domain_name, "--define") == 0
    assert cli("--domain", domain_name, "--check") == 0
    assert capsys.readouterr().out == f"domain {domain_name} defined\n"


def test_define_defines_the_result(dom, domain_name, capsys):
    assert cli("--domain", domain_name, "--define") == 0
    assert capsys.readouterr().out == f"domain {domain_name} defined\n"
    assert etree.fromstring(persistent(dom).encode()).find(f"metadata/{LAYOUT}") is not None
    assert cli("--domain", domain_name, "--define") == 0
    assert capsys.readouterr().out == f"domain {domain_name} already laid out\n"


def test_define_with_json_prints_the_plan_and_says_so_on_stderr(dom, domain_name, capsys):
    assert cli("--domain", domain_name, "--define", "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["changed"] is True
    assert err == f"planner: domain {domain_name} defined\n"


def test_in_place_is_refused_with_one_line(dom, domain_name, capsys):
    before = persistent(dom)
    assert cli("--domain", domain_name, "-i") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "planner: error: --in-place rewrites a file: with --domain, use --define\n"
    assert persistent(dom) == before


def test_an_unknown_domain_is_exit_4(conn, capsys):
    assert cli("--domain", "planner-test-no-such-domain") == 4
    assert capsys.readouterr().err.startswith("planner: error: domain ")


def test_define_with_output_writes_the_file_and_defines(dom, domain_name, capsys, tmp_path):
    target = tmp_path / "out.xml"
    expected = relayout(persistent(dom)).xml
    assert cli("--domain", domain_name, "--define", "-o", str(target)) == 0
    assert capsys.readouterr().out == f"domain {domain_name} defined\n"
    assert target.read_text() == expected
    assert etree.fromstring(persistent(dom).encode()).find(f"metadata/{LAYOUT}") is not None
