"""The PCI topology of a domain, read from its XML: devices, buses and roles.

Everything the planner needs is captured here in frozen values, so planning is a
pure function of a :class:`Topology` and a :class:`~planner.policy.Policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from lxml import etree

from . import devices, layout
from .errors import InputError
from .pci import MAX_FUNCTION, MAX_SLOT, PciAddress, parse_index, parse_number
from .xmldoc import Document

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .machines import Machine


class Role(str, Enum):
    NIC = "nic"  # a guest network interface: its slot decides its name
    FIXED = "fixed"  # pinned by the chipset or by libvirt (PIIX3 at slot 1, primary video)
    OTHER = "other"  # any other PCI device


@dataclass(frozen=True)
class Device:
    """A PCI device of the domain.

    ``pos`` is the element's position in document order (the handle the rewrite
    uses); an implicit device, one libvirt would add by itself, has ``pos`` None
    and carries the ``markup`` that makes it explicit.
    """

    pos: int | None
    kind: str
    model: str
    detail: str
    address: PciAddress | None
    role: Role
    order: int  # document order among devices
    rank: int = 0  # libvirt's assignment order for devices without an address
    multifunction: bool = False
    provides_bus: int | None = None  # a PCI controller: the controller index it provides
    usb2: tuple[int, int] | None = None  # USB2 companion: (controller index, function)
    integrated: bool = False
    markup: str = ""
    fixed_at: PciAddress | None = None  # where the chipset rules pin a FIXED device

    @property
    def label(self) -> str:
        model = f" {self.model}" if self.model else ""
        return f"{self.kind}{model}"


@dataclass(frozen=True)
class Bus:
    """A PCI bus: the controller that provides it, by libvirt controller index."""

    index: int
    model: str
    parent: PciAddress | None  # the controller's own address on its parent bus
    pos: int | None = None
    port: int | None = None  # pcie-root-port <target port=...>
    chassis: int | None = None
    bus_nr: int | None = None  # pci(e)-expander-bus <target busNr=...>


@dataclass(frozen=True)
class Topology:
    """A domain's PCI topology as libvirt would build it: every PCI device (with the
    implicit ones libvirt adds), the buses by controller index, and what an earlier
    relayout recorded. The machine that reads it (``chipset``) decides everything
    chipset-specific; the rest of planner only asks it."""

    chipset: Machine  # the machine module that lays this domain out
    machine_type: str  # as written in the domain (or as libvirt resolved it)
    devices: tuple[Device, ...]
    buses: dict[int, Bus]
    aliases: tuple[tuple[int, int], ...]  # (console pos, serial pos) sharing one address
    layout: layout.LayoutRecord | None  # recorded by an earlier relayout for this machine
    acpi_indexes: dict[int, int]  # device pos -> <acpi index>

    @property
    def machine(self) -> str:
        """The machine's name, as the metadata and ``--json`` write it."""
        return self.chipset.name

    @property
    def nics(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.role is Role.NIC)

    def controller_addresses(self) -> dict[int, PciAddress]:
        """Address of every addressed PCI controller, by the index of the bus it provides."""
        return {b.index: b.parent for b in self.buses.values() if b.parent is not None}

    def device(self, pos: int) -> Device:
        for d in self.devices:
            if d.pos == pos:
                return d
        raise KeyError(pos)


def pci_address(el: etree._Element) -> tuple[PciAddress | None, bool]:
    """A device's own PCI address and multifunction flag; None if libvirt is to assign one."""
    addr = next(el.iterchildren("address"), None)  # el.find("address"), faster
    if addr is None or addr.get("type") != "pci":
        return None, False
    if addr.get("slot") is None:  # <address type='pci'/>: libvirt assigns one, keeping
        return None, addr.get("multifunction") == "on"  # multifunction='on' if written
    try:
        a = PciAddress(
            parse_number(addr.get("domain", "0"), "PCI domain"),
            parse_number(addr.get("bus", "0"), "PCI bus"),
            parse_number(addr.get("slot"), "PCI slot"),
            parse_number(addr.get("function", "0"), "PCI function"),
        )
    except InputError as exc:
        raise InputError(f"<{el.tag}>: {exc}", element=el.tag) from None
    if a.slot > MAX_SLOT or a.function > MAX_FUNCTION or a.bus > 0xFF or a.domain > 0xFFFF:
        raise InputError(
            f"<{el.tag}> has PCI address {a} out of range (slot 0-0x1f, function 0-7)",
            element=el.tag,
            address=a,
        )
    return a, addr.get("multifunction") == "on"


