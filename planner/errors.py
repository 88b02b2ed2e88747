"""Errors the CLI turns into one line on stderr and a distinct exit code."""

from __future__ import annotations

# Exit codes. 1 is reserved for ``relayout --check`` ("would change").
EXIT_CHECK_DIRTY = 1
EXIT_INPUT = 2  # unreadable/hostile XML, invalid domain, impossible or unsupported request
EXIT_NO_ROOM = 3  # hot-plug: the NIC range (or the non-NIC block) is full
EXIT_NOT_FOUND = 4  # hot-plug: no such domain
EXIT_UNREACHABLE = 5  # libvirtd cannot be reached
EXIT_LIBVIRT = 6  # libvirt refused the request


class PlannerError(Exception):
    """An error with a one-line message meant for the user and an exit code."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(PlannerError):
    """The XML cannot be read, or does not describe a valid domain."""


class UnsupportedError(PlannerError):
    """A machine type or device arrangement planner does not lay out (yet)."""


class ImpossibleError(PlannerError):
    """The request cannot be met, e.g. the NIC range does not fit on the bus."""


class NoRoomError(PlannerError):
    """Hot-plug: no free place left in the part of the layout the device belongs to."""

    exit_code = EXIT_NO_ROOM


class DomainNotFound(PlannerError):
    exit_code = EXIT_NOT_FOUND


class Unreachable(PlannerError):
    exit_code = EXIT_UNREACHABLE


class LibvirtRefused(PlannerError):
    exit_code = EXIT_LIBVIRT
