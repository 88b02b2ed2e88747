"""The CLI layer: error classes to exit codes, flag hints, and usage errors (in process)."""

from __future__ import annotations

import pytest
from cli_runner import ROOT, run_main

from planner.cli import EXIT_CODES, error_line, exit_code
from planner.errors import (
    AddressClash,
    DomainNotFound,
    ImpossibleError,
    InputError,
    LibvirtRefused,
    NoRoomError,
    PlannerError,
    Unreachable,
    UnsupportedError,
)


@pytest.mark.parametrize(
    "error, code",
    [
        (InputError("x"), 2),
        (UnsupportedError("x"), 2),
        (ImpossibleError("x"), 2),
        (PlannerError("x"), 2),
        (NoRoomError("x"), 3),
        (DomainNotFound("x"), 4),
        (Unreachable("x"), 5),
        (LibvirtRefused("x"), 6),
        (AddressClash("x"), 6),
    ],
)
def test_each_error_class_has_its_exit_code(error, code):
    assert exit_code(error) == code


def test_errors_carry_data_and_no_exit_code():
    err = NoRoomError("full", limit=8, address="0000:00:05.0")
    assert (err.limit, err.address, str(err)) == (8, "0000:00:05.0", "full")
    assert not hasattr(err, "exit_code")
    assert EXIT_CODES[-1] == (PlannerError, 2)


def test_the_cli_adds_the_flag_an_error_is_about():
    assert error_line(InputError("the domain is not running", option="live")) == (
        "planner: error: --live: the domain is not running"
    )
    assert error_line(InputError("plain")) == "planner: error: plain"


def one_line(proc, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planner: error: "), proc.stderr
    assert proc.stdout == b""
    return lines[0]


def test_hotplug_refuses_a_device_file_and_nic_options_together(tmp_path):
    nic = tmp_path / "nic.xml"
    nic.write_text("<interface type='user'/>")
    line = one_line(run_main("hotplug", "web1", nic, "--network", "default"), 2)
    assert "not both" in line


def test_hotplug_needs_a_device_or_a_nic():
    assert "--network, --bridge or --user" in one_line(run_main("hotplug", "web1"), 2)


def test_relayout_define_needs_a_domain():
    assert "--define needs --domain" in one_line(run_main("relayout", "--define", "x.xml"), 2)


def test_relayout_domain_refuses_a_file_too():
    assert "not both" in one_line(run_main("relayout", "--domain", "web1", "x.xml"), 2)


def test_an_unreachable_daemon_is_exit_5():
    pytest.importorskip("libvirt")
    proc = run_main("hotplug", "-c", "qemu+tcp://127.0.0.1:1/system", "web1", "--user")
    assert "cannot connect to qemu+tcp://127.0.0.1:1/system" in one_line(proc, 5)


# --- one line for every path (issue 12) -------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["relayout", "--bogus", "x.xml"], "unrecognized arguments: --bogus"),
        (["relayout", "--nic-slots", "abc", "x.xml"], "relayout argument --nic-slots"),
        (["hotplug"], "hotplug the following arguments are required"),
        (["frob"], "invalid choice: 'frob'"),
        ([], "required: command"),
    ],
)
def test_argparse_errors_are_one_planner_error_line_exit_2(args, words):
    assert words in one_line(run_main(*args), 2)


def test_an_unexpected_exception_is_one_line_naming_a_bug_exit_70(monkeypatch):
    from planner.cli import show

    def broken(args):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(show, "run", broken)
    monkeypatch.delenv("PLANNER_DEBUG", raising=False)
    line = one_line(run_main("show", "x.xml"), 70)
    assert "a bug in planner" in line and "ZeroDivisionError: division by zero second line" in line
    monkeypatch.setenv("PLANNER_DEBUG", "1")
    proc = run_main("show", "x.xml")
    assert proc.returncode == 70
    err = proc.stderr.decode()
    assert "Traceback" in err and err.splitlines()[-1].startswith("planner: error: internal error")