def _int_attr(el: etree._Element | None, name: str) -> int | None:
    if el is None or el.get(name) is None:
        return None
    return parse_number(el.get(name), name)


def primary_video(devs: etree._Element) -> etree._Element | None:
    videos = devs.findall("video")
    for v in videos:
        model = v.find("model")
        if model is not None and model.get("primary") == "yes":
            return v
    return videos[0] if videos else None


# The highest drive controller number planner accepts: libvirt adds controllers
# 0..N for it, each a PCI device; more than 256 of them can never be placed.
MAX_DRIVE_CONTROLLER = 255


def _implicit(
    devs, machine: Machine, quote: str, indexes: dict[int, int]
) -> list[tuple[str, str, str]]:
    """Devices libvirt adds by itself at define time, which would then take a free slot.

    Returns (kind, model, markup) for: the SCSI, SATA and virtio-serial controllers
    that disks, hostdevs, channels and consoles need, the machine's own implicit
    devices (:meth:`Machine.implicit_devices`), and the default virtio memballoon.
    """
    q = quote
    out: list[tuple[str, str, str]] = []
    have = {(c.get("type"), indexes[id(c)]) for c in devs.findall("controller")}

    def need(ctype: str, index: int, model: str) -> None:
        if (ctype, index) not in have:
            have.add((ctype, index))
            m = f" model={q}{model}{q}" if model else ""
            out.append(
                (
                    "controller",
                    model or ctype,
                    f"<controller type={q}{ctype}{q} index={q}{index}{q}{m}/>",
                )
            )

    def drive_controller(el: etree._Element, per: int) -> int:
        """The number of the controller a disk or SCSI hostdev sits on. libvirt adds
        every controller from 0 up to it, each a PCI device of its own: a number above
        the PCI controller limit could never be laid out, and is refused before the
        loop below would count up to it."""
        addr = el.find("address")
        if addr is not None and addr.get("type") == "drive":
            number = parse_index(addr.get("controller", "0"), "controller")
            why = f"drive address controller={addr.get('controller')!r}"
        else:
            # libvirt fills a SATA controller with 6 disks, a SCSI one with 7
            number = max(devices.disk_index(el), 0) // per if el.tag == "disk" else 0
            why = f"target {devices.disk_target(el)!r}"
        if number > MAX_DRIVE_CONTROLLER:
            raise InputError(
                f"<{el.tag}> {why} needs {number + 1} implied controllers, each a PCI "
                f"device: more than the {MAX_DRIVE_CONTROLLER + 1} a domain can have",
                element=el.tag,
                limit=MAX_DRIVE_CONTROLLER,
            )
        return number

    # In libvirt's order (virDomainDefAddImplicitControllers): the SCSI controllers of
    # disks and SCSI hostdevs, then the SATA controllers of disks, each type numbered
    # from 0 up to the highest index in use, then the virtio-serial controllers that
    # channels, and then consoles, refer to. libvirt appends each after the controllers
    # the domain has, so they take slots in this order.
    disks = devs.findall("disk")
    scsi = [drive_controller(el, 7) for el in disks if devices.disk_bus(el) == "scsi"]
    scsi += [drive_controller(el, 7) for el in devs.findall("hostdev") if el.get("type") == "scsi"]
    for ctrl in range(max(scsi, default=-1) + 1):
        need("scsi", ctrl, "")  # the model is libvirt's choice (QEMU's capabilities, machine)
    sata = [drive_controller(el, 6) for el in disks if devices.disk_bus(el) == "sata"]
    for ctrl in range(max(sata, default=-1) + 1):
        if ctrl > 0 or not machine.builtin_sata0:  # some chipsets have SATA controller 0 built in
            need("sata", ctrl, "")
    for el in [*devs.findall("channel"), *devs.findall("console")]:
        target, addr = el.find("target"), el.find("address")
        if target is not None and target.get("type") == "virtio":
            on = addr is not None and addr.get("type") == "virtio-serial"
            ctrl = parse_index(addr.get("controller", "0"), "controller") if on else 0
            need("virtio-serial", ctrl, "")
    out.extend(machine.implicit_devices(devs, q))
    if devs.find("memballoon") is None:
        out.append(("memballoon", "virtio", f"<memballoon model={q}virtio{q}/>"))
    return out


