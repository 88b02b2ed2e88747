"""``planner unplug``: the argparse and printing side of :mod:`planner.detach`.

Exit status: 0 when the device is gone (from the running domain, and from the
persistent config); 1 when libvirt accepted the detach, the persistent config no
longer has the device, but the guest has not released it within ``--timeout``: the
device, and its slot, stay in the running domain until the guest ejects it (or the
domain is destroyed). That is not an error (nothing failed, nothing is to be fixed in
the command line), but it is not the requested state either, so a script must not
carry on as if the slot were free: the same meaning 1 has for ``relayout --check``
("not in the wanted state yet"). Errors keep their codes: 2 no/several/non-PCI
device or bad input, 4 domain not found, 5 libvirtd unreachable, 6 libvirt refused.
"""

from __future__ import annotations

import argparse

from .common import add_lock_timeout, write_stdout

EXIT_PENDING = 1  # detached, but the guest has not released the device yet


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 <= value <= 86400):
        raise argparse.ArgumentTypeError("the timeout must be between 0 and 86400 seconds")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    u = subparsers.add_parser(
        "unplug",
        help="detach a PCI device (MAC, guest NIC name or PCI address), wait until it is gone",
    )
    u.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system)",
    )
    u.add_argument("domain", help="domain name or UUID")
    u.add_argument(
        "match",
        metavar="MAC|NAME|ADDRESS",
        help="the device: a MAC (52:54:00:12:34:56), a guest NIC name as planner predicts it "
        "(ens4, enp2s0, eno2) or libvirt's PCI address (0000:00:04.0 or 00:04.0)",
    )
    scope = u.add_mutually_exclusive_group()
    scope.add_argument("--live", action="store_true", help="affect the running domain only")
    scope.add_argument("--config", action="store_true", help="affect the persistent config only")
    u.add_argument(
        "--timeout",
        type=_timeout,
        default=30.0,
        metavar="S",
        help="seconds to wait for the guest to release the device (default 30)",
    )
    u.add_argument("--json", action="store_true", help="print the result as JSON")
    add_lock_timeout(u)
    return u


def run(args) -> int:
    from ..detach import unplug

    result = unplug(
        args.domain,
        args.match,
        conn=args.connect,
        live=args.live,
        config=args.config,
        timeout=args.timeout,
        lock_timeout=args.lock_timeout,
    )
    if args.json:
        import json

        print(json.dumps(result.as_dict(), indent=2))
    else:
        write_stdout(result.summary() + "\n")
    return 0 if result.removed else EXIT_PENDING
