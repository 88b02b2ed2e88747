"""What the commands share: the policy options, input, warnings, usage errors."""

from __future__ import annotations

import argparse
import sys

from ..errors import (
    DomainNotFound,
    InputError,
    LibvirtRefused,
    LockTimeout,
    NoRoomError,
    PlannerError,
    Unreachable,
)
from ..pci import parse_number
from ..xmldoc import MAX_INPUT, check_size


def _slot_count(text: str) -> int:
    try:
        return parse_number(text, "slot")
    except PlannerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--nic-start",
        type=_slot_count,
        metavar="SLOT",
        help="first slot of the NIC range on bus 0 (i440fx; default 3)",
    )
    p.add_argument(
        "--nic-slots",
        type=_slot_count,
        metavar="N",
        help="minimum NIC capacity, counting existing NICs (default 8)",
    )
    p.add_argument(
        "--spare-ports",
        type=_slot_count,
        metavar="K",
        help="PCIe machines: empty root ports kept for hot-plugged NICs (default 4, at least 1)",
    )
    p.add_argument(
        "--acpi-index",
        action="store_true",
        default=None,
        help="give every NIC an ACPI index: the guest names it eno<N>",
    )


MAX_LOCK_TIMEOUT = 3600.0  # seconds: an hour is already far past any hot-plug


def lock_seconds(text: str) -> float:
    """``--lock-timeout``: a finite number of seconds, 0 (one try) to an hour."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_LOCK_TIMEOUT:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(
            f"{text!r}: the lock timeout must be between 0 and {MAX_LOCK_TIMEOUT:g} seconds"
        )
    return value


def add_lock_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock-timeout",
        type=lock_seconds,
        default=30.0,
        metavar="SECONDS",
        help="wait at most this long for another planner's hot-plug/unplug of the domain "
        "(default 30; 0: one try); then exit 75",
    )


def policy_overrides(args) -> dict:
    """The Policy fields given on the command line (None: not given)."""
    return dict(
        nic_start=args.nic_start,
        nic_slots=args.nic_slots,
        spare_ports=args.spare_ports,
        acpi_index=args.acpi_index,
    )


EXIT_OK = 0
EXIT_CHECK_DIRTY = 1
EXIT_INPUT = 2
EXIT_NO_ROOM = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5
EXIT_LIBVIRT = 6
EXIT_SOFTWARE = 70  # sysexits EX_SOFTWARE: an internal error, a bug in planner
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


def exit_code(exc: PlannerError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


class UsageError(PlannerError):
    """A combination of options the command line refuses (exit 2)."""


def write_stdout(text: str) -> None:
    """Output (XML, tables) as UTF-8 bytes, whatever PYTHONIOENCODING or the locale say:
    domain XML is UTF-8, and an ASCII stdout must not turn a name into a traceback."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stream (a caller's StringIO)
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


def warn(message: str) -> None:
    print(f"planner: warning: {message}", file=sys.stderr)


def read_input(path: str, what: str = "domain XML") -> bytes:
    """A file's bytes, or stdin's for ``-``: at most one byte more than the input limit
    (:data:`planner.xmldoc.MAX_INPUT`), so that ``/dev/zero`` or a huge file is refused
    without being read into memory."""
    limit = MAX_INPUT + 1
    try:
        if path == "-":
            data = _read_at_most(sys.stdin.buffer, limit)
        else:
            with open(path, "rb") as fh:
                data = _read_at_most(fh, limit)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    check_size(len(data), f"{what} {'on stdin' if path == '-' else path}")
    return data


def _read_at_most(fh, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit:
        chunk = fh.read(min(limit - size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class VersionAction(argparse.Action):
    """``--version``: print :func:`planner.versions.version_lines` and exit 0."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.setdefault("help", "print versions (planner, lxml, libxml2, libvirt) and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..versions import version_lines  # only for --version: it loads platform

        print("\n".join(version_lines()))
        parser.exit(0)
