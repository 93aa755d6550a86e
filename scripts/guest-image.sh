#!/usr/bin/env bash
# The lab's real Linux guest (`bridgewatch lab --guest linux`, the guest e2e tests): Debian's
# stock kernel and a busybox initramfs whose /init brings eth0 up and idles. Built from Debian
# packages, never installed on the host: the kernel package `linux-image-amd64` depends on is
# downloaded and unpacked into a scratch dir. Idempotent: the result is cached per kernel version
# and rebuilt only when missing or when this script changed.
#   scripts/guest-image.sh [--quiet]        prints the image directory
# Needs root (the cache is under /var/cache), apt, dpkg-deb, busybox-static, cpio, gzip, xz.
# The cache dir holds: kernel (what QEMU boots), initrd.gz, manifest (what is in them).
set -euo pipefail

CACHE=/var/cache/bridgewatch/guest
quiet=false
[[ " $* " == *" --quiet "* ]] && quiet=true
say() { $quiet || echo "guest-image: $*" >&2; }
die() { echo "guest-image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (writes $CACHE)"
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found: apt-get install busybox-static"
"$BUSYBOX" --list | grep -qx insmod || die "$BUSYBOX has no insmod applet: install busybox-static, not busybox"
for t in cpio gzip dpkg-deb apt-get apt-cache flock; do command -v "$t" >/dev/null || die "$t not found in PATH"; done

# the kernel package the metapackage points to today, e.g. linux-image-6.1.0-57-amd64
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 # two setups at once build once

pkg=$(kernel_package)
if [ -z "$pkg" ]; then
  say "no package lists for linux-image-amd64: apt-get update"
  apt-get update -qq || die "apt-get update failed: cannot find Debian's kernel package"
  pkg=$(kernel_package)
  [ -n "$pkg" ] || die "apt-cache depends linux-image-amd64: no linux-image-<version> dependency (is this Debian?)"
fi
kver=${pkg#linux-image-}
out="$CACHE/$kver"
stamp="$(sha256sum "$0" | cut -d' ' -f1) $pkg"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/kernel" ] && [ -f "$out/initrd.gz" ]; then
  ln -sfn "$kver" "$CACHE/current"
  echo "$out"
  exit 0
fi

say "building the guest image for $pkg in $out"
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
chown _apt "$work" 2>/dev/null || true # apt-get download drops privileges to _apt when it can
download() { (cd "$work" && apt-get download -qq "$pkg" 2>&1); }
if ! log=$(download); then
  say "apt-get download $pkg failed, updating the package lists: ${log##*$'\n'}"
  apt-get update -qq || die "apt-get update failed: cannot download $pkg"
  log=$(download) || die "apt-get download $pkg: $log"
fi
deb=$(ls "$work"/*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "apt-get download $pkg: no .deb in $work"
dpkg-deb -x "$deb" "$work/pkg"
rm -f "$deb"
kroot="$work/pkg/lib/modules/$kver"
config="$work/pkg/boot/config-$kver"
[ -f "$work/pkg/boot/vmlinuz-$kver" ] && [ -d "$kroot" ] && [ -f "$config" ] || die "$pkg: no vmlinuz, config or modules for $kver"

# module name -> file (names use - and _ interchangeably)
declare -A kofile
while IFS= read -r f; do
  n=${f##*/}; n=${n%%.ko*}; kofile[${n//-/_}]=$f
done < <(find "$kroot/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')

# the .modinfo strings are NUL-separated; depends= lists direct dependencies
modinfo_depends() {
  local f=$1
  case $f in
    *.xz) "$BUSYBOX" xzcat "$f" ;;
    *.gz) gzip -dc "$f" ;;
    *.zst) command -v zstd >/dev/null || die "$f is zstd-compressed: apt-get install zstd"; zstd -qdc "$f" ;;
    *) cat "$f" ;;
  esac | tr '\0' '\n' | sed -n 's/^depends=//p' | head -1 | tr ',' ' '
}

# dependencies first (post-order), each once
declare -A placed
order=()
place() {
  local m=${1//-/_} d
  [ -n "${placed[$m]:-}" ] && return
  placed[$m]=1
  [ -n "${kofile[$m]:-}" ] || die "$pkg: module $m not found"
  for d in $(modinfo_depends "${kofile[$m]}"); do place "$d"; done
  order+=("$m")
}

# a NIC's driver modules in load order, skipping what the kernel has built in
nic_modules() {
  local m sym state
  order=()
  for m in "$@"; do
    sym=CONFIG_${m^^}
    state=$(sed -n "s/^$sym=//p" "$config")
    case $state in
      y) ;; # built in
      m) place "$m" ;;
      *) die "$pkg: $sym is not set: this kernel cannot drive the lab's NIC" ;;
    esac
  done
  echo "${order[@]}"
}

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,etc,lib/modules,tmp}
cp "$BUSYBOX" "$root/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
# the kernel opens /dev/console for init's stdio before /init can mount devtmpfs
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
# each in its own subshell: placed starts empty
e1000=$(nic_modules e1000)
virtio=$(nic_modules virtio_pci virtio_net)
for m in $e1000 $virtio; do
  f=${kofile[$m]}
  case $f in
    *.xz) "$BUSYBOX" xzcat "$f" >"$root/lib/modules/$m.ko" ;;
    *.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done
