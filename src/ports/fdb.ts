// A bridge's forwarding database over rtnetlink (AF_BRIDGE neighbours, as `bridge fdb`): where
// the bridge delivers a MAC, and moving a learned entry to another port. Encoders and the
// decoder are pure; numbers from include/uapi/linux/neighbour.h.
import { parseAttributes, type NetlinkMessage } from 'netlink';
import { macFromString } from '../bpf/abi.js';
import { ERRNO } from '../sys/errno.js';
import { NetlinkRequestError, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, type RtnlRequester } from '../sys/rtnl-request.js';

export const AF_BRIDGE = 7;
export const RTM_NEWNEIGH = 28;
export const RTM_GETNEIGH = 30;
const NDA_LLADDR = 2;
const NDA_VLAN = 5;
const NDA_MASTER = 9;
const NUD_REACHABLE = 0x02;
const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
const NTF_MASTER = 0x04;
const NTF_EXT_LEARNED = 0x10;
const NTF_STICKY = 0x40;
const NDMSG_LEN = 12;

/** dynamic: learned from traffic (or added as dynamic), ages out; the others are someone's decision */
export type FdbKind = 'dynamic' | 'static' | 'permanent' | 'extern_learn' | 'sticky';
export const PROTECTED_FDB_KINDS = ['static', 'permanent', 'extern_learn', 'sticky'] as const;

export interface FdbEntry {
  /** the port the bridge delivers this MAC to */
  ifindex: number;
  mac: string;
  /** 0: no VLAN (a bridge without vlan_filtering) */
  vlan: number;
  kind: FdbKind;
}

function attr(type: number, data: Buffer): Buffer {
  const out = Buffer.alloc((4 + data.length + 3) & ~3);
  out.writeUInt16LE(4 + data.length, 0);
  out.writeUInt16LE(type, 2);
  data.copy(out, 4);
  return out;
}
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};

function ndmsg(ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(AF_BRIDGE, 0);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b.writeUInt8(flags, 10);
  return b;
}

/** RTM_GETNEIGH (not a dump) for one MAC of one bridge: `bridge fdb get MAC br BR [vlan V]`. */
export function fdbGetRequest(bridgeIfindex: number, mac: string, vlan: number): Buffer {
  const parts = [ndmsg(0, 0, 0), attr(NDA_LLADDR, macFromString(mac)), attr(NDA_MASTER, u32(bridgeIfindex))];
  if (vlan) parts.push(attr(NDA_VLAN, u16(vlan)));
  return Buffer.concat(parts);
}

/**
 * RTM_NEWNEIGH (create or replace) of a dynamic entry on `portIfindex`, through the bridge
 * (NTF_MASTER): `bridge fdb replace MAC dev PORT master dynamic [vlan V]`. The kernel keeps it as
 * a learned entry: it ages, and moves when the MAC is learned elsewhere.
 */
export function fdbMoveRequest(portIfindex: number, mac: string, vlan: number): Buffer {
  const parts = [ndmsg(portIfindex, NUD_REACHABLE, NTF_MASTER), attr(NDA_LLADDR, macFromString(mac))];
  if (vlan) parts.push(attr(NDA_VLAN, u16(vlan)));
  return Buffer.concat(parts);
}

export function fdbKind(state: number, flags: number): FdbKind {
  if (flags & NTF_EXT_LEARNED) return 'extern_learn';
  if (state & NUD_PERMANENT) return 'permanent';
  if (state & NUD_NOARP) return 'static';
  if (flags & NTF_STICKY) return 'sticky';
  return 'dynamic';
}

/** Decode one AF_BRIDGE neighbour message; throws on a malformed one. */
export function parseFdbEntry(data: Buffer): FdbEntry {
  if (data.length < NDMSG_LEN) throw new Error(`ndmsg: ${data.length} bytes`);
  if (data.readUInt8(0) !== AF_BRIDGE) throw new Error(`ndmsg: family ${data.readUInt8(0)}, not AF_BRIDGE`);
  const ifindex = data.readInt32LE(4);
  const state = data.readUInt16LE(8);
  const flags = data.readUInt8(10);
  let mac = '';
  let vlan = 0;
  parseAttributes(data.subarray(NDMSG_LEN), (a) => {
    if (a.type === NDA_LLADDR && a.data.length === 6) mac = [...a.data].map((x) => x.toString(16).padStart(2, '0')).join(':');
    else if (a.type === NDA_VLAN && a.data.length >= 2) vlan = a.data.readUInt16LE(0);
  });
  if (!mac) throw new Error('ndmsg: no NDA_LLADDR');
  return { ifindex, mac, vlan, kind: fdbKind(state, flags) };
}

export class BridgeFdb {
  constructor(private readonly nl: RtnlRequester) {}

  /** Where `bridge` delivers `mac` in `vlan`; null when it has no entry (it floods). */
  async get(bridgeIfindex: number, mac: string, vlan: number): Promise<FdbEntry | null> {
    let replies: NetlinkMessage[];
    try {
      replies = await this.nl.request(`get fdb ${mac} on bridge ${bridgeIfindex}`, RTM_GETNEIGH, 0, fdbGetRequest(bridgeIfindex, mac, vlan));
    } catch (e) {
      if (e instanceof NetlinkRequestError && e.errno === ERRNO.ENOENT) return null;
      throw e;
    }
    const r = replies.find((m) => m.type === RTM_NEWNEIGH);
    return r ? parseFdbEntry(r.data) : null;
  }

  /** Replace the entry for `mac` with a dynamic one on `portIfindex`. */
  async moveTo(portIfindex: number, mac: string, vlan: number): Promise<void> {
    await this.nl.request(`move fdb ${mac} to port ${portIfindex}`, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, fdbMoveRequest(portIfindex, mac, vlan));
  }
}
