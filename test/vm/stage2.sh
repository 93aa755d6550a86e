#!/bin/bash
# Stage 2, on the host's root (read-only, tmpfs overlay): a hypervisor-like system, then the job
# the host wrote into /vm-out/job.sh; its exit status goes to /vm-out/status, then power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
off() {
  sync
  echo o >/proc/sysrq-trigger
  sleep 30
}
trap off EXIT
mount -t proc proc /proc
echo "bw-vm: stage 2 at $(cut -d" " -f1 /proc/uptime) s"
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
# shellcheck source=/dev/null
. /vm-out/env.sh # KERNEL_DIR, RELEASE, JOB_CWD, HOST_PATH
# a checkout under /tmp or /run (a CI clone) would vanish under the tmpfs mounts: keep it
case $JOB_CWD in
  /tmp/* | /run/*) mkdir -p /mnt/bw-job && mount --bind "$JOB_CWD" /mnt/bw-job && keep=1 ;;
esac
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
if [ -n "${keep:-}" ]; then mkdir -p "$JOB_CWD" && mount --bind /mnt/bw-job "$JOB_CWD"; fi
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# the kernel's own module autoload (e.g. tc asking for sch_ingress) looks in /lib/modules
mkdir -p "/lib/modules/$RELEASE"
mount --bind "$KERNEL_DIR/lib/modules/$RELEASE" "/lib/modules/$RELEASE"
# explicit, so a missing module is named here rather than in a test (tun makes /dev/net/tun)
modprobe -a bridge 8021q tun veth macvlan macvtap sch_ingress cls_bpf || echo "bw-vm: modprobe failed"
ip link set lo up
hostname bw-vm
echo "bw-vm: up in $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r), $(nproc) cpus"
# the console is a tty: through a pipe, test runners print plain lines, not a live display
export PATH=$HOST_PATH HOME=/root CI=${CI:-} TERM=dumb NO_COLOR=1
cd "$JOB_CWD" || exit 1
start=$(cut -d' ' -f1 /proc/uptime)
bash /vm-out/job.sh 2>&1 | tee /vm-out/job.log
rc=${PIPESTATUS[0]}
echo "bw-vm: job exit $rc after $(awk -v s="$start" '{print $1 - s}' /proc/uptime) s"
echo "$rc" >/vm-out/status
