// Frame builders for kernel tests: the announcements guests send, byte for byte, plus the
// malformed and tagged variants the classifier must survive.
import { macFromString } from '../../src/bpf/abi.js';

export const mac = macFromString;
export const BROADCAST = mac('ff:ff:ff:ff:ff:ff');
const ZERO_MAC = Buffer.alloc(6);

export function ether(dst: Buffer, src: Buffer, type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

/** Pad to the 60-byte Ethernet minimum (without FCS), as a NIC would. */
export const pad60 = (b: Buffer): Buffer => (b.length >= 60 ? b : Buffer.concat([b, Buffer.alloc(60 - b.length)]));

const ipv4 = (s: string): Buffer => Buffer.from(s.split('.').map(Number));

export function ipv6(s: string): Buffer {
  const [head, tail = ''] = s.split('::');
  const groups = (p: string) => (p ? p.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = s.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill(0), ...t] : h;
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
  return b;
}

// ARP body for Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4
function arpBody(op: number, sha: Buffer, spa: Buffer, tha: Buffer, tpa: Buffer): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0);
  b.writeUInt16BE(0x0800, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(op, 6);
  sha.copy(b, 8);
  spa.copy(b, 14);
  tha.copy(b, 18);
  tpa.copy(b, 24);
  return b;
}

/** QEMU's announce frame (net/announce.c): 60 bytes, op 3, sha = tha = guest MAC, IPs zero. */
export const qemuRarp = (src: Buffer): Buffer =>
  pad60(ether(BROADCAST, src, 0x8035, arpBody(3, src, ipv4('0.0.0.0'), src, ipv4('0.0.0.0'))));

/** The same frame with ethertype 0x0835, as pre-2009 QEMU / old qemu-kvm sent it. */
export function legacyRarp(src: Buffer): Buffer {
  const f = qemuRarp(src);
  f.writeUInt16BE(0x0835, 12);
  return f;
}

/** ARP request (op 1) or reply (op 2); gratuitous when spa === tpa. */
export function arp(src: Buffer, op: 1 | 2, spa: string, tpa: string): Buffer {
  const tha = op === 1 ? ZERO_MAC : BROADCAST;
  return pad60(ether(BROADCAST, src, 0x0806, arpBody(op, src, ipv4(spa), tha, ipv4(tpa))));
}

// ICMPv6 checksum over the IPv6 pseudo-header (RFC 8200 section 8.1)
function icmp6Checksum(srcIp: Buffer, dstIp: Buffer, body: Buffer): number {
  const pseudo = Buffer.alloc(40);
  srcIp.copy(pseudo, 0);
  dstIp.copy(pseudo, 16);
  pseudo.writeUInt32BE(body.length, 32);
  pseudo[39] = 58;
  const all = Buffer.concat([pseudo, body, Buffer.alloc(body.length % 2)]);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) sum += all.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** ICMPv6 neighbour advertisement (136) or solicitation (135) with a link-layer address option. */
export function neighbour(src: Buffer, target: string, o: { dst?: string; type?: 135 | 136 } = {}): Buffer {
  const dstIp = ipv6(o.dst ?? 'ff02::1');
  const srcIp = ipv6(target);
  const icmp = Buffer.alloc(32);
  icmp[0] = o.type ?? 136;
  icmp[4] = (o.type ?? 136) === 136 ? 0x20 : 0; // override, not solicited
  srcIp.copy(icmp, 8);
  icmp[24] = (o.type ?? 136) === 136 ? 2 : 1; // target / source link-layer address option
  icmp[25] = 1;
  src.copy(icmp, 26);
  icmp.writeUInt16BE(icmp6Checksum(srcIp, dstIp, icmp), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6[6] = 58;
  ip6[7] = 255;
  srcIp.copy(ip6, 8);
  dstIp.copy(ip6, 24);
  const dstMac = dstIp[0] === 0xff ? Buffer.from([0x33, 0x33, ...dstIp.subarray(12)]) : BROADCAST;
  return ether(dstMac, src, 0x86dd, Buffer.concat([ip6, icmp]));
}

/** An ordinary IPv4 frame (never an announcement), padded to `len`. */
export const ipv4Frame = (src: Buffer, len = 60): Buffer => {
  const f = ether(BROADCAST, src, 0x0800, Buffer.alloc(Math.max(0, len - 14)));
  f[14] = 0x45;
  return f;
};

/** Insert VLAN tags after the MAC addresses, outermost first (e.g. 0x88a8 then 0x8100). */
export function tagged(frame: Buffer, ...tags: { tpid: number; vid: number }[]): Buffer {
  const tagBytes = tags.map(({ tpid, vid }) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(tpid, 0);
    t.writeUInt16BE(vid, 2);
    return t;
  });
  return Buffer.concat([frame.subarray(0, 12), ...tagBytes, frame.subarray(12)]);
}
