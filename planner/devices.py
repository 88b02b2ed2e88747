"""Which libvirt devices are PCI devices, and in what order libvirt addresses them.

The rules follow libvirt's QEMU driver (src/qemu/qemu_domain_address.c):
``qemuDomainDeviceCalculatePCIConnectFlags`` decides whether a device connects
through PCI, and ``qemuDomainAssignDevicePCISlots`` fixes the order in which
devices without an address get one (PCI controllers, filesystems, NICs, sound,
other controllers, virtio disks, hostdevs, memballoon, rng, watchdog, video,
shmem, virtio input, pci-serial, virtio-iommu, vsock, virtio memory, crypto,
pvpanic). Each device then takes the lowest free slot.
"""

from __future__ import annotations

from lxml import etree

# libvirt's assignment order for devices without an address.
ASSIGN_ORDER = (
    "pci-controller",
    "filesystem",
    "interface",
    "sound",
    "controller",
    "disk",
    "hostdev",
    "memballoon",
    "rng",
    "watchdog",
    "video",
    "shmem",
    "input",
    "serial",
    "iommu",
    "vsock",
    "memory",
    "crypto",
    "panic",
)
RANK = {kind: i for i, kind in enumerate(ASSIGN_ORDER)}

# Controller types in libvirt's enum order (virDomainControllerType).
CONTROLLER_TYPES = (
    "ide",
    "fdc",
    "scsi",
    "sata",
    "virtio-serial",
    "ccid",
    "usb",
    "pci",
    "xenbus",
    "isa",
)

_NOT_PCI_USB = {"none", "qusb1", "qusb2"}
_NOT_PCI_SCSI = {"ncr53c90", "ibmvscsi"}
_PCI_SOUND = {"es1370", "ac97", "ich6", "ich9"}
_NOT_PCI_VIDEO = {"none", "ramfb", "gop", "default"}
_NOT_PCI_FS = {"loop", "nbd", "ploop"}
_PCI_ROOTS = {"pci-root", "pcie-root"}

# USB2 companion controllers share one slot at fixed functions (libvirt: IS_USB2_CONTROLLER).
USB2_FUNCTIONS = {"ich9-ehci1": 7, "ich9-uhci1": 0, "ich9-uhci2": 1, "ich9-uhci3": 2}


# What the bus of each PCI controller model accepts from other controllers, and its
# slots (libvirt's virDomainPCIAddressBusSetModel; a controller connects as its model,
# virDomainPCIControllerModelToConnectType). Endpoint devices are the machines' concern.
BUS_ACCEPTS: dict[str, tuple[frozenset[str], range]] = {
    "pci-root": (frozenset({"pci-bridge", "pci-expander-bus"}), range(1, 32)),
    "pci-bridge": (frozenset({"pci-bridge"}), range(1, 32)),
    "pci-expander-bus": (frozenset({"pci-bridge"}), range(0, 32)),
    "pcie-root": (
        frozenset({"pcie-root-port", "dmi-to-pci-bridge", "pcie-expander-bus"}),
        range(1, 32),
    ),
    "dmi-to-pci-bridge": (frozenset({"pci-bridge"}), range(0, 32)),
    "pcie-to-pci-bridge": (frozenset({"pci-bridge"}), range(1, 32)),
    "pcie-root-port": (
        frozenset({"pcie-switch-upstream-port", "pcie-to-pci-bridge"}),
        range(0, 1),
    ),
    "pcie-switch-downstream-port": (
        frozenset({"pcie-switch-upstream-port", "pcie-to-pci-bridge"}),
        range(0, 1),
    ),
    "pcie-switch-upstream-port": (frozenset({"pcie-switch-downstream-port"}), range(0, 32)),
    "pcie-expander-bus": (frozenset({"pcie-root-port", "dmi-to-pci-bridge"}), range(0, 32)),
}


def _attr(el: etree._Element | None, name: str, default: str = "") -> str:
    return (el.get(name) if el is not None else None) or default


def _child(el: etree._Element, tag: str) -> etree._Element | None:
    """el's first child element named tag (as ``el.find(tag)``, twice as fast)."""
    return next(el.iterchildren(tag), None)


def address_type(el: etree._Element) -> str | None:
    """The type of el's own <address> (not a hostdev's <source><address>)."""
    addr = _child(el, "address")
    return addr.get("type") if addr is not None else None


def model_of(el: etree._Element) -> str:
    """A short model name for display and for the rules below."""
    kind = el.tag
    if kind == "interface":
        return _attr(_child(el, "model"), "type", "")
    if kind == "video":
        return _attr(_child(el, "model"), "type", "default")
    if kind == "disk":
        return "virtio" if disk_bus(el) == "virtio" else disk_bus(el)
    if kind == "controller":
        return _attr(el, "model", "")
    if kind == "hostdev":
        sub = _attr(el, "type")
        return f"{sub}:{_attr(el, 'model')}" if sub == "mdev" else sub
    if kind == "filesystem":
        return _attr(_child(el, "driver"), "type", "path")
    if kind == "serial":
        return _attr(_child(el, "target"), "type", "")
    if kind == "input":
        return f"{_attr(el, 'type')}:{_attr(el, 'bus')}"
    return _attr(el, "model", "")


