"""The CLI layer: error classes to exit codes, flag hints, and usage errors (in process)."""

from __future__ import annotations

import pytest
from cli_runner import run_main

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