echo "$e1000" >"$root/etc/modules-e1000"
echo "$virtio" >"$root/etc/modules-virtio"

# /init: PID 1. bw.ip=<addr/prefix> and bw.nic=e1000|virtio come from the kernel command line.
cat >"$root/init" <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ip= nic=
for arg in $(cat /proc/cmdline); do
  case $arg in
    bw.ip=*) ip=${arg#bw.ip=} ;;
    bw.nic=*) nic=${arg#bw.nic=} ;;
  esac
done
if [ -f "/etc/modules-$nic" ]; then
  for m in $(cat "/etc/modules-$nic"); do insmod "/lib/modules/$m.ko" || echo "bw: insmod $m failed"; done
else
  echo "bw: unknown bw.nic=$nic (e1000 or virtio)"
fi
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do usleep 50000; i=$((i + 1)); done
ip link set lo up
# IPv6 stays on: eth0 gets its link-local address (DAD, MLD reports) like any guest. Router
# solicitations are off: with no router they back off (4, 8, 16 s ... up to an hour), so a guest
# up for a while sends none, while one just booted would send one at a random moment of the test.
echo 0 >/proc/sys/net/ipv6/conf/eth0/router_solicitations
ip link set eth0 up && ip addr add "$ip" dev eth0 && echo "bw: eth0 up, $ip, nic $nic" || echo "bw: eth0 not configured"
ip addr show eth0
while :; do sleep 3600; done
EOF
chmod 755 "$root/init"

# Under TCG, unpacking the xz'd bzImage is a third of the boot: with PVH (an ELF entry point QEMU
# jumps to directly) the same kernel, uncompressed, boots from `kernel` without it.
vmlinuz="$work/pkg/boot/vmlinuz-$kver"
kernel=$vmlinuz
if grep -qx 'CONFIG_PVH=y' "$config" && grep -qx 'CONFIG_KERNEL_XZ=y' "$config" && command -v xz >/dev/null; then
  for pos in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
    # xz stops after its stream (tail may then die of SIGPIPE: only xz's status counts)
    if xz -dc --single-stream <(tail -c +$((pos + 1)) "$vmlinuz") >"$work/vmlinux" 2>/dev/null &&
      [ "$(head -c 4 "$work/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
      kernel=$work/vmlinux
      break
    fi
  done
  [ "$kernel" != "$vmlinuz" ] || say "no xz stream in $vmlinuz: booting the bzImage"
fi

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) | gzip -9n >"$work/initrd.gz"
rm -rf "$out.new"
mkdir -p "$out.new"
mv "$kernel" "$out.new/kernel"
mv "$work/initrd.gz" "$out.new/initrd.gz"
printf 'e1000: %s\nvirtio: %s\nkernel: %s\n' "$e1000" "$virtio" "$([ "$kernel" = "$vmlinuz" ] && echo "bzImage of $pkg" || echo "vmlinux of $pkg (PVH entry)")" >"$out.new/manifest"
echo "$stamp" >"$out.new/stamp"
rm -rf "$out"
mv "$out.new" "$out"
ln -sfn "$kver" "$CACHE/current"
# images of kernels the metapackage no longer points to
for d in "$CACHE"/*/; do d=${d%/}; [ -L "$d" ] || [ "${d##*/}" = "$kver" ] || rm -rf "$d"; done
say "built $out ($(du -sh "$out" | cut -f1)): modules e1000: $e1000; virtio: $virtio"
echo "$out"