MAX_PCI_INDEX = 255  # libvirt: "PCI controller index N too high, maximum is 255"
_USB_COMPANIONS = {"ich9-uhci1", "ich9-uhci2", "ich9-uhci3"}


def _controller_indexes(devs) -> dict[int, int]:
    """Controller index of every controller, by id() of its element, as libvirt gives it.

    A PCI controller written without an index (virt-install writes bare root ports)
    gets the lowest unused one, in document order; index 0 is the root bus, whether
    written or implicit. A USB2 controller of the ICH9 family without an index joins
    the USB controller before it (its EHCI master or a companion) unless that index
    already has this model; any other controller without an index gets the lowest
    index unused by its type (measured against libvirt 9.0's define: two ICH9 groups
    without index are 0 and 1). Indexes are decimal (:func:`planner.pci.parse_index`).
    """
    ctrls = [c for c in devs.findall("controller")]
    out: dict[int, int] = {}
    taken: dict[str, set[int]] = {}
    for c in ctrls:
        if c.get("index") is not None:
            idx = parse_index(c.get("index"))
            ctype = c.get("type", "")
            if ctype == "pci" and idx in taken.get("pci", ()):
                raise InputError(f"two PCI controllers have index {idx}", element="controller")
            if ctype == "pci" and idx > MAX_PCI_INDEX:
                raise InputError(
                    f"PCI controller index {idx} too high, maximum is {MAX_PCI_INDEX}",
                    element="controller",
                )
            taken.setdefault(ctype, set()).add(idx)
            out[id(c)] = idx
    prev_usb: etree._Element | None = None
    for c in ctrls:
        ctype = c.get("type", "")
        used = taken.setdefault(ctype, set())
        if id(c) not in out:
            model = c.get("model", "")
            idx = None
            if ctype == "usb" and model in devices.USB2_FUNCTIONS and prev_usb is not None:
                prev = out[id(prev_usb)]
                if prev_usb.get("model", "") in devices.USB2_FUNCTIONS and not any(
                    out.get(id(o)) == prev and o.get("model", "") == model
                    for o in ctrls
                    if o.get("type") == "usb"
                ):
                    idx = prev
            if idx is None:
                idx = 0 if ctype != "pci" or model in ("pci-root", "pcie-root") else 1
                while idx in used:
                    idx += 1
            used.add(idx)
            out[id(c)] = idx
        if ctype == "usb":
            prev_usb = c
    return out


def _check_controllers(devs, index: dict[int, int]) -> None:
    """Refuse the controllers libvirt refuses (virDomainDefRejectDuplicateControllers,
    virDomainUSBAddressSetAddControllers, the PCI controller checks of domain_validate.c
    and qemu_validate.c): a root bus with an address, a pci-bridge on a bus not below its
    own index (a cycle; measured: libvirt 9.0 checks this for pci-bridge only), two
    controllers of a type with one index (USB: two that are not ICH9 UHCI companions, or
    two of one companion model)."""
    seen: dict[tuple[str, int, str], etree._Element] = {}
    for c in devs.findall("controller"):
        ctype, model, idx = c.get("type", ""), c.get("model", ""), index[id(c)]
        addr = c.find("address")
        if ctype == "pci" and model in ("pci-root", "pcie-root") and addr is not None:
            raise InputError(
                f"controller {model} (index {idx}) has an address: "
                "pci-root and pcie-root controllers should not have an address",
                element="controller",
            )
        if model == "pci-bridge" and addr is not None and addr.get("type") == "pci":
            bus = parse_number(addr.get("bus", "0"), "PCI bus")
            if bus >= idx:
                raise InputError(
                    f"controller pci-bridge index {idx} sits on bus {bus:#04x}: "
                    "a pci-bridge's index must be larger than its bus",
                    element="controller",
                )
        if ctype == "pci":
            continue
        if ctype == "usb":
            key = (ctype, idx, model if model in _USB_COMPANIONS else "")
            if model == "none":
                continue
        else:
            key = (ctype, idx, "")
        if key in seen:
            if ctype == "usb":
                raise InputError(
                    f"two usb controllers have index {idx} (Duplicate USB controllers)",
                    element="controller",
                )
            raise InputError(
                f"multiple {ctype!r} controllers have index {idx}", element="controller"
            )
        seen[key] = c