def disk_bus(el: etree._Element) -> str:
    target = _child(el, "target")
    bus = _attr(target, "bus")
    if bus:
        return bus
    dev = _attr(target, "dev")
    return {"vd": "virtio", "sd": "scsi", "hd": "ide", "fd": "fdc", "xv": "xen"}.get(dev[:2], "")


_DISK_PREFIXES = ("fd", "hd", "vd", "sd", "xvd", "ubd")
_INT_MAX = 2**31 - 1  # libvirt computes the index in a C int


def disk_target(el: etree._Element) -> str:
    return _attr(_child(el, "target"), "dev")


def disk_index(el: etree._Element) -> int:
    """The drive index of a disk's target name (vda 0, vdb 1, ..., vdz 25, vdaa 26), -1 if none.

    libvirt keeps the disks of one bus sorted by this index from the moment it
    parses a domain (virDomainDiskInsert, virDiskNameToIndex), so devices without
    an address get their slots in this order, not in document order. The name is
    read as ``virDiskNameParse`` reads it: a prefix, lowercase letters, then only
    digits (a partition); anything else, or an index past a C int, is -1 (libvirt
    cannot number it). The scan stops there, so a long name costs nothing.
    """
    dev = disk_target(el)
    rest = next((dev[len(p) :] for p in _DISK_PREFIXES if dev.startswith(p)), None)
    if not rest or not ("a" <= rest[0] <= "z"):
        return -1
    index = -1
    letters = 0
    for ch in rest:
        if not ("a" <= ch <= "z"):
            break
        index = (index + 1) * 26 + ord(ch) - ord("a")
        letters += 1
        if index > _INT_MAX:
            return -1
    tail = rest[letters:]
    if tail and not (tail.isascii() and tail.isdigit()):
        return -1
    return index


# Device elements that can connect through PCI; the others never do.
PCI_KINDS = frozenset(ASSIGN_ORDER) - {"pci-controller"}


def is_pci(el: etree._Element, model: str | None = None) -> bool:
    """Does libvirt connect this device element through PCI (on x86)?"""
    kind = el.tag
    if kind not in PCI_KINDS:
        return False
    atype = address_type(el)
    if atype is not None and atype != "pci":
        return False  # ccw, virtio-mmio, spapr-vio, usb, drive...: not PCI here
    if model is None:
        model = model_of(el)
    if kind == "controller":
        ctype = _attr(el, "type")
        if ctype == "pci":
            return model not in _PCI_ROOTS
        if ctype == "usb":
            return model not in _NOT_PCI_USB
        if ctype == "scsi":
            return model not in _NOT_PCI_SCSI
        return ctype in ("sata", "ide", "virtio-serial")
    if kind == "interface":
        return model != "usb-net"
    if kind == "disk":
        return disk_bus(el) == "virtio"
    if kind == "hostdev":
        if _attr(el, "mode", "subsystem") != "subsystem":
            return False
        sub = _attr(el, "type")
        return sub in ("pci", "scsi_host") or (sub == "mdev" and _attr(el, "model") == "vfio-pci")
    if kind == "filesystem":
        return model not in _NOT_PCI_FS
    if kind == "sound":
        return model in _PCI_SOUND
    if kind == "video":
        return model not in _NOT_PCI_VIDEO
    if kind == "memballoon":
        return model.startswith("virtio")
    if kind == "watchdog":
        return model == "i6300esb"
    if kind == "input":
        return _attr(el, "bus") == "virtio"
    if kind == "serial":
        return model == "pci-serial"
    if kind == "iommu":
        return model == "virtio"
    if kind == "memory":
        return model in ("virtio-pmem", "virtio-mem")
    if kind == "panic":
        return model == "pvpanic"
    return kind in ("rng", "shmem", "vsock", "crypto")


def is_integrated(el: etree._Element) -> bool:
    """Devices libvirt requires on the root bus (VIR_PCI_CONNECT_INTEGRATED)."""
    return el.tag in ("iommu", "panic")


def assign_rank(el: etree._Element) -> int:
    if el.tag == "controller" and _attr(el, "type") == "pci":
        return RANK["pci-controller"]
    return RANK.get(el.tag, len(ASSIGN_ORDER))


def describe(el: etree._Element) -> str:
    """What a person recognises a device by: its disk target, MAC, source, ..."""
    kind = el.tag
    if kind == "interface":
        mac = _attr(_child(el, "mac"), "address")
        src = _child(el, "source")
        via = ""
        if src is not None:
            via = src.get("network") or src.get("bridge") or src.get("dev") or ""
        return " ".join(x for x in (_attr(el, "type"), via, mac) if x)
    if kind == "disk":
        return _attr(_child(el, "target"), "dev")
    if kind == "controller":
        return f"{_attr(el, 'type')} index={_attr(el, 'index', '0')}"
    if kind == "hostdev":
        src = el.find("source/address")
        if src is not None and src.get("bus") is not None:
            parts = [src.get(k, "0") for k in ("domain", "bus", "slot", "function")]
            return "host " + ":".join(parts[:3]) + "." + parts[3]
        return _attr(el, "type")
    if kind == "filesystem":
        return _attr(_child(el, "target"), "dir")
    return ""
