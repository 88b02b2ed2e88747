"""The machine registry: every machine module implements the whole Machine protocol,
and a domain's machine type picks its machine."""

from __future__ import annotations

import inspect

import pytest

from planner import machines
from planner.errors import UnsupportedError
from planner.machines import Machine, by_name, machine_for
from planner.xmldoc import Document

MEMBERS = sorted(
    {*Machine.__annotations__}
    | {n for n, v in vars(Machine).items() if inspect.isfunction(v) and not n.startswith("_")}
)


@pytest.mark.parametrize("machine", tuple(machines.machines()), ids=lambda m: m.name)
def test_each_machine_implements_every_member_of_the_protocol(machine):
    missing = [n for n in MEMBERS if not hasattr(machine, n)]
    assert missing == []
    for n in MEMBERS:
        proto = vars(Machine).get(n)
        if inspect.isfunction(proto):
            ours = inspect.signature(getattr(machine, n)).parameters
            theirs = list(inspect.signature(proto).parameters)[1:]  # without self
            assert list(ours) == theirs, n


def root(machine: str | None, arch: str = "x86_64"):
    m = f" machine='{machine}'" if machine else ""
    return Document.parse(
        f"<domain type='qemu'><os><type arch='{arch}'{m}>hvm</type></os></domain>"
    ).root


@pytest.mark.parametrize(
    "mtype, name",
    [
        (None, "pc"),
        ("pc", "pc"),
        ("pc-i440fx-7.2", "pc"),
        ("pc-1.0", "pc"),
        ("q35", "q35"),
        ("pc-q35-7.2", "q35"),
    ],
)
def test_the_machine_type_picks_the_machine(mtype, name):
    assert machine_for(root(mtype))[0] is by_name(name)
    assert not machines.needs_resolving(root(mtype))


def test_other_machines_and_architectures_are_not_supported_yet():
    with pytest.raises(UnsupportedError, match="architecture aarch64"):
        machine_for(root("virt", "aarch64"))
    with pytest.raises(UnsupportedError, match="'isapc' is not supported yet"):
        machine_for(root("isapc"))
    assert machines.needs_resolving(root("ubuntu"))
    assert machine_for(root("ubuntu"), resolved="pc-q35-7.2") == (by_name("q35"), "pc-q35-7.2")
    with pytest.raises(UnsupportedError):
        by_name("virt")


def test_machine_names_are_unique_and_records_belong_to_one_machine():
    names = [m.name for m in tuple(machines.machines())]
    assert len(set(names)) == len(names)
    for recorded in [None, *names]:
        assert sum(m.owns_record(recorded) for m in tuple(machines.machines())) == 1
    assert names == list(machines.REGISTERED)  # a machine module's name is its machine's
