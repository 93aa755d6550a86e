#!/usr/bin/env bash
# Fetch Debian's stock kernel (what hypervisors run) without installing it on this host:
# `apt-get download` the image package, `dpkg-deb -x` it, `depmod -b` its modules.
#   scripts/debian-kernel.sh [PACKAGE]     PACKAGE defaults to what linux-image-amd64 depends on
# Prints the directory, /var/cache/bridgewatch/kernel/<release>/, holding boot/vmlinuz-<release>
# and lib/modules/<release>/. Idempotent: a complete directory is reused as it is.
set -euo pipefail

root=${BRIDGEWATCH_KERNEL_CACHE:-/var/cache/bridgewatch/kernel}
die() { echo "debian-kernel: $*" >&2; exit 1; }
for t in apt-get apt-cache dpkg-deb depmod; do command -v "$t" >/dev/null || die "$t not found (Debian's apt, dpkg and kmod are needed)"; done

pkg=${1:-}
if [ -z "$pkg" ]; then
  dep() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1; }
  pkg=$(dep)
  # a fresh machine has no package lists yet
  if [ -z "$pkg" ]; then apt-get update -qq >&2 || die "apt-get update failed"; pkg=$(dep); fi
  [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends linux-image-amd64)"
fi
release=${pkg#linux-image-}
release=${release%-unsigned}
dir=$root/$release
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi

mkdir -p "$root"
tmp=$(mktemp -d "$root/.fetch-$release.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "debian-kernel: downloading $pkg" >&2
(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >&2) || die "apt-get download $pkg failed (network or apt lists: try apt-get update)"
deb=$(ls "$tmp"/*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x $deb failed"
[ -f "$tmp/x/boot/vmlinuz-$release" ] || die "$pkg has no boot/vmlinuz-$release"
[ -d "$tmp/x/lib/modules/$release" ] || die "$pkg has no lib/modules/$release"
depmod -b "$tmp/x" "$release" || die "depmod -b for $release failed"
dpkg-deb -f "$deb" Package Version > "$tmp/x/.package"
touch "$tmp/x/.complete"
rm -rf "$dir" # an earlier, incomplete attempt
mv "$tmp/x" "$dir"
echo "$dir"
