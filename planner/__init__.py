"""planner: a PCI layout for libvirt domains that keeps guest NIC names predictable.

The public API is small and import-light (libvirt is imported only by hot-plug):

- :func:`relayout` rewrites domain XML (a string) and returns the new XML and its plan.
- :func:`hotplug` attaches a device to a domain at the address the layout reserves for it.
- :func:`unplug` detaches one PCI device and waits until the guest has released it.
- :mod:`planner.errors`: typed errors carrying data (element, address, limit, option).

``relayout`` is imported eagerly on purpose: the function and its submodule share the
name, and the function must be bound after the submodule is loaded, or loading it
later would replace the function. No submodule is named ``hotplug`` or ``unplug``:
those functions live in :mod:`planner.attach` and :mod:`planner.detach`, whose pure
choice is :mod:`planner.choice`. Nothing here loads libvirt.
"""

from __future__ import annotations

from ._version import __version__
from .errors import (
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
from .policy import Policy
from .relayout import RelayoutResult, relayout

__all__ = [
    "PlannerError",
    "Policy",
    "RelayoutResult",
    "relayout",
    "hotplug",
    "unplug",
    "__version__",
    "AddressClash",
    "DomainNotFound",
    "ImpossibleError",
    "InputError",
    "LibvirtRefused",
    "NoRoomError",
    "PlannerError",
    "Policy",
    "RelayoutResult",
    "Unreachable",
    "UnsupportedError",
    "__version__",
    "hotplug",
    "relayout",
    "unplug",
]


def hotplug(domain, device_xml, **options):
    """Attach a device at its planned address: see :func:`planner.attach.hotplug`.

    Imported on first use, so relayout never loads the libvirt side.
    """
    from .attach import hotplug as _hotplug

    return _hotplug(domain, device_xml, **options)


def unplug(domain, match, **options):
    """Detach one PCI device and wait until it is gone: see :func:`planner.detach.unplug`."""
    from .detach import unplug as _unplug

    return _unplug(domain, match, **options)