def test_a_libvirt_error_that_escapes_keeps_its_meaning(monkeypatch):
    libvirt = pytest.importorskip("libvirt")
    from planner.cli import show

    def raising(code):
        def run(args):
            exc = libvirt.libvirtError("libvirt said no")
            exc.err = (code, 0, "libvirt said no", 2, "", None, None, 0, 0)
            raise exc

        return run

    monkeypatch.setattr(show, "run", raising(libvirt.VIR_ERR_NO_DOMAIN))
    assert "no longer exists" in one_line(run_main("show", "x.xml"), 4)
    monkeypatch.setattr(show, "run", raising(libvirt.VIR_ERR_OPERATION_FAILED))
    assert "libvirt said no" in one_line(run_main("show", "x.xml"), 6)


def test_xml_goes_out_as_utf8_whatever_pythonioencoding_says(tmp_path):
    import os
    import subprocess
    import sys

    doc = tmp_path / "café.xml"
    doc.write_text(
        "<domain type='kvm'><name>café</name><os><type arch='x86_64' machine='pc'>hvm</type>"
        "</os><devices><interface type='network'><source network='réseau'/>"
        "<model type='virtio'/></interface></devices></domain>",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    for args in (["relayout", str(doc)], ["show", str(doc)], ["relayout", "--diff", str(doc)]):
        proc = subprocess.run(
            [sys.executable, "-m", "planner", *args], capture_output=True, env=env, cwd=ROOT
        )
        assert proc.returncode == 0, proc.stderr
        assert "réseau".encode() in proc.stdout and proc.stderr == b""
    proc = subprocess.run(
        [sys.executable, "-m", "planner", "relayout", str(tmp_path / "nope-é.xml")],
        capture_output=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1, proc.stderr


# --- --lock-timeout (issue 12) ----------------------------------------------------------


class _LockedDomain:
    def UUIDString(self):  # noqa: N802 - libvirt's names
        return "00000000-0000-0000-0000-00000000107c"


def test_hotplug_waits_lock_timeout_then_exits_75(monkeypatch, tmp_path):
    import contextlib

    from planner import virt
    from planner.lock import domain_lock

    lock_dir = tmp_path / "locks"
    monkeypatch.setenv("PLANNER_LOCK_DIR", str(lock_dir))
    monkeypatch.setattr(virt, "connection", lambda uri: contextlib.nullcontext(object()))
    monkeypatch.setattr(virt, "lookup", lambda conn, name: _LockedDomain())
    monkeypatch.setattr(virt, "attach_flags", lambda dom, live, config: 0)
    with domain_lock(_LockedDomain().UUIDString()):  # held by "another" planner
        line = one_line(run_main("hotplug", "web1", "--user", "--lock-timeout", "0.3"), 75)
    assert "timed out after 0.3 s" in line and "--lock-timeout" in line


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "1e9", "soon"])
@pytest.mark.parametrize("command", ["hotplug", "unplug"])
def test_lock_timeout_is_bounded_and_validated(command, value):
    extra = ["--user"] if command == "hotplug" else ["ens4"]
    line = one_line(run_main(command, "web1", *extra, "--lock-timeout", value), 2)
    assert "--lock-timeout" in line


def test_unplug_passes_its_lock_timeout_to_the_lock(monkeypatch):
    from planner import detach

    seen = {}

    def unplug(domain, match, **kwargs):
        seen.update(kwargs)
        raise detach.InputError("stop here")

    monkeypatch.setattr(detach, "unplug", unplug)
    one_line(run_main("unplug", "web1", "ens4", "--lock-timeout", "2.5"), 2)
    assert seen["lock_timeout"] == 2.5


@pytest.mark.parametrize("command", ["relayout", "show", "hotplug", "unplug", "audit"])
def test_a_command_parses_as_it_would_among_all(command, capsys):
    """main() builds only the parser of the command it runs (start-up): that parser's
    help is the one the parser of every command gives."""
    from planner.cli import build_parser

    helps = []
    for parser in (build_parser(command), build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1] and f"usage: planner {command}" in helps[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["relayot", "x.xml"], "invalid choice: 'relayot' (choose from 'relayout', 'show', "),
        (["--", "relayout"], "(choose from 'relayout', 'show', 'hotplug', 'unplug', 'audit')"),
        (["-x", "relayout"], "unrecognized arguments: -x"),
    ],
)
def test_a_usage_error_outside_a_command_still_knows_every_command(args, words):
    assert words in one_line(run_main(*args), 2)
