#!/usr/bin/env bash
# Builds the CO-RE objects: bridgewatch.bpf.o (Linux 6.3+) and bridgewatch-statemap.bpf.o.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../dist/bpf}
mkdir -p "$out"
arch=$(uname -m)
build() { # output, extra flags
  clang -g -O2 -Wall -Werror -target bpf -I/usr/include/"$arch"-linux-gnu -I. "${@:2}" \
    -c bridgewatch.bpf.c -o "$out/$1"
  llvm-strip -g "$out/$1" 2>/dev/null || true # strip DWARF, keep BTF (what libbpf needs)
  echo "built $out/$1"
}
build bridgewatch.bpf.o
# kernels before 6.3 (no bpf_cast_to_kern_ctx): port state from a map kept from rtnetlink
build bridgewatch-statemap.bpf.o -DBW_STATE_FROM_MAP
