// A simulated guest: the few things a VM's network stack does that the lab depends on. It owns
// one MAC and one IPv4 address, answers ARP requests and ICMP echo for that address through a
// tap's fd, asks for a neighbour with a broadcast ARP request (as any guest does: that is how
// every bridge on the segment, the destination host's too, learns its MAC on their uplink), and
// after a migration sends QEMU's RARP burst on QEMU's schedule, each round followed by the
// gratuitous ARP and unsolicited NA a virtio-net guest with VIRTIO_NET_F_GUEST_ANNOUNCE sends
// when QEMU signals it (QEMU does both in every round of its self-announcement).
import { macFromString } from '../bpf/abi.js';
import { rarpFrame } from '../announce/frames.js';
import { ANNOUNCE_DEFAULTS, announceOffsets } from '../announce/schedule.js';
import type { Tap } from '../sys/tun.js';
import { ETH_P_ARP, ETH_P_IP, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, inetChecksum, ipv4Bytes, IPPROTO_ICMP } from './inet.js';

const ARP_REQUEST = 1;
const ARP_REPLY = 2;
const ETH_HLEN = 14;
const ETH_ZLEN = 60;
const POLL_MS = 2;

const pad = (b: Buffer): Buffer => (b.length >= ETH_ZLEN ? b : Buffer.concat([b, Buffer.alloc(ETH_ZLEN - b.length)]));

function ethHeader(dst: Buffer, src: Buffer, type: number): Buffer {
  const h = Buffer.alloc(ETH_HLEN);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return h;
}

/** A broadcast ARP request from `mac`/`ip`: who has `target`? Pure. */
export function arpRequest(mac: Buffer, ip: Buffer, target: Buffer): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0); // ethernet
  body.writeUInt16BE(ETH_P_IP, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(ARP_REQUEST, 6);
  mac.copy(body, 8);
  ip.copy(body, 14);
  target.copy(body, 24); // tha stays zero
  return pad(Buffer.concat([ethHeader(Buffer.alloc(6, 0xff), mac, ETH_P_ARP), body]));
}

/** The ARP reply to `frame` if it asks who has `ip`; else null. Pure. */
export function arpReply(frame: Buffer, mac: Buffer, ip: Buffer): Buffer | null {
  if (frame.length < ETH_HLEN + 28 || frame.readUInt16BE(12) !== ETH_P_ARP) return null;
  const a = frame.subarray(ETH_HLEN);
  if (a.readUInt16BE(0) !== 1 || a.readUInt16BE(2) !== ETH_P_IP || a[4] !== 6 || a[5] !== 4) return null;
  if (a.readUInt16BE(6) !== ARP_REQUEST || !a.subarray(24, 28).equals(ip)) return null;
  const sha = a.subarray(8, 14);
  const spa = a.subarray(14, 18);
  const body = Buffer.alloc(28);
  a.copy(body, 0, 0, 6); // htype, ptype, hlen, plen as asked
  body.writeUInt16BE(ARP_REPLY, 6);
  mac.copy(body, 8);
  ip.copy(body, 14);
  sha.copy(body, 18);
  spa.copy(body, 24);
  return pad(Buffer.concat([ethHeader(sha, mac, ETH_P_ARP), body]));
}

/** The echo reply to `frame` if it is an ICMP echo request to `ip`; else null. Pure. */
export function echoReply(frame: Buffer, mac: Buffer, ip: Buffer): Buffer | null {
  if (frame.length < ETH_HLEN + 20 || frame.readUInt16BE(12) !== ETH_P_IP) return null;
  const pkt = frame.subarray(ETH_HLEN);
  const ihl = (pkt[0] & 0x0f) * 4;
  if (pkt[0] >> 4 !== 4 || ihl < 20 || pkt[9] !== IPPROTO_ICMP || !pkt.subarray(16, 20).equals(ip)) return null;
  if (pkt.readUInt16BE(6) & 0x3fff) return null; // a fragment: ping never sends those here
  const total = pkt.readUInt16BE(2);
  if (total < ihl + 8 || total > pkt.length || pkt[ihl] !== ICMP_ECHO_REQUEST) return null;
  const out = Buffer.from(pkt.subarray(0, total));
  pkt.copy(out, 12, 16, 20); // swap source and destination
  pkt.copy(out, 16, 12, 16);
  out[8] = 64; // ttl
  out.writeUInt16BE(0, 10);
  out.writeUInt16BE(inetChecksum(out.subarray(0, ihl)), 10);
  const icmp = out.subarray(ihl);
  icmp[0] = ICMP_ECHO_REPLY;
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(inetChecksum(icmp), 2);
  return pad(Buffer.concat([ethHeader(frame.subarray(6, 12), mac, ETH_P_IP), out]));
}

/**
 * The gratuitous ARP Linux sends on NETDEV_NOTIFY_PEERS (arp_send(ARPOP_REQUEST, ...) with
 * sender = target = its address, target hardware zero): 42 bytes, unpadded, as written to virtio.
 */
export function gratuitousArp(mac: Buffer, ip: Buffer): Buffer {
  const body = Buffer.alloc(28);
  body.writeUInt16BE(1, 0);
  body.writeUInt16BE(ETH_P_IP, 2);
  body[4] = 6;
  body[5] = 4;
  body.writeUInt16BE(ARP_REQUEST, 6);
  mac.copy(body, 8);
  ip.copy(body, 14);
  ip.copy(body, 24);
  return Buffer.concat([ethHeader(Buffer.alloc(6, 0xff), mac, ETH_P_ARP), body]);
}

