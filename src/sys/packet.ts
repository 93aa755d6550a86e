// A send-only raw AF_PACKET socket: puts a complete Ethernet frame on one interface's egress.
//
// Why not `cap` (libpcap) for sending: a pcap handle is opened per device by name and is a
// capture first — it binds ETH_P_ALL, so the kernel copies every frame on that device into our
// socket buffer while the handle is open, and it breaks when the device is renamed.
// pcap_sendpacket() is itself a send() on an AF_PACKET socket. One socket with protocol 0 is never
// bound to any ethertype, so it receives nothing (no per-packet cost on busy uplinks), serves
// every interface of its namespace, and is addressed per send by ifindex, which survives renames.
import { BridgewatchError, errnoError } from '../errors.js';
import { c, errno, strerror } from './libc.js';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SIOCGIFNAME = 0x8910;
const SOCKADDR_LL_LEN = 20;

/**
 * struct sockaddr_ll (linux/if_packet.h), 20 bytes:
 *   u16 sll_family, be16 sll_protocol, s32 sll_ifindex, u16 sll_hatype, u8 sll_pkttype,
 *   u8 sll_halen, u8 sll_addr[8]
 * For a SOCK_RAW send the frame carries its own header; the kernel uses sll_ifindex to pick the
 * device and sll_protocol as skb->protocol (the frame's outer ethertype, e.g. 0x8100 if tagged).
 */
export function sockaddrLl(ifindex: number, protocol: number, dst: Buffer): Buffer {
  const a = Buffer.alloc(SOCKADDR_LL_LEN);
  a.writeUInt16LE(AF_PACKET, 0);
  a.writeUInt16BE(protocol, 2);
  a.writeInt32LE(ifindex, 4);
  a.writeUInt8(6, 11);
  dst.copy(a, 12, 0, 6);
  return a;
}

export class PacketSocket {
  private fd: number;

  /** Opens the socket in the calling thread's network namespace, where it stays. */
  constructor() {
    // protocol 0: send-only, never receives. Non-blocking: a full device queue is an error
    // (EAGAIN/ENOBUFS) for the caller to count, never a stalled event loop.
    const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
    if (fd < 0) {
      const e = errno();
      throw errnoError('open packet socket', e, strerror);
    }
    this.fd = fd;
  }

  /** Send one whole Ethernet frame (header included, no FCS) out of interface `ifindex`. */
  send(ifindex: number, frame: Buffer): void {
    if (this.fd < 0) throw new BridgewatchError('ESTATE', `send frame on ifindex ${ifindex}: packet socket is closed`);
    if (frame.length < 14) throw new BridgewatchError('ECONFIG', `send frame on ifindex ${ifindex}: ${frame.length} bytes is shorter than an Ethernet header`);
    const addr = sockaddrLl(ifindex, frame.readUInt16BE(12), frame.subarray(0, 6));
    const n = c.sendto(this.fd, frame, frame.length, 0, addr, addr.length) as number;
    if (n < 0) {
      const e = errno();
      throw errnoError(`send frame on ${this.ifname(ifindex)}`, e, strerror);
    }
    if (n !== frame.length) throw new BridgewatchError('EKERNEL', `send frame on ${this.ifname(ifindex)}: sent ${n} of ${frame.length} bytes`);
  }

  /** The interface's name in this socket's namespace (for messages), or `ifindex N`. */
  ifname(ifindex: number): string {
    const ifr = Buffer.alloc(40);
    ifr.writeInt32LE(ifindex, 16);
    if (this.fd < 0 || (c.ioctl(this.fd, SIOCGIFNAME, ifr) as number) < 0) return `ifindex ${ifindex}`;
    const end = ifr.indexOf(0);
    return ifr.toString('latin1', 0, end >= 0 && end < 16 ? end : 16);
  }

  close(): void {
    if (this.fd >= 0) c.close(this.fd);
    this.fd = -1;
  }
}
