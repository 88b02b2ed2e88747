"""PCI addresses as libvirt writes them: ``<address type='pci' domain= bus= slot= function=/>``.

``bus`` is the *controller index* of the PCI controller the device plugs into, not
the bus number the guest assigns during enumeration (see :mod:`planner.names`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

MAX_SLOT = 0x1F
MAX_FUNCTION = 7
MAX_BUS = 0xFF  # libvirt: "PCI controller index %d too high, maximum is 255"


_HEX = frozenset("0123456789abcdefABCDEF")
_DEC = frozenset("0123456789")


def parse_number(text: str, what: str) -> int:
    """Read a libvirt number attribute as libvirt does: strtoul with base 0.

    ``0x1f`` is hex, ``010`` is octal (8), anything else decimal; libvirt parses
    PCI address attributes this way, so slot='010' is slot 8, not 10.
    """
    s = text.strip()
    if s[:1] == "-":
        raise InputError(f"{what} {text!r} is negative")
    hexa = s[:2] in ("0x", "0X")
    digits = s[2:] if hexa else s
    # Only the digits strtoul takes: no sign, space, '_', or second prefix ('0x0x5',
    # '0o5') that Python's int() would accept.
    if digits and all(c in (_HEX if hexa else _DEC) for c in digits):
        try:
            if hexa:
                return int(digits, 16)
            return int(s, 8) if len(s) > 1 and s[0] == "0" else int(s, 10)
        except ValueError:
            pass
    raise InputError(f"{what} {text!r} is not a number")


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
