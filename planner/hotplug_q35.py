"""Hot-plug on q35: a device goes into an empty pcie-root-port of its part of the layout.

A running guest cannot gain root ports, so when the NIC ports are all taken the
hot-plug is refused rather than spilling into ports kept for other devices.
"""

from __future__ import annotations

from .errors import NoRoomError
from .hotplug_plan import Choice, _occupied
from .layout import Layout
from .pci import PciAddress
from .topology import Role, Topology


def choose_q35(
    topos: list[Topology],
    layout: Layout,
    kind: str,
    policy: str,
    requested: PciAddress | None,
    warnings: tuple[str, ...],
) -> Choice:
    used = {bus for bus, _ in _occupied(topos)}
    if requested is not None:
        if any((requested.bus, requested.slot) == u for u in _occupied(topos)):
            raise NoRoomError(f"the device's own address {requested} is already in use")
        return Choice(requested, layout, warnings)
    if kind == "interface":
        ports = list(layout.nic_ports)
        if policy == "after-last":
            nic_buses = {
                d.address.bus for t in topos for d in t.devices if d.role is Role.NIC and d.address
            }
            last = max((i for i, p in enumerate(ports) if p in nic_buses), default=-1)
            ports = ports[last + 1 :]
        free = [p for p in ports if p not in used]
        if not free:
            raise NoRoomError(
                "no empty NIC root port left (root ports cannot be added to a "
                "running guest; relayout with more --spare-ports for the next boot)"
            )
    else:
        free = [p for p in layout.spare_other_ports if p not in used]
        if not free:
            raise NoRoomError(
                "no spare root port left for a non-NIC device "
                "(root ports cannot be added to a running guest)"
            )
    return Choice(PciAddress(0, free[0], 0, 0), layout, warnings)