class _Devices:
    """The children of every ``<devices>`` element, in document order: libvirt reads
    devices with XPath ``./devices/X``, which finds them in each of several."""

    def __init__(self, parents: list[etree._Element]):
        self._parents = parents

    def __iter__(self):
        for parent in self._parents:
            yield from parent

    def findall(self, tag: str) -> list[etree._Element]:
        return [el for parent in self._parents for el in parent.findall(tag)]

    def find(self, tag: str) -> etree._Element | None:
        found = self.findall(tag)
        return found[0] if found else None


def _check_domain(root: etree._Element) -> None:
    """Refuse what libvirt's parser refuses before any address is looked at: no
    ``<os><type>``, a device ``<address>`` without a type."""
    if root.find("os/type") is None:
        raise InputError(
            "<domain> has no <os><type>: an os <type> must be specified", element="type"
        )
    for addr in root.iterfind("devices/*/address"):
        if not addr.get("type"):
            tag = addr.getparent().tag
            raise InputError(
                f"<{tag}> has an <address> without a type (No type specified for device address)",
                element=tag,
            )


def read_topology(doc: Document, machine: Machine, mtype: str) -> Topology:
    """Read a domain's PCI topology on ``machine`` (see :func:`planner.machines.read_topology`).

    Raises InputError for addresses libvirt would refuse.
    """
    root = doc.root
    devs = _Devices(root.findall("devices"))  # none: an empty set
    _check_domain(root)

    video = primary_video(devs)
    items: list[Device] = []
    buses: dict[int, Bus] = {}
    serial_addr: dict[PciAddress, int] = {}
    consoles: list[tuple[int, PciAddress]] = []
    acpi: dict[int, int] = {}
    ctrl_type_order: dict[str, int] = {}
    ctrl_index = _controller_indexes(devs)
    _check_controllers(devs, ctrl_index)
    order = 0
    for el in devs:
        if not isinstance(el.tag, str):
            continue
        pos = doc.position(el)
        if el.tag == "controller" and el.get("type") == "pci":
            index = ctrl_index[id(el)]
            model = el.get("model", "")
            addr, _ = pci_address(el)
            target = el.find("target")
            buses[index] = Bus(
                index,
                model,
                addr,
                pos,
                _int_attr(target, "port"),
                _int_attr(target, "chassis"),
                _int_attr(target, "busNr"),
            )
        if el.tag == "console":
            addr, _ = pci_address(el)
            if addr is not None:
                consoles.append((pos, addr))
            continue
        model = devices.model_of(el) if el.tag in devices.PCI_KINDS else ""
        if not devices.is_pci(el, model):
            continue
        addr, multi = pci_address(el)
        if el.tag == "serial" and addr is not None:
            serial_addr[addr] = pos
        acpi_el = el.find("acpi")
        if acpi_el is not None and acpi_el.get("index"):
            acpi[pos] = parse_number(acpi_el.get("index"), "acpi index")
        fixed_at = machine.fixed_address(el, video, ctrl_index.get(id(el)))
        if el.tag == "interface":
            role = Role.NIC
        elif fixed_at is not None:
            role = Role.FIXED
        else:
            role = Role.OTHER
        rank = devices.assign_rank(el) * 1000
        if el.tag == "controller" and el.get("type") != "pci":
            ctype = el.get("type", "")
            ctrl_type_order.setdefault(ctype, len(ctrl_type_order))
            rank += ctrl_type_order[ctype] * 100 + min(ctrl_index[id(el)], 99)
        elif el.tag == "controller":  # PCI controllers, which libvirt keeps sorted by index
            rank += min(ctrl_index[id(el)], 998)
        elif el.tag == "disk":  # libvirt sorts the disks of a bus by target name (vda, vdb, ...)
            rank += min(devices.disk_index(el) + 1, 998)
        elif el.tag == "interface" and el.get("type") == "hostdev":
            rank = devices.RANK["hostdev"] * 1000  # libvirt assigns these first among hostdevs
        elif el.tag == "hostdev":
            rank += 1
        usb2 = None
        if el.tag == "controller" and model in devices.USB2_FUNCTIONS:
            usb2 = (ctrl_index[id(el)], devices.USB2_FUNCTIONS[model])
        is_pci_ctrl = el.tag == "controller" and el.get("type") == "pci"
        provides = ctrl_index[id(el)] if is_pci_ctrl else None
        items.append(
            Device(
                pos,
                el.tag,
                model,
                devices.describe(el),
                addr,
                role,
                order,
                rank,
                multi,
                provides,
                usb2,
                devices.is_integrated(el),
                fixed_at=fixed_at,
            )
        )
        order += 1
    for kind, model, markup in _implicit(devs, machine, doc.quote, ctrl_index):
        rank = devices.RANK.get(kind if kind != "controller" else "controller", 0) * 1000 + 999
        items.append(
            Device(None, kind, model, "implicit", None, Role.OTHER, order, rank, markup=markup)
        )
        order += 1
    root_model = machine.root_model
    if 0 not in buses:
        buses[0] = Bus(0, root_model, None)
    elif buses[0].model != root_model:
        raise InputError(
            f"controller index 0 is {buses[0].model}, a {machine.name} machine needs {root_model}"
        )
    items.extend(_auto_buses(items, buses, machine, doc.quote, order))
    aliases = tuple((cpos, serial_addr[a]) for cpos, a in consoles if a in serial_addr)
    _check(items, buses)
    recorded = layout.read(root, machine)
    return Topology(machine, mtype, tuple(items), buses, aliases, recorded, acpi)


