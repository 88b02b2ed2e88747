"""The q35 (PCIe) layout: not implemented yet."""

from __future__ import annotations

from .errors import UnsupportedError


def plan_q35(topo, policy):
    raise UnsupportedError(f"machine type {topo.machine_type!r} (q35) is not supported yet")
