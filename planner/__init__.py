"""planner: a PCI layout for libvirt domains that keeps guest NIC names predictable.

The public API is small and import-light (libvirt is imported only by hot-plug):

- :func:`relayout` rewrites domain XML (a string) and returns the new XML and its plan.
- :func:`hotplug` attaches a device to a domain at the address the layout reserves for it.
"""

from __future__ import annotations

__version__ = "0.1.0"

# ``hotplug`` is imported here, not behind a lazy wrapper: loading the submodule
# planner.hotplug sets the package attribute ``hotplug`` to that module, which would
# shadow the wrapper. The submodule imports libvirt only when a hot-plug runs.
from .errors import PlannerError
from .hotplug import hotplug
from .policy import Policy
from .relayout import RelayoutResult, relayout

__all__ = ["PlannerError", "Policy", "RelayoutResult", "relayout", "hotplug", "__version__"]
