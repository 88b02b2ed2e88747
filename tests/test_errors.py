"""Library errors carry data an orchestrator can act on, without parsing messages."""

from __future__ import annotations

import pytest
from domains import nic, pc_domain

from planner import relayout
from planner.errors import ImpossibleError, InputError
from planner.pci import PciAddress


def test_a_shared_address_names_the_element_and_the_address():
    xml = pc_domain(nic(3), nic(3))
    with pytest.raises(InputError) as info:
        relayout(xml)
    assert info.value.element == "interface"
    assert info.value.address == PciAddress(0, 0, 3, 0)


def test_an_impossible_nic_range_names_the_setting_and_the_limit():
    with pytest.raises(ImpossibleError) as info:
        relayout(pc_domain(nic(3)), nic_start=1)
    assert info.value.option == "nic_start" and info.value.limit >= 2
    assert "--" not in str(info.value)  # the CLI adds the flag, the library does not
