// The lab's real Linux guest: Debian's kernel and a busybox initramfs built by
// scripts/guest-image.sh (run by `scripts/setup.sh --with-qemu`), and how QEMU boots it.
import { existsSync, realpathSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { KernelBoot, QemuNic } from './qemu.js';

/** The image for the kernel `linux-image-amd64` pointed to when it was last built. */
export const GUEST_IMAGE_DIR = '/var/cache/bridgewatch/guest/current';

export type LabNic = 'e1000' | 'virtio';
export const LAB_NICS: readonly LabNic[] = ['e1000', 'virtio'];

/** QEMU's device for each lab NIC. */
export const QEMU_NIC: Record<LabNic, QemuNic> = { e1000: 'e1000', virtio: 'virtio-net-pci' };

export interface GuestImage {
  dir: string;
  kernel: string;
  initrd: string;
  /** e.g. 6.1.0-57-amd64 */
  kernelVersion: string;
}

/** The built image, or why there is none (with the command that builds it). */
export function findGuestImage(dir = GUEST_IMAGE_DIR): GuestImage | string {
  const kernel = join(dir, 'kernel');
  const initrd = join(dir, 'initrd.gz');
  if (!existsSync(kernel) || !existsSync(initrd))
    return `no Linux guest image in ${dir}: build it with scripts/setup.sh --with-qemu (or scripts/guest-image.sh)`;
  return { dir, kernel, initrd, kernelVersion: basename(realpathSync(dir)) };
}

/**
 * Boot arguments: /init reads bw.ip and bw.nic. `quiet` because under TCG every console character
 * costs emulated I/O; warnings and /init's own lines still reach the serial log.
 */
export function guestBoot(image: GuestImage, nic: LabNic, ipCidr: string): KernelBoot {
  return { kernel: image.kernel, initrd: image.initrd, append: `console=ttyS0 quiet panic=-1 bw.ip=${ipCidr} bw.nic=${nic}` };
}
