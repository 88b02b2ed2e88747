"""The names a Linux guest gives its NICs, predicted from the plan.

systemd's default NamePolicy (``kernel database onboard slot path``) takes, in order:
``eno<N>`` from an ACPI index, ``ens<N>`` from the hot-plug slot, then the path name
``enp<bus>s<slot>``. Which slots carry a hot-plug slot number is the machine's
rule (:meth:`planner.machines.Machine.nic_name`). Where the path name applies,
``<bus>`` is the number the guest gives the bus when it enumerates the PCI tree,
depth first, in address order: not libvirt's index. A function suffix ``f<N>``
is added for functions > 0 and multifunction slots.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .pci import PciAddress
from .topology import Bus, Device, Role

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .machines import Machine


def guest_bus_numbers(buses: dict[int, Bus], parent_of: dict[int, PciAddress]) -> dict[int, int]:
    """Map controller index -> guest bus number, by a depth-first scan in address order.

    ``parent_of`` gives each non-root controller's planned address (its bus is the
    parent's controller index). Expander buses (pxb) carry their own busNr.
    """
    children: dict[int, list[tuple[PciAddress, int]]] = defaultdict(list)
    for index, addr in parent_of.items():
        children[addr.bus].append((addr, index))
    numbers: dict[int, int] = {}
    counter = [0]

    def walk(index: int, number: int) -> None:
        numbers[index] = number
        counter[0] = max(counter[0], number)
        for _, child in sorted(children.get(index, ())):
            if child in numbers:  # a controller on its own bus, or a cycle: numbered once
                continue
            bus = buses.get(child)
            if bus is not None and bus.bus_nr is not None:
                continue  # an expander bus: its own root, numbered by busNr
            counter[0] += 1
            walk(child, counter[0])

    walk(0, 0)
    for index, bus in sorted(buses.items(), key=lambda kv: kv[1].bus_nr or 0):
        if bus.bus_nr is not None and index not in numbers:
            counter[0] = bus.bus_nr
            walk(index, bus.bus_nr)
    return numbers


def path_name(addr: PciAddress, bus_numbers: dict[int, int], func: str) -> str:
    """``enp<bus>s<slot>[f<fn>]``: the name by the device's place in the PCI tree."""
    bus = bus_numbers.get(addr.bus)
    if bus is None:
        return "?"
    return f"enp{bus}s{addr.slot}{func}"


def predict(
    machine: Machine,
    addr: PciAddress,
    bus_numbers: dict[int, int],
    multifunction: bool,
    acpi_index: int | None = None,
) -> str:
    if acpi_index:
        return f"eno{acpi_index}"
    func = f"f{addr.function}" if addr.function or multifunction else ""
    return machine.nic_name(addr, bus_numbers, func)


def name_nics(
    machine: Machine,
    buses: dict[int, Bus],
    rows: Iterable[tuple[Device, PciAddress]],
    parents: dict[int, PciAddress],
    acpi: dict[int, int],
):
    """Guest bus numbers, and the predicted name of every NIC among rows (by id of device)."""
    rows = list(rows)
    numbers = guest_bus_numbers(buses, parents)
    per_slot = Counter((a.bus, a.slot) for _, a in rows)
    names = {
        id(d): predict(machine, a, numbers, per_slot[(a.bus, a.slot)] > 1, acpi.get(d.pos))
        for d, a in rows
        if d.role is Role.NIC
    }
    return numbers, names
