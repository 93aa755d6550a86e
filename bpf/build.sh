#!/usr/bin/env bash
# Builds bpf/bridgewatch.bpf.o (CO-RE, runs on any kernel with BTF).
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-../dist/bpf}
mkdir -p "$out"
arch=$(uname -m)
clang -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
  -I/usr/include/"$arch"-linux-gnu -I. \
  -c bridgewatch.bpf.c -o "$out/bridgewatch.bpf.o"
# strip DWARF, keep BTF (what libbpf needs)
llvm-strip -g "$out/bridgewatch.bpf.o" 2>/dev/null || true
echo "built $out/bridgewatch.bpf.o"
