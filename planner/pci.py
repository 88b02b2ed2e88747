"""PCI addresses as libvirt writes them: ``<address type='pci' domain= bus= slot= function=/>``.

``bus`` is the *controller index* of the PCI controller the device plugs into, not
the bus number the guest assigns during enumeration (see :mod:`planner.names`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .errors import InputError

MAX_SLOT = 0x1F
MAX_FUNCTION = 7
MAX_BUS = 0xFF  # libvirt: "PCI controller index %d too high, maximum is 255"


_SPACE = " \t\n\v\f\r"  # C isspace(): what strtoul skips before a number
_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _strtoul(text: str, base: int, what: str) -> int:
    """libvirt's virStrToLong_uip: strtoul(text, &end, base), the whole text consumed,
    no minus sign. Leading white space and a '+' are accepted as strtoul accepts them;
    trailing white space, Python's ``0o``/``0b``/``_`` forms and an empty value are not.
    """
    value = _cached_value(text, base) if len(text) <= 16 else _strtoul_value(text, base)
    if isinstance(value, int):
        return value
    raise InputError(f"{what} {text!r} {value}")


def _strtoul_value(text: str, base: int) -> int | str:
    """The number, or why it is none."""
    s = text.lstrip(_SPACE)
    if s[:1] == "-":
        return "is negative"
    if s[:1] == "+":
        s = s[1:]
    radix = base
    if base == 0:
        if s[:2] in ("0x", "0X"):
            s, radix = s[2:], 16
        elif len(s) > 1 and s[0] == "0":
            s, radix = s[1:], 8
        else:
            radix = 10
    if s and all(c in _DIGITS[radix] for c in s):
        return int(s, radix)
    return "is not a number"


# A domain repeats a few dozen short spellings ('0x0000', '0x00', '0x05') thousands of
# times: those are cached, in a bounded cache that never holds a long string.
_cached_value = functools.lru_cache(maxsize=512)(_strtoul_value)


def parse_number(text: str, what: str) -> int:
    """Read a PCI address attribute as libvirt does: strtoul with base 0.

    ``0x1f`` is hex, ``010`` is octal (8), anything else decimal; libvirt parses
    PCI address attributes this way (virPCIDeviceAddressParseXML, virXMLPropUInt with
    base 0), so slot='010' is slot 8, not 10. ``0x0x5``, ``0o5``, ``1_0`` and ``5 ``
    are refused, as libvirt refuses them.
    """
    return _strtoul(text, 0, what)


def parse_index(text: str, what: str = "controller index") -> int:
    """Read a controller ``index`` (or a drive address's ``controller``) as libvirt does:
    decimal (virDomainControllerDefParseXML: virXMLPropInt base 10), so index='010' is 10."""
    return _strtoul(text, 10, what)


@dataclass(frozen=True, order=True)
class PciAddress:
    """A guest PCI address. Ordered like the guest scans: bus index, slot, function."""

    domain: int
    bus: int
    slot: int
    function: int = 0

    @property
    def slot_key(self) -> tuple[int, int, int]:
        return (self.domain, self.bus, self.slot)

    def with_slot(self, bus: int, slot: int) -> PciAddress:
        return PciAddress(self.domain, bus, slot, self.function)

    def attrs(self) -> dict[str, str]:
        """Attribute values in libvirt's own formatting."""
        return {
            "domain": f"0x{self.domain:04x}",
            "bus": f"0x{self.bus:02x}",
            "slot": f"0x{self.slot:02x}",
            "function": f"0x{self.function:x}",
        }

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"
