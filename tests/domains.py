"""Helpers shared by the relayout tests: small pc domains, and what to read back out of them.

The readers here parse addresses themselves (hex with ``0x`` or decimal) instead of
going through planner's topology, so the tests do not check planner against itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
GOLDEN = ROOT / "tests" / "golden"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PLANNER_NS = "urn:libvirt-nic-planner:layout:1"


# --- hostile input: entity bombs and external entities ------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE domain [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain type='kvm'><name>&lol9;</name><devices/></domain>
"""

EXTERNAL_FILE = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY passwd SYSTEM "file:///etc/passwd">]>
<domain type='kvm'><name>&passwd;</name><devices/></domain>
"""

# 192.0.2.0/24 is TEST-NET-1: nothing answers there, a fetch would hang until a timeout.
EXTERNAL_HTTP = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY remote SYSTEM "http://192.0.2.1/entity.xml">]>
<domain type='kvm'><name>&remote;</name><devices/></domain>
"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>
<domain type='kvm'><name>a</name><devices/></domain>
"""


# --- building domains -------------------------------------------------------------------


def pci(slot: int, bus: int = 0, function: int = 0, multifunction: bool = False) -> str:
    """An <address type='pci'> as libvirt writes it."""
    multi = " multifunction='on'" if multifunction else ""
    return (
        f"<address type='pci' domain='0x0000' bus='{bus:#04x}' slot='{slot:#04x}' "
        f"function='{function:#x}'{multi}/>"
    )


def nic(
    slot: int | None = None,
    model: str = "virtio",
    mac: str | None = None,
    bus: int = 0,
    kind: str = "network",
) -> str:
    source = {
        "network": "<source network='default'/>",
        "bridge": "<source bridge='br0'/>",
        "user": "",
    }[kind]
    parts = [f"<interface type='{kind}'>"]
    if mac:
        parts.append(f"  <mac address='{mac}'/>")
    if source:
        parts.append(f"  {source}")
    parts.append(f"  <model type='{model}'/>")
    if slot is not None:
        parts.append(f"  {pci(slot, bus)}")
    parts.append("</interface>")
    return "\n".join(parts)


def disk(dev: str, slot: int | None = None, bus: int = 0) -> str:
    addr = f"\n  {pci(slot, bus)}" if slot is not None else ""
    return (
        f"<disk type='file' device='disk'>\n"
        f"  <source file='/var/lib/libvirt/images/{dev}.img'/>\n"
        f"  <target dev='{dev}' bus='virtio'/>{addr}\n</disk>"
    )


def device(
    tag: str,
    attrs: str = "",
    slot: int | None = None,
    body: str = "",
    bus: int = 0,
    function: int = 0,
    multifunction: bool = False,
) -> str:
    """Any device element: ``device('watchdog', "model='i6300esb'", slot=8)``."""
    addr = pci(slot, bus, function, multifunction) if slot is not None else ""
    inner = [line for part in (body, addr) if part for line in part.splitlines()]
    head = f"<{tag} {attrs}".rstrip()
    if not inner:
        return head + "/>"
    return head + ">\n" + "\n".join("  " + line for line in inner) + f"\n</{tag}>"


def pc_domain(
    *devices: str, machine: str = "pc", arch: str = "x86_64", name: str = "t", metadata: str = ""
) -> str:
    """A minimal domain with the given device markup, indented like libvirt writes it."""
    body = "\n".join("    " + line for d in devices for line in d.splitlines())
    meta = f"\n  <metadata>\n{metadata}\n  </metadata>" if metadata else ""
    return f"""<domain type='kvm'>
  <name>{name}</name>{meta}
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='{arch}' machine='{machine}'>hvm</type>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
{body}
  </devices>
</domain>
"""


# --- reading results --------------------------------------------------------------------


def number(text: str) -> int:
    """A libvirt number attribute, read like strtoul(base 0): 0x hex, 0 octal, else decimal."""
    text = text.strip().lower()
    if text.startswith("0x"):
        return int(text, 16)
    return int(text, 8) if len(text) > 1 and text.startswith("0") else int(text, 10)


def tree(xml: str | bytes) -> etree._Element:
    data = xml.encode() if isinstance(xml, str) else xml
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def devices_of(xml_or_root) -> list[etree._Element]:
    """The device elements (children of <devices>), comments left out."""
    root = tree(xml_or_root) if isinstance(xml_or_root, (str, bytes)) else xml_or_root
    devs = root.find("devices")
    return [] if devs is None else [el for el in devs if isinstance(el.tag, str)]


def address(el: etree._Element) -> tuple[int, int, int] | None:
    """(bus, slot, function) of el's own <address type='pci'>, or None."""
    a = el.find("address")
    if a is None or a.get("type") != "pci" or a.get("slot") is None:
        return None
    return (number(a.get("bus", "0")), number(a.get("slot")), number(a.get("function", "0")))


def multifunction(el: etree._Element) -> bool:
    a = el.find("address")
    return a is not None and a.get("multifunction") == "on"


def find(xml_or_root, tag: str, **attrs: str) -> etree._Element:
    """The one device with this tag (and attributes; ``target_dev='vda'`` looks at <target dev>)."""
    found = [el for el in devices_of(xml_or_root) if el.tag == tag and _matches(el, attrs)]
    assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
    return found[0]


def _matches(el: etree._Element, attrs: dict[str, str]) -> bool:
    for key, want in attrs.items():
        if "_" in key:
            child, attr = key.split("_", 1)
            sub = el.find(child)
            if sub is None or sub.get(attr) != want:
                return False
        elif el.get(key) != want:
            return False
    return True


