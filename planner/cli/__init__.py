"""The ``planner`` command line: the only place that reads parsed arguments, prints,
and turns errors into exit codes.

One module per command (:mod:`.relayout`, :mod:`.show`, :mod:`.hotplug`,
:mod:`.unplug`), each with
``add_parser(subparsers)`` and ``run(args) -> int``. The library below raises typed
errors (:mod:`planner.errors`); :func:`exit_code` maps each class to its code:

    0  success (``relayout --check``: nothing would change)
    1  ``relayout --check``: a relayout would change something; ``unplug``: the guest
       has not released the device yet
    2  bad input, an impossible or unsupported request
    3  hot-plug: no room
    4  domain not found
    5  libvirtd unreachable (or libvirt-python missing)
    6  libvirt refused the request
    75 hot-plug/unplug: the domain's lock stayed taken past the timeout: retry later
"""

from __future__ import annotations

import argparse
import sys

from ..errors import (
    DomainNotFound,
    LibvirtRefused,
    LockTimeout,
    NoRoomError,
    PlannerError,
    Unreachable,
)
from ..versions import VersionAction
from . import hotplug, relayout, show, unplug
from .common import UsageError, read_input, warn

EXIT_OK = 0
EXIT_CHECK_DIRTY = 1
EXIT_INPUT = 2
EXIT_NO_ROOM = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_LIBVIRT = 6
EXIT_LOCK_TIMEOUT = 75  # sysexits EX_TEMPFAIL: a temporary failure, retry later

# The first class an error is an instance of decides (subclasses before their bases).
EXIT_CODES: tuple[tuple[type[PlannerError], int], ...] = (
    (LockTimeout, EXIT_LOCK_TIMEOUT),
    (NoRoomError, EXIT_NO_ROOM),
    (DomainNotFound, EXIT_NOT_FOUND),
    (Unreachable, EXIT_UNREACHABLE),
    (LibvirtRefused, EXIT_LIBVIRT),
    (PlannerError, EXIT_INPUT),
)

# The command-line flag of each setting an error can be about (PlannerError.option).
FLAGS = {
    "nic_start": "--nic-start",
    "nic_slots": "--nic-slots",
    "spare_ports": "--spare-ports",
    "acpi_index": "--acpi-index",
    "live": "--live",
    "config": "--config",
    "fallback": "--fallback",
}

COMMANDS = {"relayout": relayout, "show": show, "hotplug": hotplug, "unplug": unplug}
__all__ = ["main", "exit_code", "UsageError", "read_input", "warn", "EXIT_CODES"]


def exit_code(exc: PlannerError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


def error_line(exc: PlannerError) -> str:
    """The one line printed for an error, with the flag it concerns if any."""
    flag = FLAGS.get(exc.option or "")
    message = str(exc)
    if flag and flag not in message:
        message = f"{flag}: {message}"
    return f"planner: error: {message}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="planner",
        description="PCI layouts for libvirt domains that keep guest NIC names predictable.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except PlannerError as exc:
        print(error_line(exc), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("planner: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
