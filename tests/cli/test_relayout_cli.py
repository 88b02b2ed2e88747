"""``planner relayout`` and ``planner show`` as a user runs them.

In process through ``main(argv)`` (tests/cli_runner.py), with the exit status, stdout
and stderr a process would give; tests/cli/test_smoke.py runs the real processes.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cli_runner import run_main
from domains import (
    BILLION_LAUGHS,
    EXTERNAL_FILE,
    EXTERNAL_HTTP,
    GOLDEN,
    SAMPLES,
    disk,
    nic,
    pc_domain,
)

CLOUDSTACK = SAMPLES / "cloudstack-2nic.xml"


def planner(*args: str, stdin: bytes | None = None, cwd: Path | None = None):
    return run_main(*args, stdin=stdin, cwd=cwd)


def one_error_line(proc) -> str:
    """The single ``planner: error:`` line a failure must print, and nothing else."""
    err = proc.stderr.decode()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("planner: error: "), err
    return lines[0]


# --- where the output goes ---------------------------------------------------------------


def test_relayout_prints_the_rewritten_domain_on_stdout():
    proc = planner("relayout", CLOUDSTACK)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == (GOLDEN / CLOUDSTACK.name).read_text()
    assert proc.stderr == b""


def test_relayout_reads_stdin_given_a_dash():
    proc = planner("relayout", "-", stdin=CLOUDSTACK.read_bytes())
    assert proc.returncode == 0
    assert proc.stdout.decode() == (GOLDEN / CLOUDSTACK.name).read_text()


def test_relayout_o_writes_the_file_and_nothing_on_stdout(tmp_path):
    target = tmp_path / "out.xml"
    proc = planner("relayout", CLOUDSTACK, "-o", target)
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert target.read_text() == (GOLDEN / CLOUDSTACK.name).read_text()


def test_relayout_in_place_replaces_the_file_atomically_and_keeps_its_mode(tmp_path):
    target = tmp_path / "dom.xml"
    target.write_bytes(CLOUDSTACK.read_bytes())
    target.chmod(0o640)
    before = target.stat().st_ino
    proc = planner("relayout", "-i", target)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b""
    assert target.read_text() == (GOLDEN / CLOUDSTACK.name).read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != before  # renamed over, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["dom.xml"]


def test_relayout_in_place_leaves_an_already_laid_out_file_alone(tmp_path):
    target = tmp_path / "dom.xml"
    target.write_bytes((GOLDEN / CLOUDSTACK.name).read_bytes())
    before = target.stat()
    proc = planner("relayout", "--in-place", target)
    assert proc.returncode == 0
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_relayout_in_place_refuses_stdin():
    proc = planner("relayout", "-i", "-", stdin=CLOUDSTACK.read_bytes())
    assert proc.returncode == 2
    assert "--in-place needs a file" in one_error_line(proc)


def test_relayout_o_into_a_missing_directory_is_a_one_line_error(tmp_path):
    proc = planner("relayout", CLOUDSTACK, "-o", tmp_path / "no" / "such" / "dir.xml")
    assert proc.returncode == 2
    assert "cannot write" in one_error_line(proc)


def test_relayout_of_a_missing_file_is_a_one_line_error(tmp_path):
    proc = planner("relayout", tmp_path / "absent.xml")
    assert proc.returncode == 2
    assert "cannot read" in one_error_line(proc)


# --- diff, check, json -------------------------------------------------------------------


def test_relayout_diff_is_a_unified_diff_of_the_changes():
    proc = planner("relayout", "--diff", CLOUDSTACK)
    assert proc.returncode == 0
    diff = proc.stdout.decode().splitlines()
    assert diff[0] == f"--- a/{CLOUDSTACK}"
    assert diff[1] == f"+++ b/{CLOUDSTACK}"
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    assert (
        "+      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>"
        in added
    )
    assert "-    <watchdog model='i6300esb' action='none'/>" in removed
    assert any("<planner:layout" in line for line in added)


def test_relayout_diff_of_laid_out_output_is_empty():
    proc = planner("relayout", "--diff", GOLDEN / CLOUDSTACK.name)
    assert (proc.returncode, proc.stdout) == (0, b"")


def test_check_exits_1_on_a_fresh_file_and_writes_nothing():
    proc = planner("relayout", "--check", CLOUDSTACK)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, b"", b"")


def test_check_exits_0_on_relayouted_output():
    proc = planner("relayout", "--check", GOLDEN / CLOUDSTACK.name)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_check_with_other_options_than_recorded_exits_1():
    proc = planner("relayout", "--check", "--nic-slots", "4", GOLDEN / CLOUDSTACK.name)
    assert proc.returncode == 1


def test_json_has_the_moves_the_nic_range_and_the_guest_names():
    proc = planner("relayout", "--json", CLOUDSTACK)
    assert proc.returncode == 0
    plan = json.loads(proc.stdout)
    assert plan["machine"] == "pc"
    assert plan["changed"] is True
    assert plan["nic_range"] == {"bus": 0, "first_slot": 3, "last_slot": 10, "capacity": 8}
    assert plan["other_first_slot"] == 11
    assert [n["guest_name"] for n in plan["nics"]] == ["ens3", "ens4"]
    assert [n["address"] for n in plan["nics"]] == ["0000:00:03.0", "0000:00:04.0"]
    moves = {m["device"]: (m["from"], m["to"]) for m in plan["moves"]}
    assert moves["disk virtio vda"] == (None, "0000:00:0c.0")
    assert moves["watchdog i6300esb"] == (None, "0000:00:0e.0")


def test_json_of_a_preaddressed_domain_reports_where_devices_came_from():
    plan = json.loads(planner("relayout", "--json", SAMPLES / "preaddressed.xml").stdout)
    moves = {m["device"]: (m["from"], m["to"]) for m in plan["moves"]}
    assert moves["memballoon virtio"] == ("0000:00:07.0", "0000:00:0d.0")
    assert moves["controller virtio-serial index=0"] == ("0000:00:05.0", "0000:00:0b.0")


def test_nic_start_and_nic_slots_options():
    plan = json.loads(
        planner("relayout", "--json", "--nic-start", "5", "--nic-slots", "4", CLOUDSTACK).stdout
    )
    assert plan["nic_range"] == {"bus": 0, "first_slot": 5, "last_slot": 8, "capacity": 4}
    assert [n["guest_name"] for n in plan["nics"]] == ["ens5", "ens6"]


def test_warnings_go_to_stderr_and_the_output_is_still_written(tmp_path):
    big = tmp_path / "many.xml"
    many_disks = [disk(f"vd{chr(ord('a') + i)}") for i in range(22)]
    big.write_text(pc_domain(nic(), *many_disks))
    proc = planner("relayout", big)
    assert proc.returncode == 0
    assert proc.stderr.decode().startswith("planner: warning: bus 0 is full")
    assert "<controller type='pci' index='1' model='pci-bridge'>" in proc.stdout.decode()


# --- show --------------------------------------------------------------------------------


def test_show_of_relayouted_output_lists_nics_with_their_names_and_the_reserved_slots():
    proc = planner("show", GOLDEN / CLOUDSTACK.name)
    assert proc.returncode == 0
    rows = proc.stdout.decode().splitlines()
    assert rows[0].split() == ["bus:slot.fn", "device", "role", "guest", "name"]
    by_address = {row.split()[0]: row for row in rows[1:]}
    assert by_address["00:03.0"].split()[-2:] == ["nic", "ens3"]
    assert by_address["00:04.0"].split()[-2:] == ["nic", "ens4"]
    assert "cloudbr0" in by_address["00:03.0"]
    assert by_address["00:02.0"].split()[-1] == "fixed"
    assert by_address["00:0c.0"].split()[1:4] == ["disk", "virtio", "vda"]
    assert by_address["00:0c.0"].split()[-1] == "other"
    assert by_address["00:05-0a"].split()[1:] == ["(free)", "nic-reserved"]
    assert by_address["00:0f-1f"].split()[1:] == ["(free)", "free"]


def test_show_of_a_fresh_domain_says_no_layout_is_recorded_and_planned_shows_the_plan():
    current = planner("show", CLOUDSTACK).stdout.decode()
    assert "no planner layout recorded" in current
    assert "nic-reserved" not in current
    planned = planner("show", "--planned", CLOUDSTACK).stdout.decode()
    assert "ens3" in planned and "ens4" in planned and "nic-reserved" in planned


# --- bad input: one line on stderr, exit 2, nothing written ------------------------------

DUPLICATE = pc_domain(nic(5), disk("vda", 5))
OUT_OF_RANGE = pc_domain(
    disk("vda").replace("</disk>", "  <address type='pci' slot='0x20'/>\n</disk>")
)

BAD_INPUTS = {
    "malformed": b"<domain><name>x</name><devices>",
    "not-a-domain": b"<network><name>default</name></network>",
    "empty": b"",
    "invalid-utf8": b"<domain><name>\xff\xfe</name></domain>",
    "billion-laughs": BILLION_LAUGHS.encode(),
    "external-entity-file": EXTERNAL_FILE.encode(),
    "external-entity-http": EXTERNAL_HTTP.encode(),
    "duplicate-addresses": DUPLICATE.encode(),
    "slot-0x20": OUT_OF_RANGE.encode(),
    "nic-slots-40": CLOUDSTACK.read_bytes(),
}
EXTRA_ARGS = {"nic-slots-40": ["--nic-slots", "40"]}
MODES = ["stdout", "output", "in-place", "check", "json", "diff"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(tmp_path, case, mode):
    source = tmp_path / "dom.xml"
    source.write_bytes(BAD_INPUTS[case])
    source.chmod(0o640)
    target = tmp_path / "out.xml"
    args = ["relayout", *EXTRA_ARGS.get(case, []), source]
    args += {
        "stdout": [],
        "output": ["-o", target],
        "in-place": ["-i"],
        "check": ["--check"],
        "json": ["--json"],
        "diff": ["--diff"],
    }[mode]
    proc = planner(*args, cwd=tmp_path)
    assert proc.returncode == 2
    one_error_line(proc)
    assert proc.stdout == b""
    assert source.read_bytes() == BAD_INPUTS[case]
    assert stat.S_IMODE(source.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dom.xml"]  # no -o file, no temp file


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_on_stdin_is_one_error_line_too(case):
    proc = planner("relayout", *EXTRA_ARGS.get(case, []), "-", stdin=BAD_INPUTS[case])
    assert proc.returncode == 2
    one_error_line(proc)
    assert proc.stdout == b""


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_show_of_bad_input_is_one_error_line_too(tmp_path, case):
    source = tmp_path / "dom.xml"
    source.write_bytes(BAD_INPUTS[case])
    proc = planner("show", "--planned", *EXTRA_ARGS.get(case, []), source)
    assert proc.returncode == 2
    one_error_line(proc)
    assert proc.stdout == b""


def test_the_error_lines_say_what_is_wrong(tmp_path):
    def error(case: str) -> str:
        return one_error_line(
            planner("relayout", *EXTRA_ARGS.get(case, []), "-", stdin=BAD_INPUTS[case])
        )

    assert "malformed XML" in error("malformed")
    assert "expected <domain>" in error("not-a-domain")
    assert "empty document" in error("empty")
    assert "not valid UTF-8" in error("invalid-utf8")
    assert "DTDs are not allowed" in error("external-entity-file")
    assert "both claim PCI address 0000:00:05.0" in error("duplicate-addresses")
    assert "out of range" in error("slot-0x20")
    assert "--nic-slots 40" in error("nic-slots-40")