def _auto_buses(
    items: list[Device], buses: dict[int, Bus], machine: Machine, q: str, order: int
) -> list[Device]:
    """The PCI controllers libvirt adds by itself, as implicit devices (``buses`` gains them).

    libvirt sizes the PCI address set to the highest controller index or bus an address
    names, and adds a controller for every index in between that has none: a pci-bridge,
    or a pcie-root-port on a pcie-root machine (qemuDomainPCIAddressSetCreate, "Now fill
    in a reasonable model for all the buses", then virDomainDefMaybeAddController in
    qemuDomainAssignPCIAddresses). They are then placed first-fit like any controller,
    so a relayout writes them out and places them itself.
    """
    referenced = [d.address.bus for d in items if d.address is not None]
    top = max([*buses, *referenced])
    if top > MAX_PCI_INDEX:
        raise InputError(
            f"PCI bus {top:#04x} is too high, maximum is {MAX_PCI_INDEX}", element="address"
        )
    model = "pcie-root-port" if machine.pcie else "pci-bridge"
    out = []
    for index in range(1, top + 1):
        if index in buses:
            continue
        buses[index] = Bus(index, model, None)
        markup = f"<controller type={q}pci{q} index={q}{index}{q} model={q}{model}{q}/>"
        rank = devices.RANK["pci-controller"] * 1000 + min(index, 998)
        out.append(
            Device(
                None,
                "controller",
                model,
                "implicit",
                None,
                Role.OTHER,
                order,
                rank,
                provides_bus=index,
                markup=markup,
            )
        )
        order += 1
    return out


def _check(items: list[Device], buses: dict[int, Bus]) -> None:
    """Refuse what libvirt would refuse: shared addresses and buses that do not exist."""
    seen: dict[PciAddress, Device] = {}
    for d in items:
        a = d.address
        if a is None:
            continue
        if a.bus not in buses:
            raise InputError(
                f"<{d.kind}> sits on bus {a.bus:#04x}, but no PCI controller has index {a.bus}",
                element=d.kind,
                address=a,
            )
        if a in seen:
            raise InputError(
                f"<{seen[a].kind}> and <{d.kind}> both claim PCI address {a}",
                element=d.kind,
                address=a,
            )
        seen[a] = d


def occupied(topos: list[Topology]) -> set[tuple[int, int]]:
    """(bus, slot) pairs in use in any of the topologies (live and persistent)."""
    used: set[tuple[int, int]] = set()
    for t in topos:
        for d in t.devices:
            a = d.address or (d.fixed_at if d.pos is not None else None)
            if a:
                used.add((a.bus, a.slot))
    return used
