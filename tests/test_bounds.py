"""Bounded work (issue 12): every number that reaches a range or a loop is checked first.

Each hostile input below is a few hundred bytes; before the bounds, each made planner
take gigabytes or minutes (or die with MemoryError / RecursionError). They run in a
child process under an address-space limit, so a regression fails the test instead of
taking the machine down: the child must end with one ``planner: error:`` line and
exit 2 (or succeed, where libvirt's own reading makes the input harmless).
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys

import pytest
from domains import ROOT, disk, nic, pc_domain

from planner import relayout
from planner.devices import disk_index
from planner.errors import ImpossibleError, InputError, PlannerError
from planner.pci import parse_number
from planner.policy import Policy
from planner.report import show
from planner.xmldoc import MAX_INPUT

LIMIT = 1 << 30  # address space the child may use: planner needs about 60 MB


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def planner(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "planner", *args],
        input=stdin,
        capture_output=True,
        preexec_fn=_limit,
        timeout=120,  # a guard against a hang, not a timing
        cwd=ROOT,
        env=env,
    )


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err[-2000:]
    assert err.count("\n") == 1 and err.startswith("planner: error: "), err[-2000:]
    for w in words:
        assert w in err, err
    return err


def scsi_disk(dev: str, address: str = "") -> str:
    return (
        f"<disk type='file' device='disk'><source file='/x.img'/>"
        f"<target dev='{dev}' bus='scsi'/>{address}</disk>"
    )


Q35_META = """    <planner:layout xmlns:planner='urn:libvirt-nic-planner:layout:1' version='0.1.0'
        machine='q35'>
      <planner:policy nic-start='3' nic-slots='8' spare-ports='4'
          spare-other-ports='{spare}' acpi-index='no'/>
      <planner:nics ports='1'/>
      <planner:others ports='' spare-ports=''/>
    </planner:layout>"""

PC_META = """    <planner:layout xmlns:planner='urn:libvirt-nic-planner:layout:1' version='0.1.0'
        machine='pc'>
      <planner:policy nic-start='3' nic-slots='8' acpi-index='no'/>
      <planner:nics bus='0x00' first-slot='{first}' slots='{slots}'/>
      <planner:others bus='0x00' first-slot='0x0b'/>
    </planner:layout>"""


@pytest.mark.parametrize("command", ["relayout", "show"])
def test_a_drive_controller_number_past_the_limit_is_refused_before_any_loop(command):
    xml = pc_domain(scsi_disk("sda", "<address type='drive' controller='100000000'/>"))
    refused(planner(command, "-", stdin=xml.encode()), "controller", "256")


@pytest.mark.parametrize("command", ["relayout", "show"])
def test_a_disk_name_implying_too_many_controllers_is_refused(command):
    # sdzzzz is drive index 475253: libvirt would add SCSI controllers 0..67893
    refused(planner(command, "-", stdin=pc_domain(scsi_disk("sdzzzz")).encode()), "sdzzzz")


def in_child(code: str) -> subprocess.CompletedProcess:
    """Python code run in a child under the address-space limit, so that a regression
    (a loop over billions, a list of gigabytes) fails the test instead of hanging it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests") + os.pathsep + str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=_limit,
        timeout=120,  # a guard against a hang, not a timing
        cwd=ROOT,
        env=env,
    )


