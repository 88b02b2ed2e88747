"""planner: a PCI layout for libvirt domains that keeps guest NIC names predictable.

The public API is small and import-light (libvirt is imported only by hot-plug):

- :func:`relayout` rewrites domain XML (a string) and returns the new XML and its plan.
- :func:`hotplug` attaches a device to a domain at the address the layout reserves for it.
- :func:`unplug` detaches one PCI device and waits until the guest has released it.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import PlannerError
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
