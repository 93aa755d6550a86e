#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine (as root): system packages, npm ci, the BPF
# object and the TypeScript build. Every step is skipped when already done.
#   scripts/setup.sh [--with-qemu] [--quiet]
# QEMU and the lab's Linux guest image (scripts/guest-image.sh: Debian's kernel and a busybox
# initramfs, cached in /var/cache/bridgewatch/guest) only for `bridgewatch lab --qemu|--guest linux`
# and the tests (npm test passes --with-qemu).
set -euo pipefail
cd "$(dirname "$0")/.."

# build: clang llvm libbpf-dev make g++ python3; run: libbpf1 libpcap0.8 iproute2;
# lab: curl (reads the daemon's API inside a namespace); tests: tcpdump tshark prometheus
# (promtool) python3-yaml
want=(clang llvm libbpf-dev libbpf1 libpcap0.8 bpftool iproute2 curl tcpdump tshark prometheus python3-yaml make g++ python3)
with_qemu=false
[[ " $* " == *" --with-qemu "* ]] && with_qemu=true
# guest image: busybox-static (its /init and tools), cpio (the initramfs), xz-utils (unpacks the kernel)
# kernel-matrix VM (test/vm/run.sh): kmod for depmod/modprobe of the Debian kernel's modules
$with_qemu && want+=(qemu-system-x86 busybox-static cpio xz-utils kmod)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when the lockfile changed since the last install
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# BPF object, then TypeScript, each only when a source is newer than its output
obj=dist/bpf/bridgewatch.bpf.o
if [ ! -f "$obj" ] || [ -n "$(find bpf -newer "$obj" -type f | head -1)" ]; then
  bash bpf/build.sh >/dev/null
  node scripts/gen-contract.mjs # src/bpf/contract.gen.ts, from the object's BTF (rewritten only if it changed)
fi
stamp=dist/.tsbuild
if [ ! -f "$stamp" ] || [ -n "$(find src bench tsconfig.json package.json -newer "$stamp" -type f 2>/dev/null | head -1)" ]; then
  npx tsc -p tsconfig.json
  touch "$stamp"
fi

# the lab's Linux guest: rebuilt only when missing or when the script changed
if $with_qemu; then
  bash scripts/guest-image.sh >/dev/null
fi