def slot_of(xml_or_root, tag: str, **attrs: str) -> tuple[int, int, int] | None:
    return address(find(xml_or_root, tag, **attrs))


def nic_slots(xml_or_root) -> list[tuple[int, int, int] | None]:
    """The addresses of the <interface> elements, in document order."""
    return [address(el) for el in devices_of(xml_or_root) if el.tag == "interface"]


def layout_of(xml_or_root) -> etree._Element | None:
    root = tree(xml_or_root) if isinstance(xml_or_root, (str, bytes)) else xml_or_root
    return root.find(f"metadata/{{{PLANNER_NS}}}layout")


# --- tools outside Python: virt-xml-validate and libvirtd ---------------------------------


def unavailable(why: str) -> None:
    """Skip on a developer's machine; fail in CI, where nothing may pass by skipping."""
    if IN_CI:
        pytest.fail(f"unavailable in CI: {why}")
    pytest.skip(why)


def schema_check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``virt-xml-validate FILE domain``; returncode 0 means the file validates.

    ``env``: the tool's environment (by default this process's), e.g. a background job's.
    """
    tool = shutil.which("virt-xml-validate")
    if tool is None:
        unavailable("virt-xml-validate (libvirt-clients) is not installed")
    return subprocess.run(
        [tool, str(path), "domain"], capture_output=True, text=True, timeout=60, env=env
    )


def define_copy(conn, xml: str, prefix: str = "planner-test"):
    """Define xml under a fresh unique name (and no uuid); returns the libvirt domain.

    The caller undefines it (see :func:`defined`).
    """
    root = tree(xml)
    name = root.find("name")
    name.text = f"{prefix}-{uuid.uuid4().hex[:10]}"
    uid = root.find("uuid")
    if uid is not None:
        root.remove(uid)
    return conn.defineXML(etree.tostring(root, encoding="unicode"))


class defined:
    """``with defined(conn, xml) as (dom, dumped):`` defines a copy, yields libvirt's
    inactive XML of it as a tree, and undefines it afterwards."""

    def __init__(self, conn, xml: str):
        self.conn, self.xml, self.dom = conn, xml, None

    def __enter__(self):
        import libvirt

        self.dom = define_copy(self.conn, self.xml)
        dumped = tree(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        return self.dom, dumped

    def __exit__(self, *exc):
        if self.dom is not None:
            undefine(self.dom)
        return False


def undefine(dom) -> None:
    """Undefine a test domain with whatever libvirt keeps next to it (UEFI NVRAM, ...)."""
    import libvirt

    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    )
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError:
        with contextlib.suppress(libvirt.libvirtError):  # never mask the test's own failure
            dom.undefine()


# --- comparing planner's order with libvirt's own assignment -------------------------------


def device_keys(xml_or_root) -> dict[tuple, tuple[int, int, int] | None]:
    """A stable name for every PCI device except NICs, and its address (or None).

    The names survive libvirt's re-serialisation (which sorts disks and controllers
    and moves the primary video first), so devices can be matched between a
    document and libvirt's dumpxml of it.
    """
    from planner import devices

    root = tree(xml_or_root) if isinstance(xml_or_root, (str, bytes)) else xml_or_root
    els = devices_of(root)
    videos = [el for el in els if el.tag == "video"]
    primary = [v for v in videos if v.find("model[@primary='yes']") is not None]
    videos = primary[:1] + [v for v in videos if v not in primary[:1]]
    counts: dict[str, int] = {}
    out: dict[tuple, tuple[int, int, int] | None] = {}
    for el in els:
        if el.tag in ("interface", "console") or not devices.is_pci(el):
            continue
        if el.tag == "disk":
            key: tuple = ("disk", el.find("target").get("dev"))
        elif el.tag == "controller":
            model = el.get("model")  # only USB2 companions share an index, told apart by model
            model = model if el.get("type") == "usb" and model in devices.USB2_FUNCTIONS else None
            key = ("controller", el.get("type"), number(el.get("index", "0")), model)
        elif el.tag == "hostdev":
            src = el.find("source/address")
            key = ("hostdev", tuple(sorted(src.attrib.items())) if src is not None else None)
        elif el.tag == "video":
            key = ("video", videos.index(el))
        else:
            counts[el.tag] = counts.get(el.tag, 0) + 1
            key = (el.tag, counts[el.tag])
        out[key] = address(el)
    return out


def order_on_root_bus(keys: dict[tuple, tuple[int, int, int] | None], among) -> list[tuple]:
    """The keys in ``among`` that sit on bus 0, sorted by their address there."""
    return sorted((k for k in among if keys.get(k) and keys[k][0] == 0), key=lambda k: keys[k])


def libvirt_order_differences(conn, original: str, relaid: str) -> tuple[list, list]:
    """(libvirt's order, planner's order) of the non-NIC devices both put on bus 0.

    libvirt's order is what it assigns when the original domain is defined as is;
    planner's is the order in the relayout. They must be equal: the guest scans the
    devices in that order, and it decides names such as vda/vdb and sda/sdb.
    """
    with defined(conn, original) as (_, dumped):
        theirs = device_keys(dumped)
    ours = device_keys(relaid)
    # planner keeps slots 1 and 2 for the devices the chipset pins (PIIX3, primary video)
    common = {k for k in _on_root_bus(ours) & _on_root_bus(theirs) if ours[k][1] > 2}
    return order_on_root_bus(theirs, common), order_on_root_bus(ours, common)


def _on_root_bus(keys: dict[tuple, tuple[int, int, int] | None]) -> set[tuple]:
    return {k for k, a in keys.items() if a and a[0] == 0}
