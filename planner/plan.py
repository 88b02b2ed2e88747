"""Plan types: where every PCI device of a domain goes. Pure data, no XML.

The machines (:mod:`planner.machines`) build these; nothing here knows a machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .layout import LayoutRecord
from .pci import PciAddress
from .policy import Policy
from .topology import Device, Role, Topology


@dataclass(frozen=True)
class Placement:
    """A device's planned address. ``multifunction`` is the attribute libvirt needs on
    function 0 of a slot with several functions (True), must not keep (False), or
    whatever the device had (None)."""

    device: Device
    address: PciAddress
    multifunction: bool | None = None

    @property
    def moved(self) -> bool:
        d = self.device
        if d.pos is None or d.address != self.address:
            return True
        return self.multifunction is not None and self.multifunction != d.multifunction


@dataclass(frozen=True)
class NewController:
    """A PCI controller the plan adds (a pci-bridge, a pcie-root-port, ...)."""

    index: int
    model: str
    address: PciAddress
    target: tuple[tuple[str, str], ...] = ()  # <target> attributes, e.g. chassis, port
    after_index: int | None = None  # keep controllers ordered by index in the XML
    multifunction: bool = False  # function 0 of a slot whose other functions are used


@dataclass(frozen=True)
class Plan:
    """Where every PCI device of a topology goes under a policy: one placement per
    device, the controllers to add, the ACPI indexes to set, the layout to record."""

    topology: Topology
    policy: Policy
    layout: LayoutRecord
    placements: tuple[Placement, ...]
    new_controllers: tuple[NewController, ...] = ()
    acpi_indexes: dict[int, int] = field(default_factory=dict)  # device pos -> index to set
    warnings: tuple[str, ...] = ()

    @property
    def moves(self) -> tuple[Placement, ...]:
        return tuple(p for p in self.placements if p.moved)

    def address_of(self, device: Device) -> PciAddress:
        for p in self.placements:
            if p.device is device:
                return p.address
        raise KeyError(device)

    def controller_addresses(self) -> dict[int, PciAddress]:
        """Planned address of every PCI controller, by the index of the bus it provides."""
        out = self.topology.controller_addresses()
        out.update(
            {
                p.device.provides_bus: p.address
                for p in self.placements
                if p.device.provides_bus is not None
            }
        )
        out.update({c.index: c.address for c in self.new_controllers})
        return out

    @property
    def nic_placements(self) -> tuple[Placement, ...]:
        return tuple(p for p in self.placements if p.device.role is Role.NIC)
