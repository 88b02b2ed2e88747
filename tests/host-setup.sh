#!/usr/bin/env bash
# Prepare this Debian host for planner's tests: the QEMU driver of libvirtd,
# virtlogd, the tools the tests call, and the packages the test guest is built from.
# Idempotent: safe to run again; starts the daemons only when they are not running.
set -euo pipefail

need_root() { [ "$(id -u)" = 0 ] || { echo "host-setup: run as root" >&2; exit 1; }; }
need_root

pkgs=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients
      libvirt-dev pkg-config qemu-system-x86 qemu-utils libxml2-utils
      busybox-static udev cpio kmod zstd gcc python3-dev groovy default-jre-headless)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home libvirt-qemu

# A root-run QEMU without cgroups or a security driver: this sandbox has neither.
conf=/etc/libvirt/qemu.conf
if ! grep -q '^# planner-tests' "$conf"; then
  cat >>"$conf" <<'CONF'
# planner-tests
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
CONF
fi

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
