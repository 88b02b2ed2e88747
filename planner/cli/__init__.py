"""The ``planner`` command line: the only place that reads parsed arguments, prints,
and turns errors into exit codes.

One module per command (:mod:`.relayout`, :mod:`.show`, :mod:`.hotplug`,
:mod:`.unplug`, :mod:`.audit`), each with
``add_parser(subparsers)`` and ``run(args) -> int``. A command module imports at
its top only what building the parser needs; what its command needs beyond relayout's
own modules (libvirt's edge, the audit, reports, file writes) is imported in ``run``,
so ``planner relayout FILE`` starts as fast as it can. The library below raises typed
errors (:mod:`planner.errors`); :func:`exit_code` maps each class to its code:

    0  success (``relayout --check``: nothing would change)
    1  ``relayout --check``: a relayout would change something; ``unplug``: the guest
       has not released the device yet; ``audit``: a domain is at risk or full
    2  bad input, an impossible or unsupported request; ``audit``: a domain could not
       be judged (unsupported, unreadable, not found)
    3  hot-plug: no room
    4  domain not found
    5  libvirtd unreachable (or libvirt-python missing)
    6  libvirt refused the request
    70 an internal error: a bug in planner (the traceback with ``PLANNER_DEBUG=1``)
    75 hot-plug/unplug: the domain's lock stayed taken past the timeout: retry later

``relayout --all`` exits with the code of the first domain that failed (0 if none did;
70 if that failure is a planner bug).
Every path ends in exactly one ``planner: error:`` line on stderr: planner's typed
errors, argparse's usage errors, a libvirt error that escaped the libvirt edge, and
any other exception (the top-level guard in :func:`main`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import PlannerError
from .common import (  # noqa: F401 - the exit codes are planner.cli's public names
    EXIT_CHECK_DIRTY,
    EXIT_CODES,
    EXIT_INPUT,
    EXIT_LIBVIRT,
    EXIT_LOCK_TIMEOUT,
    EXIT_NO_ROOM,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_UNREACHABLE,
    UsageError,
    VersionAction,
    exit_code,
    read_input,
    warn,
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

# The commands, in the order --help lists them; each is the module of that name here,
# imported only when its parser is built (see build_parser).
COMMANDS = ("relayout", "show", "hotplug", "unplug", "audit")
__all__ = ["main", "exit_code", "UsageError", "read_input", "warn", "EXIT_CODES"]


def error_line(exc: PlannerError) -> str:
    """The one line printed for an error, with the flag it concerns if any."""
    flag = FLAGS.get(exc.option or "")
    message = str(exc)
    if flag and flag not in message:
        message = f"{flag}: {message}"
    return f"planner: error: {message}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one ``planner: error:`` line and exit 2 (not the
    usage text and a ``planner relayout: error:`` line)."""

    def error(self, message: str):
        raise UsageError(" ".join(f"{self.prog.partition(' ')[2]} {message}".split()))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone (what it parses is the same;
    importing and building all five costs a millisecond or two of every run's start-up)."""
    parser = _Parser(
        prog="planner",
        description="PCI layouts for libvirt domains that keep guest NIC names predictable.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        if command in (None, name):
            _module(name).add_parser(sub)
    return parser


def _module(command: str):
    return importlib.import_module(f"{__name__}.{command}")


def _command(argv: list[str]) -> str | None:
    """The command ``argv`` names, if it names one: the first word that is not an option
    (planner's own options, ``-h`` and ``--version``, take no value). None (build every
    parser, so that errors list every command) for anything else."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    try:
        args = build_parser(_command(argv)).parse_args(argv)
        return _module(args.command).run(args)
    except PlannerError as exc:
        _say(error_line(exc))
        return exit_code(exc)
    except KeyboardInterrupt:
        _say("planner: interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit:  # argparse's --help and --version
        raise
    except Exception as exc:  # noqa: BLE001 - the top-level guard: one line, never a traceback
        return _unexpected(exc)


def _unexpected(exc: Exception) -> int:
    """A libvirt error that escaped the libvirt edge keeps its meaning (the domain is
    gone: 4, anything else libvirt said: 6); any other exception is a bug: exit 70,
    one line naming it, the traceback only with PLANNER_DEBUG=1."""
    from .. import virt

    if virt.is_libvirt_error(exc):
        typed = virt.refused(exc, f"libvirt: {virt.message(exc)}")
        _say(error_line(typed))
        return exit_code(typed)
    if os.environ.get("PLANNER_DEBUG") == "1":
        import traceback

        traceback.print_exc()
    text = " ".join(str(exc).split())[:500]
    _say(
        f"planner: error: internal error (a bug in planner, please report it): "
        f"{type(exc).__name__}{': ' + text if text else ''}"
        + ("" if os.environ.get("PLANNER_DEBUG") == "1" else " (PLANNER_DEBUG=1 shows where)")
    )
    return EXIT_SOFTWARE


def _say(line: str) -> None:
    """One line on stderr, whatever encoding stderr has."""
    try:
        print(line, file=sys.stderr)
    except UnicodeEncodeError:
        print(line.encode("ascii", "backslashreplace").decode("ascii"), file=sys.stderr)
