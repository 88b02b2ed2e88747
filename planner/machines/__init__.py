"""Machines: everything a chipset means to planner, one module each, behind one protocol.

A machine module (:mod:`.pc`, :mod:`.q35`) holds the addresses its chipset pins,
the devices libvirt adds implicitly on it, its cold layout, its hot-plug choice,
its layout record, its naming rule and what ``show`` lists as free. The rest of
planner asks the machine a domain runs on (``topology.chipset``) and never
branches on a machine's name. Adding a machine means adding a module here and
registering its name in :data:`REGISTERED`.

A machine module is imported when it is first asked for, in registry order, so that a
``pc`` domain never loads q35's rules (start-up time: bench row 2).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Protocol

from lxml import etree

from .. import topology
from ..errors import UnsupportedError
from ..layout import LayoutRecord
from ..pci import PciAddress
from ..plan import Plan
from ..policy import Policy
from ..topology import Topology
from ..xmldoc import Document

DEFAULT_MACHINE_TYPE = "pc"  # libvirt's default for x86 when <type> names no machine
_X86 = {"x86_64", "i686"}


class Machine(Protocol):
    """What planner needs to know about a chipset (a module satisfies it)."""

    name: str  # written in the metadata's machine= and in --json
    root_model: str  # the model of PCI controller 0
    builtin_sata0: bool  # SATA controller 0 is part of the chipset (libvirt adds none)
    pcie: bool  # libvirt connects devices that can be PCIe as PCIe (a pcie-root machine)
    reserved: tuple[PciAddress, ...]  # functions the chipset holds that no element shows

    def matches(self, machine_type: str) -> bool:
        """Is ``machine_type`` (``pc-i440fx-7.2``, an alias) this chipset?"""

    def owns_record(self, recorded: str | None) -> bool:
        """Is a layout recorded with ``machine=recorded`` this machine's?"""

    def read_layout(
        self, policy: Policy, nics: etree._Element, others: etree._Element
    ) -> LayoutRecord:
        """The typed layout record from the metadata's ``nics``/``others`` elements."""

    def fixed_address(
        self, el: etree._Element, primary_video: etree._Element | None, index: int | None = None
    ) -> PciAddress | None:
        """Where the chipset (or libvirt's rules for it) pins this device, if anywhere;
        ``index`` is a controller's index as libvirt gives it (written or not)."""

    def implicit_devices(self, devs: etree._Element, quote: str) -> list[tuple[str, str, str]]:
        """(kind, model, markup) of PCI devices libvirt adds on this chipset by itself."""

    def plan(self, topo: Topology, policy: Policy) -> Plan:
        """The cold layout: topology + policy -> plan."""

    def derived_layout(self, topos: list[Topology]) -> tuple[LayoutRecord, tuple[str, ...]]:
        """The layout of a domain never laid out (or NoRoomError), with warnings."""

    def choose(
        self, topos: list[Topology], layout: LayoutRecord, kind: str, policy: str
    ) -> PciAddress:
        """The hot-plug address of a device of ``kind`` (NoRoomError if none is left)."""

    def nic_name(self, addr: PciAddress, bus_numbers: dict[int, int], func: str) -> str:
        """The guest's name of a NIC at ``addr`` without an ACPI index."""

    def free_slots(
        self, topo: Topology, layout: LayoutRecord | None, used: set[tuple[int, int]]
    ) -> list[dict]:
        """What ``show`` lists as free: ``{"slots": ..., "role": ...}`` rows."""


# The machines, by module name (which is the machine's name), in the order a machine
# type is matched against them.
REGISTERED = ("pc", "q35")


def machines() -> Iterator[Machine]:
    """Every registered machine, in order, each imported as the iteration reaches it."""
    return map(by_name, REGISTERED)


def by_name(name: str) -> Machine:
    if name not in REGISTERED:
        raise UnsupportedError(f"machine {name!r} is not supported yet")
    return importlib.import_module(f"{__name__}.{name}")


def default_machine() -> Machine:
    """The machine of a domain that names none (libvirt's x86 default)."""
    return next(m for m in machines() if m.matches(DEFAULT_MACHINE_TYPE))


def machine_type(root: etree._Element) -> tuple[str, str]:
    """(architecture, machine type) as the domain writes them, with libvirt's defaults."""
    typ = root.find("os/type")
    arch = typ.get("arch", "x86_64") if typ is not None else "x86_64"
    mtype = (typ.get("machine") if typ is not None else None) or DEFAULT_MACHINE_TYPE
    return arch, mtype


def machine_for(root: etree._Element, resolved: str | None = None) -> tuple[Machine, str]:
    """The machine a domain runs on, and its machine type; UnsupportedError for others.

    ``resolved`` is the canonical machine type libvirt resolved an alias to (see
    :func:`planner.virt.resolve_machine`); without it the domain's own is used.
    """
    arch, mtype = machine_type(root)
    if arch not in _X86:
        raise UnsupportedError(f"architecture {arch} (machine {mtype}) is not supported yet")
    for m in machines():
        if m.matches(mtype) or (resolved is not None and m.matches(resolved)):
            return m, resolved or mtype
    raise UnsupportedError(f"machine type {mtype!r} is not supported yet")


def needs_resolving(root: etree._Element) -> bool:
    """Is the domain's machine type one no machine recognises by name (an alias of the
    host's emulator, say), so that libvirt's capabilities must tell what it is?"""
    arch, mtype = machine_type(root)
    return arch in _X86 and not any(m.matches(mtype) for m in machines())


def machine_family(root: etree._Element) -> tuple[str, str]:
    """(machine name, machine type) of a domain."""
    m, mtype = machine_for(root)
    return m.name, mtype


def read_topology(doc: Document, resolved: str | None = None) -> Topology:
    """Read a domain's PCI topology on the machine it runs on."""
    machine, mtype = machine_for(doc.root, resolved)
    return topology.read_topology(doc, machine, mtype)
