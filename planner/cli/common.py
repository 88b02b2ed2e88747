"""What the commands share: the policy options, input, warnings, usage errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import (
    DomainNotFound,
    LibvirtRefused,
    LockTimeout,
    NoRoomError,
    PlannerError,
    Unreachable,
)
from ..pci import parse_number


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


def warn(message: str) -> None:
    print(f"planner: warning: {message}", file=sys.stderr)


def read_input(path: str) -> bytes:
    """A file's bytes, or stdin's for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PlannerError(f"cannot read {path}: {exc.strerror}") from None
