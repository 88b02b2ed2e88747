"""The knobs of a layout, with defaults chosen from what orchestrators need."""

from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import ImpossibleError
from .pci import MAX_BUS, MAX_SLOT

DEFAULT_NIC_START = 3
# Eight NIC slots (ens3..ens10 on pc) cover the NIC counts CloudStack, OpenStack and
# virt-install guests use, and leave 13 slots of bus 0 for everything else.
DEFAULT_NIC_SLOTS = 8
# PCIe machines: empty root ports kept for NICs hot-plugged later. KubeVirt and LXD reserve 4.
DEFAULT_SPARE_PORTS = 4
# PCIe machines: empty root ports kept after the non-NIC devices, for disks hot-plugged later.
DEFAULT_SPARE_OTHER_PORTS = 4

# What each number may be, whoever gives it (the command line, a caller, the metadata):
# a slot of one bus, a number of slots, a number of root ports (each is a PCI
# controller, whose index libvirt caps at 255). Checked before any of them reaches a
# range or a loop.
LIMITS = {
    "nic_start": (0, MAX_SLOT, "a slot of bus 0"),
    "nic_slots": (0, (MAX_BUS + 1) * (MAX_SLOT + 1), "the PCI slots a domain can have"),
    "spare_ports": (0, MAX_BUS, "the PCI controllers a domain can have"),
    "spare_other_ports": (0, MAX_BUS, "the PCI controllers a domain can have"),
}


@dataclass(frozen=True)
class Policy:
    """How to lay out a domain.

    nic_start: first slot of the NIC range on bus 0 (i440fx).
    nic_slots: minimum capacity of the NIC range, counting the NICs present. The
        range always keeps room for one more NIC than the domain has.
    spare_ports: PCIe machines, empty root ports reserved for hot-plugged NICs.
    spare_other_ports: PCIe machines, empty root ports for other hot-plugged devices.
    acpi_index: give every NIC an ACPI index, so the guest names it eno<N>.
    """

    nic_start: int = DEFAULT_NIC_START
    nic_slots: int = DEFAULT_NIC_SLOTS
    spare_ports: int = DEFAULT_SPARE_PORTS
    spare_other_ports: int = DEFAULT_SPARE_OTHER_PORTS
    acpi_index: bool = False

    def __post_init__(self):
        for f in fields(self):
            if f.name not in LIMITS:
                continue
            value = getattr(self, f.name)
            low, high, what = LIMITS[f.name]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ImpossibleError(
                    f"{f.name.replace('_', ' ')} {value!r} is out of range: {low}-{high} ({what})",
                    option=f.name,
                    limit=high,
                )
