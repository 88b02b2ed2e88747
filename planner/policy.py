"""The knobs of a layout, with defaults chosen from what orchestrators need."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NIC_START = 3
# Eight NIC slots (ens3..ens10 on pc) cover the NIC counts CloudStack, OpenStack and
# virt-install guests use, and leave 13 slots of bus 0 for everything else.
DEFAULT_NIC_SLOTS = 8
# PCIe machines: empty root ports kept for NICs hot-plugged later. KubeVirt and LXD reserve 4.
DEFAULT_SPARE_PORTS = 4
# PCIe machines: empty root ports kept after the non-NIC devices, for disks hot-plugged later.
DEFAULT_SPARE_OTHER_PORTS = 4


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
