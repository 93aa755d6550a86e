#!/usr/bin/env bash
# Boot Debian's stock kernel under QEMU with this machine's root shared read-only (virtio-9p, a
# tmpfs overlay on top) and run one command inside, in this checkout; exits with its status.
#   test/vm/run.sh [--out DIR] [--timeout SEC] [--accel auto|kvm|tcg] [--mem MB] -- CMD [ARG...]
# DIR receives console.log (also on stdout), status and whatever CMD writes to /vm-out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out='' timeout=900 accel=${BRIDGEWATCH_VM_ACCEL:-auto} mem=3072
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --accel) accel=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
(($#)) || { echo "usage: $0 [--out DIR] [--timeout SEC] [--accel auto|kvm|tcg] -- CMD [ARG...]" >&2; exit 2; }
die() { echo "vm: $*" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (bash scripts/setup.sh --with-qemu installs it)"
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx switch_root || die "a static busybox is needed for the initramfs (apt-get install busybox-static)"
command -v modprobe >/dev/null || die "modprobe not found (apt-get install kmod)"

kdir=$(bash "$repo/scripts/debian-kernel.sh" | tail -1) || die "fetching the Debian kernel failed"
release=$(basename "$kdir")
[ -n "$out" ] || out=$(mktemp -d /tmp/bw-vm.XXXXXX)
mkdir -p "$out"
rm -f "$out/status" "$out/console.log"

# initramfs: busybox, the modules that mounting 9p and the overlay needs, and stage 1
work=$(mktemp -d /tmp/bw-vm-initrd.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/modules" "$work/root/proc" "$work/root/sys" "$work/root/dev"
cp /bin/busybox "$work/root/bin/busybox"
cp "$here/init" "$work/root/init"
chmod 755 "$work/root/init"
: >"$work/root/modules.list"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -d "$kdir" -S "$release" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$work/root/modules/"
  basename "$ko" >>"$work/root/modules.list"
done
(cd "$work/root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initrd.gz"

cp "$here/stage2.sh" "$out/stage2.sh"
{
  printf 'KERNEL_DIR=%q\nRELEASE=%q\nJOB_CWD=%q\nHOST_PATH=%q\nCI=%q\n' "$kdir" "$release" "$PWD" "$PATH" "${CI:-}"
  # variables the job may need (BRIDGEWATCH_*, VITEST_*), as set on the host
  while IFS='=' read -r k v; do printf 'export %s=%q\n' "$k" "$v"; done < <(env | grep -E '^(BRIDGEWATCH_|VITEST_)' || true)
} >"$out/env.sh"
printf '%q ' "$@" >"$out/job.sh"
echo >>"$out/job.sh"

# nested KVM boots on some hosts and hangs or aborts on others: use it only if a boot runs a job
# within 20 s; the answer is kept until this host reboots
kvm_ok() {
  [ -w /dev/kvm ] || return 1
  local cache
  cache=$(dirname "$kdir")/kvm-$(cat /proc/sys/kernel/random/boot_id)
  if [ -f "$cache" ]; then return "$(cat "$cache")"; fi
  local probe
  probe=$(mktemp -d /tmp/bw-vm-kvm.XXXXXX)
  cp "$here/stage2.sh" "$probe/stage2.sh"
  cp "$out/env.sh" "$probe/env.sh"
  echo 'exit 0' >"$probe/job.sh"
  local args
  mapfile -t args < <(qemu_args "$probe")
  timeout 20 qemu-system-x86_64 "${args[@]}" -accel kvm -cpu host </dev/null >"$probe/console.log" 2>&1 || true
  local ok=1
  [ "$(cat "$probe/status" 2>/dev/null)" = 0 ] && ok=0
  rm -rf "$probe"
  echo $ok >"$cache"
  return $ok
}

# one argument per line (paths here have no newlines)
qemu_args() {
  printf '%s\n' -m "$mem" -smp 2 -display none -monitor none -serial stdio -no-reboot -nic none \
    -kernel "$kdir/boot/vmlinuz-$release" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3 mitigations=off" \
    -fsdev "local,id=r,path=/,security_model=none,readonly=on,multidevs=remap" -device virtio-9p-pci,fsdev=r,mount_tag=root \
    -fsdev "local,id=o,path=$1,security_model=none" -device virtio-9p-pci,fsdev=o,mount_tag=out
}
case $accel in
  kvm) accel_args=(-accel kvm -cpu host) ;;
  tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
  auto) if kvm_ok; then accel_args=(-accel kvm -cpu host); else accel_args=(-accel tcg,thread=multi -cpu max); fi ;;
  *) die "--accel: auto, kvm or tcg, not $accel" ;;
esac
echo "vm: kernel $release, ${accel_args[1]}, ${mem} MB, results in $out" >&2

t0=$(date +%s.%N)
mapfile -t args < <(qemu_args "$out")
# timeout bounds the VM whatever happens inside; killing this script's process group ends it too
timeout -k 5 "$timeout" qemu-system-x86_64 "${args[@]}" "${accel_args[@]}" </dev/null 2>&1 | tee "$out/console.log" || true
echo "vm: QEMU ran $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s" >&2
[ -f "$out/status" ] || die "no exit status from the VM (timed out after ${timeout} s, or it crashed): see $out/console.log"
exit "$(cat "$out/status")"