/** The IPv6 link-local address of `mac` (modified EUI-64, RFC 4291 appendix A). */
export function linkLocal(mac: Buffer): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0xfe;
  b[1] = 0x80;
  b[8] = mac[0] ^ 0x02;
  mac.copy(b, 9, 1, 3);
  b[11] = 0xff;
  b[12] = 0xfe;
  mac.copy(b, 13, 3, 6);
  return b;
}

const ETH_P_IPV6 = 0x86dd;
const ALL_NODES = Buffer.from('ff020000000000000000000000000001', 'hex');

/**
 * Linux's unsolicited NA (ndisc_send_unsol_na): from `ip` to ff02::1, hop limit 255, override
 * set, target `ip`, a target link-layer address option with `mac`: 86 bytes.
 */
export function unsolicitedNa(mac: Buffer, ip: Buffer): Buffer {
  const icmp = Buffer.alloc(32);
  icmp[0] = 136;
  icmp[4] = 0x20; // override
  ip.copy(icmp, 8);
  icmp[24] = 2; // target link-layer address
  icmp[25] = 1;
  mac.copy(icmp, 26);
  const pseudo = Buffer.alloc(40);
  ip.copy(pseudo, 0);
  ALL_NODES.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo[39] = 58;
  icmp.writeUInt16BE(inetChecksum(Buffer.concat([pseudo, icmp])), 2);
  const ip6 = Buffer.alloc(40);
  ip6.writeUInt32BE(0x60000000, 0);
  ip6.writeUInt16BE(icmp.length, 4);
  ip6[6] = 58;
  ip6[7] = 255;
  ip.copy(ip6, 8);
  ALL_NODES.copy(ip6, 24);
  return Buffer.concat([ethHeader(Buffer.from('333300000001', 'hex'), mac, ETH_P_IPV6), ip6, icmp]);
}

export interface GuestStats {
  arpReplies: number;
  arpRequests: number;
  echoReplies: number;
  rarpSent: number;
  /** the guest's own announcements after a migration (virtio GUEST_ANNOUNCE) */
  garpSent: number;
  naSent: number;
  /** writes the kernel refused (a down or deleted tap) */
  writeErrors: number;
}

export class SimGuest {
  readonly mac: Buffer;
  readonly ip: Buffer;
  /** its IPv6 link-local address, announced by NA */
  readonly ip6: Buffer;
  readonly stats: GuestStats = { arpReplies: 0, arpRequests: 0, echoReplies: 0, rarpSent: 0, garpSent: 0, naSent: 0, writeErrors: 0 };
  private tap: Tap | null = null;
  private poller: NodeJS.Timeout | undefined;
  private readonly burst = new Set<NodeJS.Timeout>();

  constructor(mac: string, ip: string) {
    this.mac = macFromString(mac);
    this.ip = ipv4Bytes(ip);
    this.ip6 = linkLocal(this.mac);
  }

  /** Run on `tap` (the guest's NIC is its fd): answer what arrives, every few ms. */
  attach(tap: Tap): void {
    this.detach();
    this.tap = tap;
    this.poller = setInterval(() => this.poll(), POLL_MS);
  }

  /** Stop using the tap (the VM is paused for the switchover); the caller closes it. */
  detach(): void {
    clearInterval(this.poller);
    this.poller = undefined;
    for (const t of this.burst) clearTimeout(t);
    this.burst.clear();
    this.tap = null;
  }

  /** Ask who has `target` (broadcast, flooded to every bridge on the segment); false if refused. */
  resolve(target: string): boolean {
    const ok = this.send(arpRequest(this.mac, this.ip, ipv4Bytes(target)));
    if (ok) this.stats.arpRequests++;
    return ok;
  }

  /**
   * QEMU's post-migration RARP burst (net/announce.c): rounds at 0, 50, 200, 450, 800 ms; in each,
   * QEMU also signals a virtio-net guest with GUEST_ANNOUNCE (virtio_net_announce), which sends a
   * gratuitous ARP and an unsolicited NA for its addresses.
   */
  announce(): void {
    const frame = rarpFrame(this.mac);
    const garp = gratuitousArp(this.mac, this.ip);
    const na = unsolicitedNa(this.mac, this.ip6);
    for (const at of announceOffsets(ANNOUNCE_DEFAULTS)) {
      const t = setTimeout(() => {
        this.burst.delete(t);
        if (this.send(frame)) this.stats.rarpSent++;
        if (this.send(garp)) this.stats.garpSent++;
        if (this.send(na)) this.stats.naSent++;
      }, at);
      this.burst.add(t);
    }
  }

  private poll(): void {
    for (let i = 0; i < 64 && this.tap; i++) {
      let frame: Buffer | null;
      try {
        frame = this.tap.read();
      } catch {
        return; // tap gone under us: the next migration step attaches a new one
      }
      if (!frame) return;
      const arp = arpReply(frame, this.mac, this.ip);
      if (arp && this.send(arp)) this.stats.arpReplies++;
      const echo = arp ? null : echoReply(frame, this.mac, this.ip);
      if (echo && this.send(echo)) this.stats.echoReplies++;
    }
  }

  // a guest NIC does not crash on a refused transmit; QEMU ignores it too
  private send(frame: Buffer): boolean {
    if (!this.tap) return false;
    try {
      this.tap.write(frame);
      return true;
    } catch {
      this.stats.writeErrors++;
      return false;
    }
  }
}
