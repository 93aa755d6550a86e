// A guest simulator: holds a tap's /dev/net/tun fd (so the tap has carrier, as under QEMU) and
// writes frames into it, which the host receives on the tap's ingress like a guest transmit.
import { Tap } from '../../src/sys/tun.js';
import { qemuRarp } from './frames.js';
import type { TestNetns } from './netns.js';

export class Guest {
  readonly tap: Tap;
  readonly ifindex: number;

  constructor(
    readonly ns: TestNetns,
    readonly tapName: string,
    readonly mac: Buffer,
    opts: { mtu?: number } = {},
  ) {
    this.tap = ns.run(() => new Tap(tapName));
    try {
      if (opts.mtu) ns.ip('link', 'set', tapName, 'mtu', String(opts.mtu));
      ns.ip('link', 'set', tapName, 'up');
      this.ifindex = ns.ifindex(tapName);
    } catch (e) {
      this.tap.close();
      throw e;
    }
  }

  send(...frames: Buffer[]): void {
    for (const f of frames) this.tap.write(f);
  }

  /** QEMU's post-migration RARP, n times. */
  announce(n = 1): void {
    for (let i = 0; i < n; i++) this.tap.write(qemuRarp(this.mac));
  }

  /** Closing the fd deletes the (non-persistent) tap. */
  close(): void {
    this.tap.close();
  }
}
