"""``planner --version``: the versions a bug report needs, as ``virsh version`` gives them.

One line each for planner (and the Python running it), lxml, the libxml2 it runs on,
libvirt-python with the libvirt library it loaded, and the libvirtd it reaches with the
hypervisor behind it. Nothing here fails: a missing libvirt-python or an unreachable
libvirtd is said on its line. The connection is read-only and closed at once.
"""

from __future__ import annotations

import os
import platform

DEFAULT_URI = "qemu:///system"


def version_lines(uri: str | None = None) -> list[str]:
    """planner, lxml, libxml2, libvirt-python and libvirtd versions, one line each."""
    lines = [_safely(_planner), _safely(_lxml), _safely(_libxml2)]
    libvirt = _import_libvirt()
    if isinstance(libvirt, str):
        lines.append(f"libvirt-python: not available ({libvirt}); hot-plug needs it")
        lines.append("libvirtd: not asked (no libvirt-python)")
        return lines
    lines.append(_safely(_libvirt_python, libvirt))
    lines.append(_safely(_libvirtd, libvirt, uri or os.environ.get("LIBVIRT_DEFAULT_URI")))
    return lines


def _safely(part, *args) -> str:
    try:
        return part(*args)
    except Exception as exc:  # noqa: BLE001 - a version line never fails
        name = getattr(part, "__name__", "?").lstrip("_").replace("_", "-")
        return f"{name}: unknown ({type(exc).__name__}: {_one_line(exc)})"


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _planner() -> str:
    from ._version import __version__

    where = os.path.dirname(os.path.abspath(__file__))
    impl = platform.python_implementation()
    return f"planner {__version__} ({where}; {impl} {platform.python_version()})"


def _lxml() -> str:
    from lxml import etree

    return f"lxml {etree.__version__}"


def _libxml2() -> str:
    from lxml import etree

    running, compiled = _dotted(etree.LIBXML_VERSION), _dotted(etree.LIBXML_COMPILED_VERSION)
    built = "" if running == compiled else f", lxml built against {compiled}"
    return f"libxml2 {running}{built}"


def _import_libvirt():
    """The libvirt module, or why it cannot be imported (a string)."""
    try:
        import libvirt
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken build of it
        return f"{type(exc).__name__}: {_one_line(exc)}"
    return libvirt


def _libvirt_python(libvirt) -> str:
    try:
        from importlib.metadata import version

        binding = version("libvirt-python")
    except Exception:  # noqa: BLE001 - installed without metadata (a distribution package)
        binding = "(version unknown)"
    return f"libvirt-python {binding} (libvirt library {_libvirt_number(libvirt.getVersion())})"


def _libvirtd(libvirt, uri: str | None) -> str:
    uri = uri or DEFAULT_URI
    libvirt.registerErrorHandler(lambda *_: None, None)  # no libvirt chatter on stderr
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        why = _one_line(exc.get_error_message() or exc)
        return f"libvirtd: unreachable at {uri} ({why})"
    try:
        daemon = _libvirt_number(conn.getLibVersion())
        hypervisor = conn.getType()
        try:
            hv_version = _libvirt_number(conn.getVersion())
        except libvirt.libvirtError:
            hv_version = "(version unknown)"
        return f"libvirtd {daemon} at {uri}, hypervisor {hypervisor} {hv_version}"
    finally:
        conn.close()


def _libvirt_number(n: int) -> str:
    """libvirt's major * 1,000,000 + minor * 1,000 + release as ``major.minor.release``."""
    return f"{n // 1_000_000}.{n // 1_000 % 1_000}.{n % 1_000}"


def _dotted(parts) -> str:
    return ".".join(str(p) for p in parts)
