#!/bin/busybox sh
# /init of planner's test guest. A template: build_guest() replaces @MODULES@ with the
# kernel modules to insmod, dependencies first.
#
# The guest does nothing but tell the host what it sees: every NIC with its PCI address
# and the names systemd-udev's net_id would give it, and every virtio disk. It prints a
# report on the serial console at boot and again whenever /sys/class/net or /sys/block
# changes, so that tests can watch hot-plug and unplug from the guest's side.
# Report lines start with PLANNER- and the END line carries the counts, so that a
# report torn by an interleaved kernel message is recognisably incomplete.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for m in @MODULES@; do
  insmod "/lib/modules/$m.ko" || echo "PLANNER-ERROR insmod $m failed"
done

# The PCI address (0000:00:03.0) of a sysfs device: the nearest PCI ancestor of the
# device, since a virtio NIC's or disk's "device" is the virtio device below it.
pci_of() {
  d=$(readlink -f "$1" 2>/dev/null)
  while [ -n "$d" ] && [ "$d" != /sys ]; do
    case ${d##*/} in
      [0-9a-f][0-9a-f][0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f].[0-7])
        echo "${d##*/}"; return ;;
    esac
    d=${d%/*}
  done
}

nic_line() {
  onboard= slot= path=
  for kv in $(udevadm test-builtin net_id "/sys/class/net/$1" 2>/dev/null); do
    case $kv in
      ID_NET_NAME_ONBOARD=*) onboard=${kv#*=} ;;
      ID_NET_NAME_SLOT=*) slot=${kv#*=} ;;
      ID_NET_NAME_PATH=*) path=${kv#*=} ;;
    esac
  done
  # systemd's default NamePolicy (onboard slot path), else the kernel's name.
  name=${onboard:-${slot:-${path:-$1}}}
  echo "PLANNER-NIC iface=$1 pci=$(pci_of "/sys/class/net/$1/device")" \
    "mac=$(cat "/sys/class/net/$1/address")" \
    "onboard=$onboard slot=$slot path=$path name=$name"
}

report() {
  seq=$((seq + 1)) nics=0 disks=0 body=
  for n in /sys/class/net/*; do
    [ -e "$n/device" ] || continue  # lo and other virtual interfaces
    body="$body$(nic_line "${n##*/}")
"
    nics=$((nics + 1))
  done
  for d in /sys/block/vd*; do
    [ -e "$d" ] || continue
    body="${body}PLANNER-DISK name=${d##*/} pci=$(pci_of "$d/device")"
    body="$body serial=$(cat "$d/serial" 2>/dev/null) size=$(cat "$d/size")
"
    disks=$((disks + 1))
  done
  # One write for the whole report keeps kernel messages out of it as far as possible.
  printf 'PLANNER-REPORT %s BEGIN\n%sPLANNER-REPORT %s END nics=%s disks=%s\n' \
    "$seq" "$body" "$seq" "$nics" "$disks"
}

seq=0 last=
while :; do
  state=$(ls -l /sys/class/net /sys/block 2>&1)
  if [ "$state" != "$last" ]; then
    last=$state
    report
  fi
  sleep 0.3
done
