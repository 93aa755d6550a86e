// Follows the bridges' FDB through rtnetlink neighbour notifications (RTNLGRP_NEIGH, AF_BRIDGE,
// as `bridge monitor fdb`): no per-packet cost, the kernel tells us when an entry appears or
// moves. One dump at start seeds where entries are now. Lifecycle: start() opens in the calling
// thread's namespace, stop() closes.
import { parseAttributes, parseMessage, Protocol, RawNetlinkSocket, type NetlinkMessage } from 'netlink';
import { c } from '../sys/libc.js';
import { NLM_F_DUMP, type RtnlRequester } from '../sys/rtnl-request.js';
import { findNetlinkFd, forceRcvbuf } from './rcvbuf.js';
import { AF_BRIDGE, parseFdbEntry, RTM_GETNEIGH, RTM_NEWNEIGH, type FdbEntry } from './fdb.js';

const RTNLGRP_NEIGH = 3;
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const RCVBUF_BYTES = 4 << 20;

/**
 * Classic BPF for the socket: keep AF_BRIDGE neighbour messages (ndm_family, the byte after
 * the 16-byte nlmsghdr), drop the rest in the kernel. RTNLGRP_NEIGH also carries every ARP and
 * ND entry: 1,000 taps coming up queue thousands of IPv6 ones, which overran the default
 * 208 KiB buffer, and the netlink package turns the overrun's POLLERR into a process abort.
 */
const BRIDGE_ONLY = (() => {
  const b = Buffer.alloc(4 * 8);
  const put = (i: number, code: number, jt: number, jf: number, k: number) => {
    b.writeUInt16LE(code, i * 8);
    b[i * 8 + 2] = jt;
    b[i * 8 + 3] = jf;
    b.writeUInt32LE(k >>> 0, i * 8 + 4);
  };
  put(0, 0x30, 0, 0, 16); // ldb [16]
  put(1, 0x15, 0, 1, AF_BRIDGE); // jeq #AF_BRIDGE, keep, drop
  put(2, 0x06, 0, 0, 0xffffffff); // keep: ret #-1
  put(3, 0x06, 0, 0, 0); // drop: ret #0
  return b;
})();
const NDA_MASTER = 9;

export interface FdbNotice extends FdbEntry {
  /** the bridge the entry belongs to (NDA_MASTER) */
  bridgeIfindex: number;
}

export interface FdbWatchHooks {
  learned(n: FdbNotice): void;
  /** undecodable or overrun: counted by the caller, never fatal */
  bad(cause: string): void;
}

/** A bridge FDB entry from a neighbour message, or null for anything else (ARP/ND, no master). */
export function decodeFdbNotice(msg: NetlinkMessage): FdbNotice | null {
  if (msg.type !== RTM_NEWNEIGH || msg.data.length < 12 || msg.data.readUInt8(0) !== AF_BRIDGE) return null;
  let bridgeIfindex = 0;
  parseAttributes(msg.data.subarray(12), (a) => {
    if (a.type === NDA_MASTER && a.data.length >= 4) bridgeIfindex = a.data.readUInt32LE(0);
  });
  if (!bridgeIfindex) return null; // a port's own (self) entry, not the bridge's
  const e = parseFdbEntry(msg.data);
  return e.ifindex === bridgeIfindex ? null : { ...e, bridgeIfindex }; // the bridge device's own MACs
}

export class FdbWatch {
  private sock: RawNetlinkSocket | null = null;

  constructor(private readonly hooks: FdbWatchHooks) {}

  async start(nl: RtnlRequester): Promise<void> {
    const sock = new RawNetlinkSocket(Protocol.ROUTE);
    sock.on('message', (buf) => this.receive(buf));
    sock.on('error', (err) => this.hooks.bad(`fdb notifications: ${err.message}`));
    // before subscribing: only bridge FDB messages queue, in a buffer sized for bursts (root)
    const fd = findNetlinkFd(sock.address().port);
    if (fd !== null) {
      c.attach_filter(fd, SOL_SOCKET, SO_ATTACH_FILTER, { len: 4, filter: BRIDGE_ONLY }, 16);
      forceRcvbuf(sock.address().port, RCVBUF_BYTES);
    }
    sock.addMembership(RTNLGRP_NEIGH); // before the dump: a move between the two is seen
    sock.unref();
    this.sock = sock;
    const nd = Buffer.alloc(12);
    nd.writeUInt8(AF_BRIDGE, 0);
    for (const m of await nl.request('dump bridge fdb', RTM_GETNEIGH, NLM_F_DUMP, nd)) this.deliver(m);
  }

  stop(): void {
    this.sock?.close();
    this.sock = null;
  }

  private receive(buf: Buffer): void {
    let rest = buf;
    while (rest.length > 0 && this.sock) {
      let msg: NetlinkMessage;
      let consumed: number;
      try {
        ({ x: msg, consumed } = parseMessage(rest));
      } catch (e) {
        return this.hooks.bad(`fdb notification header: ${(e as Error).message}`);
      }
      rest = rest.subarray((consumed + 3) & ~3);
      this.deliver(msg);
    }
  }

  private deliver(msg: NetlinkMessage): void {
    let n: FdbNotice | null;
    try {
      n = decodeFdbNotice(msg);
    } catch (e) {
      return this.hooks.bad(`fdb notification: ${(e as Error).message}`);
    }
    if (n && n.kind !== 'permanent') this.hooks.learned(n);
  }
}