def test_a_disk_name_libvirt_cannot_number_implies_no_controllers():
    # sdzzzzzzz overflows libvirt's int: virDiskNameParse gives no index, as for 'sd-x'
    proc = in_child(
        "from domains import pc_domain\n"
        "from test_bounds import scsi_disk\n"
        "from planner import relayout\n"
        "print(relayout(pc_domain(scsi_disk('sdzzzzzzz'))).xml.count(\"<controller type='scsi'\"))"
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr[-2000:]


@pytest.mark.parametrize(
    "name, index",
    [
        ("vda", 0),
        ("vdz", 25),
        ("vdaa", 26),
        ("sdab", 27),
        ("hdb2", 1),
        ("xvdc", 2),
        ("vd", -1),
        ("vdA", -1),
        ("vda-x", -1),
        ("vd1", -1),
        ("nvme0n1", -1),
        ("vd" + "z" * 40, -1),  # past a C int: libvirt cannot number it
        ("vdzzzzzz", 26 + 26**2 + 26**3 + 26**4 + 26**5 + 26**6 - 1),  # still an int
    ],
)
def test_disk_names_are_numbered_as_virDiskNameParse_does(name, index):
    from lxml import etree

    assert disk_index(etree.fromstring(disk(name))) == index


def test_q35_metadata_asking_for_millions_of_spare_ports_is_refused():
    xml = pc_domain(nic(), machine="q35", metadata=Q35_META.format(spare="100000000"))
    refused(planner("relayout", "-", stdin=xml.encode()), "metadata", "spare")
    refused(planner("show", "-", stdin=xml.encode()), "metadata", "spare")


@pytest.mark.parametrize("command", ["relayout", "show"])
def test_pc_metadata_with_a_huge_nic_range_is_refused(command):
    xml = pc_domain(nic(3), metadata=PC_META.format(first="0x03", slots="99999999999"))
    refused(planner(command, "-", stdin=xml.encode()), "metadata", "slots")


def test_hotplug_refuses_a_huge_recorded_nic_range_before_choosing():
    # before the bounds, the choice walked the 99999999999 slots of the range: for hours
    proc = in_child(
        "from domains import nic, pc_domain\n"
        "from test_bounds import PC_META\n"
        "from planner.errors import InputError\n"
        "from planner.choice import choose\n"
        "from planner.machines import read_topology\n"
        "from planner.xmldoc import Document\n"
        "xml = pc_domain(nic(3), metadata=PC_META.format(first='0x03', slots='99999999999'))\n"
        "try:\n"
        "    choose([read_topology(Document.parse(xml))], 'interface')\n"
        "except InputError as exc:\n"
        "    print('refused:', exc)\n"
    )
    assert proc.returncode == 0 and "refused:" in proc.stdout and "slots" in proc.stdout, (
        proc.stdout + proc.stderr[-2000:]
    )


def test_recorded_nic_range_at_slot_0_is_refused():
    xml = pc_domain(nic(3), metadata=PC_META.format(first="0x00", slots="8"))
    with pytest.raises(InputError, match="first-slot"):
        show(xml)


def test_a_huge_spare_ports_option_is_one_line_naming_the_flag():
    xml = pc_domain(nic(), machine="q35")
    refused(
        planner("relayout", "--spare-ports", "50000000", "-", stdin=xml.encode()), "--spare-ports"
    )


@pytest.mark.parametrize(
    "field, value",
    [("nic_start", 32), ("nic_slots", 10**9), ("spare_ports", 256), ("spare_other_ports", 10**8)],
)
def test_policy_numbers_are_checked_whoever_gives_them(field, value):
    with pytest.raises(ImpossibleError) as exc:
        Policy(**{field: value})
    assert exc.value.option == field


def test_dev_zero_is_refused_unread():
    refused(planner("relayout", "/dev/zero"), "16 MiB")
    refused(planner("show", "/dev/zero"), "16 MiB")


def test_input_over_the_limit_is_refused_by_the_library_too():
    with pytest.raises(InputError, match="16 MiB"):
        relayout(b" " * (MAX_INPUT + 1))


def test_pci_controller_index_over_255_is_refused():
    bridge = "<controller type='pci' index='256' model='pci-bridge'/>"
    with pytest.raises(InputError, match="255"):
        relayout(pc_domain(bridge))
    # 255 itself is libvirt's limit, not an error of its own: libvirt then adds bridges
    # 1..254 by itself, which bus 0 cannot take (planner says so, one line).
    with pytest.raises(PlannerError) as caught:
        relayout(pc_domain("<controller type='pci' index='255' model='pci-bridge'/>"))
    assert "too high" not in str(caught.value)


def test_q35_root_ports_past_index_255_are_refused_not_written():
    port = "<controller type='pci' index='250' model='pcie-root-port'/>"
    with pytest.raises(ImpossibleError) as caught:  # libvirt's 255, or pcie-root's 32 slots
        relayout(pc_domain(port, nic(), machine="q35"), spare_ports=10)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["0x0x5", "0o5", "1_0", "0x", "09", "\u0663"])
def test_numbers_are_read_as_strtoul_reads_them(text):
    with pytest.raises(InputError):
        parse_number(text, "slot")


def test_a_pci_root_with_an_address_does_not_recurse():
    root = (
        "<controller type='pci' index='0' model='pci-root'>"
        "<address type='pci' slot='5'/></controller>"
    )
    with contextlib.suppress(PlannerError):  # a one-line refusal is fine; a recursion is not
        show(pc_domain(root, nic()))


def test_multifunction_on_an_address_libvirt_assigns_is_settled_in_one_pass():
    """``<address type='pci' multifunction='on'/>`` (no slot): the first relayout already
    writes what the second would (found by the fuzz: not idempotent)."""
    alone = nic().replace(
        "</interface>", "  <address type='pci' multifunction='on'/>\n</interface>"
    )
    first = relayout(pc_domain(alone))
    assert not relayout(first.xml).changed
