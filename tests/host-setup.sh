#!/usr/bin/env bash
# Prepare this Debian host for planner's tests: the QEMU driver of libvirtd,
# virtlogd, the tools the tests call, and the packages the test guest is built from.
# Idempotent: safe to run again; starts the daemons only when they are not running.
#
# The tests need a DISPOSABLE machine (a test VM or container, CI): they make QEMU run
# as root without a security driver (no sVirt) and without cgroups. That weakens every
# guest of a real hypervisor, so this script changes libvirt's configuration on its own
# only where it installs libvirt itself (no qemu.conf before), or where it finds nothing
# but its own earlier, marked changes. On a host whose libvirt was set up otherwise it
# changes nothing and exits 3, unless PLANNER_TEST_HOST=1 says the host is disposable.
# Every change it makes to the host is printed.
#
#   bash tests/host-setup.sh                  set up (packages, configuration, daemons)
#   bash tests/host-setup.sh --config-only    only decide and apply the configuration
# PLANNER_QEMU_CONF overrides the path of qemu.conf (the tests use a copy).
set -euo pipefail

need_root() { [ "$(id -u)" = 0 ] || { echo "host-setup: run as root" >&2; exit 1; }; }
need_root

say() { echo "host-setup: $*"; }
conf=${PLANNER_QEMU_CONF:-/etc/libvirt/qemu.conf}
config_only=0
[ "${1:-}" = --config-only ] && config_only=1

# The settings the tests need, in a block marked so that later runs recognise it.
mark="# planner-tests"
block=(
  "$mark: begin (added by planner's tests/host-setup.sh for a disposable test machine; delete to undo)"
  'user = "root"'
  'group = "root"'
  'security_driver = "none"'
  'cgroup_controllers = [ ]'
  "$mark: end"
)

# Is $conf the package's own file plus nothing but planner's marked block(s)? (The block
# is appended at the end; the part before it must match dpkg's checksum of the conffile.)
only_ours() {
  local first line pristine
  first=$(grep -n -m1 "^$mark" "$conf" | cut -d: -f1) || return 1
  while IFS= read -r line; do
    case $line in
      "$mark"* | "" | 'user = "root"' | 'group = "root"' | 'security_driver = "none"' | 'cgroup_controllers = [ ]') ;;
      *) return 1 ;;
    esac
  done < <(tail -n +"$first" "$conf")
  pristine=$(dpkg-query -W -f='${Conffiles}\n' libvirt-daemon-system 2>/dev/null |
    awk '$1 == "/etc/libvirt/qemu.conf" { print $2 }')
  [ -n "$pristine" ] && [ "$(head -n "$((first - 1))" "$conf" | md5sum | cut -d' ' -f1)" = "$pristine" ]
}

if [ ! -e "$conf" ]; then
  state=fresh  # no libvirt configuration yet: this run installs libvirt itself
  [ "$config_only" = 0 ] || { say "no $conf: install libvirt first (run without --config-only)" >&2; exit 1; }
elif only_ours; then
  state=ours
elif [ "${PLANNER_TEST_HOST:-}" = 1 ]; then
  state=allowed
  say "PLANNER_TEST_HOST=1: changing the libvirt configuration of a host that already had one"
else
  echo "host-setup: refusing to change $conf: this host already had libvirt configured, and planner's tests need a disposable machine or VM (QEMU as root, no sVirt, no cgroups); run with PLANNER_TEST_HOST=1 to allow it" >&2
  exit 3
fi

pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
      libvirt-dev pkg-config qemu-system-x86 qemu-utils libxml2-utils
      busybox-static udev cpio kmod zstd gcc python3-dev groovy default-jre-headless qemu-system-arm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$config_only" = 0 ] && [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
[ -e "$conf" ] || { say "$conf is missing after installing libvirt" >&2; exit 1; }

if [ "$config_only" = 0 ] && ! getent passwd libvirt-qemu >/dev/null; then
  say "adding the system user libvirt-qemu"
  useradd --system --no-create-home libvirt-qemu
fi

# A root-run QEMU without cgroups or a security driver: this sandbox has neither.
if grep -q "^$mark" "$conf"; then
  say "$conf already has planner's test settings ($state): nothing to change"
else
  say "changing $conf ($state): appending, so QEMU runs as root without sVirt or cgroups:"
  for line in "${block[@]}"; do say "  + $line"; done
  printf '%s\n' "${block[@]}" >>"$conf"
  if [ "$config_only" = 0 ] && pgrep -x libvirtd >/dev/null; then
    say "libvirtd is already running: these settings apply from its next start"
  fi
fi
[ "$config_only" = 0 ] || exit 0

mkdir -p /run/libvirt /var/log/libvirt/qemu /var/lib/libvirt/images

# Start virtlogd and libvirtd unless they run; retry while one of them is still shutting
# down (its socket gone, or the pidfile lock still held), until libvirtd answers.
ensure() {  # daemon socket
  if ! pgrep -x "$1" >/dev/null || [ ! -S "$2" ]; then
    pgrep -x "$1" >/dev/null || "$1" -d || true
  fi
}
for _ in $(seq 1 100); do
  ensure virtlogd /run/libvirt/virtlogd-sock
  ensure libvirtd /run/libvirt/libvirt-sock
  [ -S /run/libvirt/virtlogd-sock ] && virsh -c qemu:///system version >/dev/null 2>&1 && break
  sleep 0.2
done
virsh -c qemu:///system version >/dev/null
echo "host-setup: libvirtd ready ($(virsh -c qemu:///system version | sed -n 's/.*Running hypervisor: //p'))"
