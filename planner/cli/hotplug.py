"""``planner hotplug``: a device file or a NIC from the template, attached where it belongs."""

from __future__ import annotations

import argparse

from .common import UsageError, add_lock_timeout, read_input, warn, write_stdout


def add_parser(sub) -> argparse.ArgumentParser:
    h = sub.add_parser("hotplug", help="attach a device at its planned address")
    h.add_argument(
        "-c",
        "--connect",
        metavar="URI",
        help="libvirt URI (default: $LIBVIRT_DEFAULT_URI, else qemu:///system)",
    )
    h.add_argument("domain", help="domain name or UUID")
    h.add_argument(
        "device",
        nargs="?",
        help="device XML file, or - for stdin; without it a NIC is rendered from a template",
    )
    kind = h.add_mutually_exclusive_group()
    kind.add_argument("--network", metavar="NAME", help="NIC on a libvirt network")
    kind.add_argument("--bridge", metavar="BR", help="NIC on a host bridge")
    kind.add_argument("--user", action="store_true", help="NIC with user-mode networking")
    h.add_argument("--model", default="virtio", help="NIC model (default virtio)")
    h.add_argument("--mac", help="NIC MAC address (default: libvirt generates one)")
    h.add_argument("--template", metavar="FILE", help="a jinja2 template for the NIC")
    h.add_argument(
        "--policy",
        choices=("lowest", "after-last"),
        default="lowest",
        help="lowest: fill holes left by unplugs (default); after-last: after the highest NIC",
    )
    scope = h.add_mutually_exclusive_group()
    scope.add_argument("--live", action="store_true", help="affect the running domain only")
    scope.add_argument("--config", action="store_true", help="affect the persistent config only")
    h.add_argument("--dry-run", action="store_true", help="print the device XML; attach nothing")
    h.add_argument("--json", action="store_true", help="print the result as JSON")
    h.add_argument(
        "--fallback",
        action="store_true",
        help="if planner cannot place the device, let libvirt choose (with a warning)",
    )
    add_lock_timeout(h)
    return h


def _device_xml(args) -> str | bytes:
    from ..attach import render_nic

    if args.device:
        if args.network or args.bridge or args.user or args.template or args.mac:
            raise UsageError("give a device file or NIC options, not both")
        return read_input(args.device, "device XML")
    if args.network:
        return render_nic("network", args.network, args.model, args.mac, args.template)
    if args.bridge:
        return render_nic("bridge", args.bridge, args.model, args.mac, args.template)
    if args.user:
        return render_nic("user", None, args.model, args.mac, args.template)
    raise UsageError("give a device XML file, or a NIC with --network, --bridge or --user")


def run(args) -> int:
    from ..attach import hotplug

    result = hotplug(
        args.domain,
        _device_xml(args),
        conn=args.connect,
        policy=args.policy,
        live=args.live,
        config=args.config,
        dry_run=args.dry_run,
        fallback=args.fallback,
        lock_timeout=args.lock_timeout,
    )
    for w in result.warnings:
        warn(w)
    if args.json:
        import json

        out = result.as_dict()
        if args.dry_run:
            out["xml"] = result.xml
        print(json.dumps(out, indent=2))
    elif args.dry_run:
        write_stdout(result.xml + "\n")
    else:
        write_stdout(result.summary() + "\n")
    return 0
