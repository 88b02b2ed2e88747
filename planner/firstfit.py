"""Where libvirt itself puts a device hot-plugged without an address (plain virsh attach).

``virsh attach-device --live --config`` with a device that has no ``<address>`` lets
libvirt choose, and libvirt chooses **twice, separately**: once in the running domain
and once in the persistent definition. This module predicts both choices from the two
topologies, without libvirt, following libvirt 9.0's QEMU driver:

**Live** (``qemuDomainAttachDeviceLive`` → ``qemuDomainEnsurePCIAddress`` in
src/qemu/qemu_domain_address.c → ``virDomainPCIAddressEnsureAddr`` in
src/conf/domain_addr.c): the device's connect flags get ``VIR_PCI_CONNECT_HOTPLUGGABLE``
added ("This function is only called during hotplug, so we require hotplug support
from the controller"), then ``virDomainPCIAddressReserveNextAddr`` →
``virDomainPCIAddressGetNextAddr`` scans the buses in controller-index order and, on the
first bus whose flags fit (``virDomainPCIAddressFlagsCompatible``: the PCI/PCIe connect
type, AUTOASSIGN, HOTPLUGGABLE), slots from the bus's minSlot up, taking the first slot
with no function in use (``virDomainPCIAddressFindUnusedFunctionOnBus``). The address
set is the one built when the domain started (``priv->pciaddrs``), kept up to date by
hot-plugs and by device removals: it holds every address of the live XML, a device
whose unplug the guest has not acknowledged included, plus the chipset reservations
of ``qemuDomainValidateDevicePCISlotsPIIX3``/``...Q35`` (each machine's ``reserved``,
see :mod:`planner.machines`). Nothing is grown live: no room means "No more available PCI
slots" and the attach fails.

**Persistent** (``qemuDomainAttachDeviceConfig`` inserts the device into a copy of the
persistent definition, whose post-parse runs ``qemuDomainAssignAddresses`` →
``qemuDomainAssignPCIAddresses``): no HOTPLUGGABLE requirement. A first, dry-run pass
counts the buses needed: on a domain with pci-root it first reserves one slot for a
"(potential) bridge (for future expansion)" unless every bus is full; a device that then
finds no slot makes ``virDomainPCIAddressSetGrow`` add a bus (a pci-bridge on i440fx, a
pcie-root-port for a PCIe device on pcie-root), and the new controllers are written into the
definition. The real pass then assigns, in ``qemuDomainAssignDevicePCISlots`` order, the
new controllers first (a pci-bridge takes the first free slot that accepts a bridge; a
pcie-root-port the first free function of a root-port slot on pcie-root, or an empty
slot), then the device, first-fit.

So the two can differ: a slot taken only in the running domain (a pending unplug, a
live-only attach) or only in the config; a pcie-root-port with ``hotplug='off'`` (usable
for the config, not live); an i440fx bus 0 with exactly one free slot (live takes it, the
config puts a new pci-bridge there and the device behind it); a pcie-root domain whose
root ports are all taken (live fails, the config gains a root port).

Connect types (``qemuDomainDeviceCalculatePCIConnectFlags``): virtio devices use
``virtioFlags``, which is the PCIe type on a machine with pcie-root (QEMU has
virtio-pci-transitional since 4.0); e1000e and igb NICs are PCIe; other NIC models and
``*-transitional`` virtio models are conventional PCI. Bus flags are those of
``virDomainPCIAddressBusSetModel``.

Assumptions, stated: no VFIO host devices (isolation groups, pSeries only anyway); the
domains' XML comes from libvirt (every device addressed); a conventional PCI device on
a pcie-root machine is predicted only when an existing bridge has room (growing such a
domain a PCI topology is not modelled: the config prediction is then None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from . import machines
from .machines import Machine, read_topology
from .names import guest_bus_numbers, predict
from .pci import MAX_FUNCTION, MAX_SLOT, PciAddress
from .topology import Bus, Topology
from .xmldoc import Document

# virDomainPCIConnectFlags, as sets of names.
PCI_DEVICE = "pci-device"
PCIE_DEVICE = "pcie-device"
PCI_BRIDGE = "pci-bridge"
PCIE_ROOT_PORT = "pcie-root-port"
PCIE_TO_PCI_BRIDGE = "pcie-to-pci-bridge"
DMI_TO_PCI_BRIDGE = "dmi-to-pci-bridge"
PCI_EXPANDER_BUS = "pci-expander-bus"
PCIE_EXPANDER_BUS = "pcie-expander-bus"
UPSTREAM_PORT = "pcie-switch-upstream-port"
DOWNSTREAM_PORT = "pcie-switch-downstream-port"
AUTOASSIGN = "autoassign"
HOTPLUGGABLE = "hotpluggable"
AGGREGATE = "aggregate-slot"
TYPES = frozenset(
    {
        PCI_DEVICE,
        PCIE_DEVICE,
        PCI_BRIDGE,
        PCIE_ROOT_PORT,
        PCIE_TO_PCI_BRIDGE,
        DMI_TO_PCI_BRIDGE,
        PCI_EXPANDER_BUS,
        PCIE_EXPANDER_BUS,
        UPSTREAM_PORT,
        DOWNSTREAM_PORT,
    }
)

# virDomainPCIAddressBusSetModel: (flags without HOTPLUGGABLE, hot-pluggable?, minSlot, maxSlot)
_BUS_MODELS: dict[str, tuple[frozenset[str], bool, int, int]] = {
    "pci-root": (
        frozenset({AUTOASSIGN, PCI_DEVICE, PCI_BRIDGE, PCI_EXPANDER_BUS}),
        True,
        1,
        MAX_SLOT,
    ),
    "pci-bridge": (frozenset({AUTOASSIGN, PCI_DEVICE, PCI_BRIDGE}), True, 1, MAX_SLOT),
    "pci-expander-bus": (frozenset({AUTOASSIGN, PCI_DEVICE, PCI_BRIDGE}), True, 0, MAX_SLOT),
    "pcie-root": (
        frozenset({PCIE_DEVICE, PCIE_ROOT_PORT, DMI_TO_PCI_BRIDGE, PCIE_EXPANDER_BUS}),
        False,
        1,
        MAX_SLOT,
    ),
    "dmi-to-pci-bridge": (frozenset({PCI_DEVICE, PCI_BRIDGE}), False, 0, MAX_SLOT),
    "pcie-to-pci-bridge": (frozenset({AUTOASSIGN, PCI_DEVICE, PCI_BRIDGE}), True, 1, MAX_SLOT),
    "pcie-root-port": (
        frozenset({AUTOASSIGN, PCIE_DEVICE, UPSTREAM_PORT, PCIE_TO_PCI_BRIDGE}),
        True,
        0,
        0,
    ),
    "pcie-switch-downstream-port": (
        frozenset({AUTOASSIGN, PCIE_DEVICE, UPSTREAM_PORT, PCIE_TO_PCI_BRIDGE}),
        True,
        0,
        0,
    ),
    "pcie-switch-upstream-port": (frozenset({DOWNSTREAM_PORT}), False, 0, MAX_SLOT),
    "pcie-expander-bus": (
        frozenset({PCIE_ROOT_PORT, DMI_TO_PCI_BRIDGE}),
        False,
        0,
        MAX_SLOT,
    ),
}

# virDomainPCIControllerModelToConnectType: how a PCI controller itself plugs in.
_CONTROLLER_CONNECT = {
    "pci-bridge": frozenset({PCI_BRIDGE}),
    "pci-expander-bus": frozenset({PCI_EXPANDER_BUS}),
    "pcie-expander-bus": frozenset({PCIE_EXPANDER_BUS}),
    "dmi-to-pci-bridge": frozenset({DMI_TO_PCI_BRIDGE}),
    "pcie-to-pci-bridge": frozenset({PCIE_TO_PCI_BRIDGE}),
    "pcie-root-port": frozenset({PCIE_ROOT_PORT, AGGREGATE}),
    "pcie-switch-upstream-port": frozenset({UPSTREAM_PORT}),
    "pcie-switch-downstream-port": frozenset({DOWNSTREAM_PORT}),
}

_PCIE_NIC_MODELS = {"e1000e", "igb"}
_VIRTIO_MODELS = {"virtio", "virtio-non-transitional"}


def _pcie(machine: Machine | str) -> bool:
    """Does libvirt connect devices as PCIe on this machine (a machine, or its name)?"""
    return (machines.by_name(machine) if isinstance(machine, str) else machine).pcie


def connect_type(machine: Machine | str, kind: str, model: str = "virtio") -> str:
    """'pci' or 'pcie': how libvirt connects a device of this kind and model.

    ``kind`` is the element name ('interface', 'disk', ...), ``model`` the NIC model
    (or 'virtio-transitional' for the transitional virtio variants).
    """
    pcie = _pcie(machine)
    if model == "virtio-transitional":
        return "pci"
    if kind == "interface":
        if model in _PCIE_NIC_MODELS or model in _VIRTIO_MODELS:
            return "pcie" if pcie else "pci"
        return "pci"  # e1000, rtl8139, ...
    return "pcie" if pcie else "pci"  # virtio disks, rng, balloon, ...: virtioFlags


@dataclass
class _Bus:
    """A bus as libvirt's first-fit search sees it: the slots a device may take, which
    functions each slot has in use, and the slots root ports aggregate."""

    index: int
    model: str
    flags: frozenset[str]
    min_slot: int
    max_slot: int
    used: dict[int, int] = field(default_factory=dict)  # slot -> bitmask of functions
    aggregate: set[int] = field(default_factory=set)  # slots root ports share

    def full(self) -> bool:
        return all(self.used.get(s) for s in range(self.min_slot, self.max_slot + 1))

    def empty(self) -> bool:
        return not any(self.used.get(s) for s in range(self.min_slot, self.max_slot + 1))


def _make_bus(index: int, model: str, hotplug: bool = True) -> _Bus | None:
    spec = _BUS_MODELS.get(model)
    if spec is None:
        return None
    flags, pluggable, lo, hi = spec
    if pluggable and hotplug:
        flags = flags | {HOTPLUGGABLE}
    return _Bus(index, model, flags, lo, hi)


def _compatible(bus: _Bus, dev: frozenset[str]) -> bool:
    """virDomainPCIAddressFlagsCompatible for an auto-assigned address (fromConfig false)."""
    if AUTOASSIGN in dev and AUTOASSIGN not in bus.flags:
        return False
    if HOTPLUGGABLE in dev and HOTPLUGGABLE not in bus.flags:
        return False
    return bool(dev & bus.flags & TYPES)


class _AddressSet:
    """A model of virDomainPCIAddressSet for one definition."""

    def __init__(self, topo: Topology, hotplug_off: frozenset[int]):
        self.buses: dict[int, _Bus] = {}
        for index, b in sorted(topo.buses.items()):
            bus = _make_bus(index, b.model or "", index not in hotplug_off)
            if bus is not None:
                self.buses[index] = bus
        ports = {i for i, b in topo.buses.items() if b.model == "pcie-root-port"}
        for d in topo.devices:
            if d.pos is None:
                continue  # libvirt would add it at define time: not in libvirt's XML
            a = d.address or d.fixed_at
            if a is None:
                continue
            aggregate = d.provides_bus in ports
            self.reserve(a, aggregate)
        if self.buses.get(0) is not None:  # functions the chipset holds, in no element
            for a in topo.chipset.reserved:
                self.reserve(a)

    def reserve(self, a: PciAddress, aggregate: bool = False) -> None:
        bus = self.buses.get(a.bus)
        if bus is None:
            return
        if not bus.used.get(a.slot) and aggregate:
            bus.aggregate.add(a.slot)
        bus.used[a.slot] = bus.used.get(a.slot, 0) | (1 << a.function)

    def next_free(self, dev: frozenset[str]) -> PciAddress | None:
        """virDomainPCIAddressGetNextAddr with function -1 (without growing)."""
        for index in sorted(self.buses):
            bus = self.buses[index]
            if not _compatible(bus, dev):
                continue
            for slot in range(bus.min_slot, bus.max_slot + 1):
                used = bus.used.get(slot, 0)
                if not used:
                    return PciAddress(0, index, slot, 0)
                if AGGREGATE in dev and slot in bus.aggregate:
                    for fn in range(MAX_FUNCTION + 1):
                        if not used & (1 << fn):
                            return PciAddress(0, index, slot, fn)
        return None

    def take(self, dev: frozenset[str]) -> PciAddress | None:
        a = self.next_free(dev)
        if a is not None:
            self.reserve(a, AGGREGATE in dev)
        return a


def _device_flags(machine: Machine, connect: str, hotplug: bool) -> frozenset[str]:
    flags = {AUTOASSIGN, PCIE_DEVICE if connect == "pcie" and _pcie(machine) else PCI_DEVICE}
    if hotplug:
        flags.add(HOTPLUGGABLE)
    return frozenset(flags)


@dataclass(frozen=True)
class AddedController:
    """A PCI controller libvirt adds to the persistent definition to make room."""

    index: int
    model: str
    address: PciAddress | None


class FirstFit(NamedTuple):
    """libvirt's own choices: live (None: the live attach fails, or not running) and
    persistent (None: the config attach fails, not modelled, or no persistent definition),
    and the controllers the persistent definition gains."""

    live: PciAddress | None
    config: PciAddress | None
    added: tuple[AddedController, ...] = ()


def predict_live(
    topo: Topology, connect: str, hotplug_off: frozenset[int] = frozenset()
) -> PciAddress | None:
    """The address ``qemuDomainEnsurePCIAddress`` gives a hot-plugged device."""
    addrs = _AddressSet(topo, hotplug_off)
    return addrs.next_free(_device_flags(topo.chipset, connect, hotplug=True))


def predict_config(
    topo: Topology, connect: str, hotplug_off: frozenset[int] = frozenset()
) -> tuple[PciAddress | None, tuple[AddedController, ...]]:
    """The address ``qemuDomainAssignPCIAddresses`` gives the device in the persistent
    definition, and the controllers it adds on the way."""
    dev = _device_flags(topo.chipset, connect, hotplug=False)
    root = topo.buses.get(0)
    pci_root = root is not None and root.model == "pci-root"
    pcie_root = root is not None and root.model == "pcie-root"
    max_idx = max(topo.buses, default=-1)

    # 1st pass (dry run): how many buses are needed.
    dry = _AddressSet(topo, hotplug_off)
    if pci_root and not all(b.full() for b in dry.buses.values()):
        dry.take(frozenset({AUTOASSIGN, PCI_DEVICE}))  # the slot kept for a future bridge
    grown: list[str] = []

    def grow(flags: frozenset[str]) -> bool:
        if PCI_DEVICE in flags:
            if not pci_root:
                return False  # a PCI topology on pcie-root: not modelled
            model = "pci-bridge"
        elif PCIE_DEVICE in flags:
            model = "pcie-root-port"
        else:
            return False
        index = max(dry.buses, default=-1) + 1
        bus = _make_bus(index, model)
        assert bus is not None
        bus.used[bus.min_slot] = 1  # the device takes the new bus's first slot
        dry.buses[index] = bus
        grown.append(model)
        return True

    if dry.take(dev) is None and not grow(dev):
        return None, ()
    if max_idx <= 0 and grown and pcie_root:
        # "one time" reservation of an extra PCIE|HOTPLUGGABLE slot: one more root port
        extra = frozenset({AUTOASSIGN, PCIE_DEVICE})
        if dry.take(extra) is None:
            grow(extra)

    # 2nd pass: the new controllers first, then the device.
    real = _AddressSet(topo, hotplug_off)
    added = []
    for model in grown:
        index = max(real.buses, default=-1) + 1
        bus = _make_bus(index, model)
        assert bus is not None
        real.buses[index] = bus
    for index in sorted(real.buses):
        if index <= max_idx:
            continue
        model = real.buses[index].model
        where = real.take(_CONTROLLER_CONNECT[model])
        if where is None or (model == "pci-bridge" and where.bus >= index):
            return None, ()  # libvirt fails ("No more available PCI slots" / bus check)
        added.append(AddedController(index, model, where))
    return real.next_free(dev), tuple(added)


def predict_first_fit(
    live: Topology | None,
    config: Topology | None,
    kind: str = "interface",
    model: str = "virtio",
    *,
    live_hotplug_off: frozenset[int] = frozenset(),
    config_hotplug_off: frozenset[int] = frozenset(),
) -> FirstFit:
    """libvirt's choice for a device without an address, attached LIVE and CONFIG.

    ``live``/``config`` are the running domain's and the persistent definition's
    topologies (None for a domain that is not running, or transient). The
    ``*_hotplug_off`` sets name PCI controller indexes with ``<target hotplug='off'/>``
    (see :func:`hotplug_off`).
    """
    machine = (live or config).chipset if (live or config) else machines.default_machine()
    connect = connect_type(machine, kind, model)
    live_addr = predict_live(live, connect, live_hotplug_off) if live is not None else None
    config_addr, added = (
        predict_config(config, connect, config_hotplug_off) if config is not None else (None, ())
    )
    return FirstFit(live_addr, config_addr, added)


def hotplug_off(root) -> frozenset[int]:
    """Indexes of the PCI controllers a domain (lxml root) declares ``hotplug='off'``."""
    out = set()
    for c in root.iterfind("devices/controller"):
        target = c.find("target")
        if c.get("type") == "pci" and target is not None and target.get("hotplug") == "off":
            try:
                out.add(int(c.get("index", ""), 0))
            except ValueError:
                continue
    return frozenset(out)


def predict_from_xml(
    live_xml: str | None, config_xml: str | None, kind: str = "interface", model: str = "virtio"
) -> FirstFit:
    """:func:`predict_first_fit` from the live and persistent domain XML."""
    docs = [Document.parse(x) if x is not None else None for x in (live_xml, config_xml)]
    topos = [read_topology(d) if d is not None else None for d in docs]
    offs = [hotplug_off(d.root) if d is not None else frozenset() for d in docs]
    return predict_first_fit(
        topos[0],
        topos[1],
        kind,
        model,
        live_hotplug_off=offs[0],
        config_hotplug_off=offs[1],
    )


def guest_name(
    topo: Topology,
    addr: PciAddress,
    added: tuple[AddedController, ...] = (),
    acpi_index: int | None = None,
) -> str:
    """The name the guest would give a NIC at ``addr`` (``ens9``, ``enp9s0``), counting the
    controllers libvirt adds to the definition (``added``) in the guest's bus numbering."""
    buses = dict(topo.buses)
    parents = topo.controller_addresses()
    for c in added:
        buses[c.index] = Bus(c.index, c.model, c.address)
        if c.address is not None:
            parents[c.index] = c.address
    numbers = guest_bus_numbers(buses, parents)
    return predict(topo.chipset, addr, numbers, False, acpi_index)
