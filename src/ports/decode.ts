// RTM_NEWLINK / RTM_DELLINK payload -> the few facts the watcher keeps. We read only the
// attributes we need, because the netlink package's parseLinkAttrs decodes every attribute
// eagerly (VF lists, stats, XDP) and one odd attribute would throw the whole link away. This
// runs for every link message on the host (2 per tap created, and every state change), so the
// header and the top-level attributes are read in place: no object or Buffer per attribute.
import { attrString, parseBrportState, parseLinkInfo, type LinkInfo, type PortState } from './attrs.js';

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const AF_UNSPEC = 0;
export const AF_BRIDGE = 7;

const IFINFOMSG_LEN = 16;
const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const NLA_TYPE_MASK = 0x3fff; // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MASTER = 10;
const IFLA_PROTINFO = 12;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_CARRIER = 33;

export interface LinkMsg {
  op: 'new' | 'del';
  /** AF_UNSPEC (the device) or AF_BRIDGE (its bridge-port view) */
  family: number;
  ifindex: number;
  name: string | null;
  /** lowercase aa:bb:.. or null when the device has no L2 address attribute */
  mac: string | null;
  /** IFLA_MASTER, 0 when absent */
  master: number;
  /** IFF_UP: administratively up */
  up: boolean;
  /** IFF_RUNNING: operationally up (RFC 2863 UP or UNKNOWN while admin up) */
  operUp: boolean;
  /** IFLA_CARRIER, null when absent (AF_BRIDGE messages carry none) */
  carrier: boolean | null;
  /** IF_OPER_* */
  operstate: number | null;
  /** IFLA_LINKINFO, null when absent (devices without rtnl_link_ops: physical NICs) */
  info: LinkInfo | null;
  /** AF_BRIDGE IFLA_PROTINFO -> IFLA_BRPORT_STATE */
  protinfoState: PortState | null;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function formatMac(b: Buffer): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += i ? `:${HEX[b[i]]}` : HEX[b[i]];
  return s;
}

/**
 * Each attribute of a stream as (type, payload start, payload end), with the netlink package's
 * parseAttributes rules and errors: a header needs 4 bytes, a length covers its header and fits.
 */
function eachAttr(b: Buffer, fn: (type: number, start: number, end: number) => void): void {
  let off = 0;
  while (off < b.length) {
    if (b.length - off < 4) throw new Error('Not enough data');
    const len = b.readUInt16LE(off);
    if (len < 4 || b.length - off < len) throw new Error(`Invalid attribute length (${len})`);
    fn(b.readUInt16LE(off + 2) & NLA_TYPE_MASK, off + 4, off + len);
    off += (len + 3) & ~3;
  }
}

/** Decode one link message; null for other message types; throws on malformed bytes. */
export function decodeLinkMessage(type: number, data: Buffer): LinkMsg | null {
  if (type !== RTM_NEWLINK && type !== RTM_DELLINK) return null;
  if (data.length < IFINFOMSG_LEN) throw new Error(`ifinfomsg: ${data.length} bytes, need ${IFINFOMSG_LEN}`);
  // struct ifinfomsg: u8 family, u8 pad, u16 type, s32 index, u32 flags, u32 change
  const flags = data.readUInt32LE(8);
  const msg: LinkMsg = {
    op: type === RTM_NEWLINK ? 'new' : 'del',
    family: data.readUInt8(0),
    ifindex: data.readInt32LE(4),
    name: null,
    mac: null,
    master: 0,
    up: (flags & IFF_UP) !== 0,
    operUp: (flags & IFF_RUNNING) !== 0,
    carrier: null,
    operstate: null,
    info: null,
    protinfoState: null,
  };
  if (msg.ifindex <= 0) throw new Error(`ifinfomsg: ifindex ${msg.ifindex}`);
  const attrs = data.subarray(IFINFOMSG_LEN);
  eachAttr(attrs, (t, start, end) => {
    const n = end - start;
    switch (t) {
      case IFLA_IFNAME:
        msg.name = attrString(attrs.subarray(start, end));
        break;
      case IFLA_ADDRESS:
        msg.mac = formatMac(attrs.subarray(start, end));
        break;
      case IFLA_MASTER:
        if (n >= 4) msg.master = attrs.readUInt32LE(start);
        break;
      case IFLA_OPERSTATE:
        if (n >= 1) msg.operstate = attrs.readUInt8(start);
        break;
      case IFLA_CARRIER:
        if (n >= 1) msg.carrier = attrs.readUInt8(start) !== 0;
        break;
      case IFLA_LINKINFO:
        msg.info = parseLinkInfo(attrs.subarray(start, end));
        break;
      case IFLA_PROTINFO:
        // AF_INET6 uses the same attribute number for something else
        if (msg.family === AF_BRIDGE) msg.protinfoState = parseBrportState(attrs.subarray(start, end));
        break;
    }
  });
  if (msg.name === null && msg.op === 'new') throw new Error(`link ${msg.ifindex}: no IFLA_IFNAME`);
  return msg;
}
