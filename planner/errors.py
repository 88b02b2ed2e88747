"""planner's errors: typed, one-line messages, carrying the data an orchestrator acts on.

No exit codes here: the command line (:mod:`planner.cli`) maps each class to one.
Messages never name command-line options; ``option`` says which setting (a
:class:`~planner.policy.Policy` field) an error is about, for the CLI to hint at.
"""

from __future__ import annotations

from typing import Any


class PlannerError(Exception):
    """An error with a one-line message meant for the user.

    element: the tag of the element at fault; address: the PCI address concerned;
    limit: the bound that was hit; option: the Policy field the request came from.
    """

    def __init__(
        self,
        message: str,
        *,
        element: str | None = None,
        address: Any = None,
        limit: int | None = None,
        option: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.element = element
        self.address = address
        self.limit = limit
        self.option = option


class InputError(PlannerError):
    """The XML cannot be read, or does not describe a valid domain."""


class UnsupportedError(PlannerError):
    """A machine type, architecture or feature planner does not handle (yet)."""


class ImpossibleError(PlannerError):
    """The request cannot be met, e.g. the NIC range does not fit on the bus."""


class NoRoomError(PlannerError):
    """Hot-plug: no free place left in the part of the layout the device belongs to."""


class WriteError(PlannerError):
    """An output file could not be written; nothing was replaced (:mod:`planner.files`)."""


class LockError(PlannerError):
    """The hot-plug lock directory or file cannot be used safely (:mod:`planner.lock`)."""


class LockTimeout(LockError):
    """Another process held the domain's lock for longer than the timeout."""

    def __init__(self, message: str, path: str = "", holder: int | None = None):
        super().__init__(message)
        self.path = path
        self.holder = holder


class VirtError(PlannerError):
    """An error at the libvirt edge (:mod:`planner.virt`)."""

    def __init__(self, message: str, *, domain: str | None = None, **data):
        super().__init__(message, **data)
        self.domain = domain


class DomainNotFound(VirtError):
    """No domain by that name or UUID."""


class Unreachable(VirtError):
    """libvirtd cannot be reached, or libvirt-python is missing."""


class LibvirtRefused(VirtError):
    """libvirt refused the request (attach, define, a read)."""


class AddressClash(LibvirtRefused):
    """libvirt refused an attach because the address (or ACPI index) is taken."""
