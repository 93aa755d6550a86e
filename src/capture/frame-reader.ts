// One libpcap record turned back into what the TC hook sees: the kernel takes a frame's outer
// VLAN tag into skb metadata before TC and packet taps run, and libpcap puts it back into the
// bytes; we take it out again, so the classifier sees the same bytes and length as in eBPF mode.
import { c } from '../sys/libc.js';
import { isVlanTpid } from './classify.js';
import type { WallToMono } from './clock.js';
import { PKTHDR_SIZE } from './libpcap.js';

export interface TcView {
  /** valid until the next read */
  data: Uint8Array;
  /** VLAN id in skb metadata, 0 = none */
  vlan: number;
  /** frame length as TC sees it */
  len: number;
  /** CLOCK_MONOTONIC ns */
  tsNs: bigint;
}

export class FrameReader {
  private readonly hdr = Buffer.alloc(PKTHDR_SIZE);
  private readonly frame: Buffer;

  constructor(
    snaplen: number,
    private readonly clock: WallToMono,
  ) {
    this.frame = Buffer.alloc(snaplen + 4); // + the tag libpcap puts back
  }

  /** Read the record at (hdr, bytes); `nano`: the stamp's fraction is ns, else µs. */
  read(hdr: unknown, bytes: unknown, nano: boolean): TcView {
    // two memcpy calls into buffers we own: a fresh koffi.view per frame costs ~3x as much
    const h = this.hdr;
    const data = this.frame;
    c.memcpy(h, hdr, PKTHDR_SIZE);
    let caplen = Math.min(h.readUInt32LE(16), data.length);
    c.memcpy(data, bytes, caplen);
    let len = h.readUInt32LE(20);
    const frac = h.readBigInt64LE(8);
    const tsNs = this.clock.mono(h.readBigInt64LE(0), nano ? frac : frac * 1000n);
    let vlan = 0;
    if (caplen >= 16 && isVlanTpid((data[12] << 8) | data[13])) {
      vlan = ((data[14] << 8) | data[15]) & 0x0fff;
      data.copyWithin(12, 16, caplen);
      caplen -= 4;
      len -= 4;
    }
    return { data: data.subarray(0, caplen), vlan, len, tsNs };
  }
}
