// RTM_NEWLINK / RTM_DELLINK payload -> the few facts the watcher keeps. The netlink package
// parses the ifinfomsg header; we read only the attributes we need, because its full
// parseLinkAttrs decodes every attribute eagerly (VF lists, stats, XDP) and one odd attribute
// would throw the whole link away.
import { parseAttributes, rt } from 'netlink';
import { attrString, parseBrportState, parseLinkInfo, type LinkInfo, type PortState } from './attrs.js';

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const AF_UNSPEC = 0;
export const AF_BRIDGE = 7;

const IFINFOMSG_LEN = 16;
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

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Decode one link message; null for other message types; throws on malformed bytes. */
export function decodeLinkMessage(type: number, data: Buffer): LinkMsg | null {
  if (type !== RTM_NEWLINK && type !== RTM_DELLINK) return null;
  if (data.length < IFINFOMSG_LEN) throw new Error(`ifinfomsg: ${data.length} bytes, need ${IFINFOMSG_LEN}`);
  const hdr = rt.parseLink(data.subarray(0, IFINFOMSG_LEN));
  const msg: LinkMsg = {
    op: type === RTM_NEWLINK ? 'new' : 'del',
    family: hdr.family ?? 0,
    ifindex: hdr.index ?? 0,
    name: null,
    mac: null,
    master: 0,
    up: Boolean(hdr.flags?.up),
    operUp: Boolean(hdr.flags?.running),
    carrier: null,
    operstate: null,
    info: null,
    protinfoState: null,
  };
  if (msg.ifindex <= 0) throw new Error(`ifinfomsg: ifindex ${msg.ifindex}`);
  parseAttributes(data.subarray(IFINFOMSG_LEN), (a) => {
    switch (a.type) {
      case IFLA_IFNAME:
        msg.name = attrString(a.data);
        break;
      case IFLA_ADDRESS:
        msg.mac = formatMac(a.data);
        break;
      case IFLA_MASTER:
        if (a.data.length >= 4) msg.master = a.data.readUInt32LE(0);
        break;
      case IFLA_OPERSTATE:
        if (a.data.length >= 1) msg.operstate = a.data.readUInt8(0);
        break;
      case IFLA_CARRIER:
        if (a.data.length >= 1) msg.carrier = a.data.readUInt8(0) !== 0;
        break;
      case IFLA_LINKINFO:
        msg.info = parseLinkInfo(a.data);
        break;
      case IFLA_PROTINFO:
        // AF_INET6 uses the same attribute number for something else
        if (msg.family === AF_BRIDGE) msg.protinfoState = parseBrportState(a.data);
        break;
    }
  });
  if (msg.name === null && msg.op === 'new') throw new Error(`link ${msg.ifindex}: no IFLA_IFNAME`);
  return msg;
}
