// Pure decoders for the nested link attributes the netlink package leaves as raw buffers:
// IFLA_LINKINFO (kind, bridge IFLA_INFO_DATA, bridge-port IFLA_INFO_SLAVE_DATA) and the
// AF_BRIDGE IFLA_PROTINFO nest. Numbers from include/uapi/linux/if_link.h.
import { BR_STATES } from '../bpf/abi.js';
import { parseAttributes, type NetlinkAttribute } from 'netlink';

export type PortState = (typeof BR_STATES)[number];
/** BR_STATE_* in kernel order: the index is the wire value */
export const PORT_STATES: readonly PortState[] = BR_STATES;

const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const IFLA_BR_FORWARD_DELAY = 1;
const IFLA_BR_STP_STATE = 5;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_BRPORT_STATE = 1;

export interface BridgeAttrs {
  /** 0 off, 1 kernel STP, 2 user-space STP */
  stpState: number;
  /** USER_HZ ticks, i.e. centiseconds */
  forwardDelayCs: number;
  vlanFiltering: boolean;
}

export interface LinkInfo {
  /** IFLA_INFO_KIND: 'bridge', 'tun', 'veth', ... */
  kind: string;
  /** IFLA_INFO_SLAVE_KIND: 'bridge' for a bridge port */
  slaveKind: string;
  /** present when kind is 'bridge' and the kernel sent IFLA_INFO_DATA */
  bridge: BridgeAttrs | null;
  /** IFLA_BRPORT_STATE from the bridge-port slave data */
  portState: PortState | null;
}

export function portStateName(value: number): PortState | null {
  return PORT_STATES[value] ?? null;
}

/** NUL-terminated attribute string; tolerant of a missing terminator. */
export function attrString(data: Buffer): string {
  const end = data.indexOf(0);
  return data.toString('utf8', 0, end < 0 ? data.length : end);
}

function u8(a: NetlinkAttribute, what: string): number {
  if (a.data.length < 1) throw new Error(`${what}: ${a.data.length} bytes`);
  return a.data.readUInt8(0);
}

function u32(a: NetlinkAttribute, what: string): number {
  if (a.data.length < 4) throw new Error(`${what}: ${a.data.length} bytes`);
  return a.data.readUInt32LE(0);
}

/** IFLA_BRPORT_STATE out of a bridge-port nest (IFLA_PROTINFO or IFLA_INFO_SLAVE_DATA). */
export function parseBrportState(nest: Buffer): PortState | null {
  let state: PortState | null = null;
  parseAttributes(nest, (a) => {
    if (a.type === IFLA_BRPORT_STATE) state = portStateName(u8(a, 'IFLA_BRPORT_STATE'));
  });
  return state;
}

export function parseBridgeData(nest: Buffer): BridgeAttrs {
  const br: BridgeAttrs = { stpState: 0, forwardDelayCs: 0, vlanFiltering: false };
  parseAttributes(nest, (a) => {
    if (a.type === IFLA_BR_STP_STATE) br.stpState = u32(a, 'IFLA_BR_STP_STATE');
    else if (a.type === IFLA_BR_FORWARD_DELAY) br.forwardDelayCs = u32(a, 'IFLA_BR_FORWARD_DELAY');
    else if (a.type === IFLA_BR_VLAN_FILTERING) br.vlanFiltering = u8(a, 'IFLA_BR_VLAN_FILTERING') !== 0;
  });
  return br;
}

/** Decode IFLA_LINKINFO; throws on malformed attributes (the caller counts a bad message). */
export function parseLinkInfo(nest: Buffer): LinkInfo {
  const info: LinkInfo = { kind: '', slaveKind: '', bridge: null, portState: null };
  let data: Buffer | null = null;
  let slaveData: Buffer | null = null;
  parseAttributes(nest, (a) => {
    if (a.type === IFLA_INFO_KIND) info.kind = attrString(a.data);
    else if (a.type === IFLA_INFO_DATA) data = a.data;
    else if (a.type === IFLA_INFO_SLAVE_KIND) info.slaveKind = attrString(a.data);
    else if (a.type === IFLA_INFO_SLAVE_DATA) slaveData = a.data;
  });
  // INFO_DATA and SLAVE_DATA mean different things per kind: read them once the kinds are known
  if (data && info.kind === 'bridge') info.bridge = parseBridgeData(data);
  if (slaveData && info.slaveKind === 'bridge') info.portState = parseBrportState(slaveData);
  return info;
}
