// Bridge VLAN configuration at this moment (hotplug scripts often set a port's VLANs just after
// enslaving it, so every announce round asks again): one rtnetlink AF_BRIDGE link dump with
// RTEXT_FILTER_BRVLAN, as `bridge vlan show` does, without spawning it. Numbers from
// include/uapi/linux/if_bridge.h and rtnetlink.h.
import { parseAttributes, type NetlinkMessage } from 'netlink';
import { attrString } from '../ports/attrs.js';
import { AF_BRIDGE } from '../ports/fdb.js';
import { NLM_F_DUMP, type RtnlRequester } from '../sys/rtnl-request.js';

const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const IFLA_IFNAME = 3;
const IFLA_AF_SPEC = 26;
const IFLA_EXT_MASK = 29;
const IFLA_BRIDGE_VLAN_INFO = 2;
const RTEXT_FILTER_BRVLAN = 1 << 1;
const VLAN_INFO_PVID = 1 << 1;
const VLAN_INFO_UNTAGGED = 1 << 2;
const VLAN_INFO_RANGE_BEGIN = 1 << 3;
const VLAN_INFO_RANGE_END = 1 << 4;
const IFINFOMSG_LEN = 16;

export interface PortVlans {
  pvid: number | undefined;
  /** vid -> egress untagged? */
  vids: Map<number, boolean>;
}

/** The dump request: every bridge port's VLANs (ifinfomsg AF_BRIDGE, IFLA_EXT_MASK BRVLAN). */
export function vlanDumpRequest(): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN + 8);
  b.writeUInt8(AF_BRIDGE, 0);
  b.writeUInt16LE(8, IFINFOMSG_LEN);
  b.writeUInt16LE(IFLA_EXT_MASK, IFINFOMSG_LEN + 2);
  b.writeUInt32LE(RTEXT_FILTER_BRVLAN, IFINFOMSG_LEN + 4);
  return b;
}

/** One port's name and VLANs from an AF_BRIDGE RTM_NEWLINK; throws on a malformed message. */
export function parsePortVlans(data: Buffer): { name: string; vlans: PortVlans } {
  if (data.length < IFINFOMSG_LEN) throw new Error(`ifinfomsg: ${data.length} bytes`);
  let name = '';
  const vlans: PortVlans = { pvid: undefined, vids: new Map() };
  let rangeStart: number | null = null;
  parseAttributes(data.subarray(IFINFOMSG_LEN), (a) => {
    if (a.type === IFLA_IFNAME) name = attrString(a.data);
    if ((a.type & 0x3fff) !== IFLA_AF_SPEC) return;
    parseAttributes(a.data, (v) => {
      if (v.type !== IFLA_BRIDGE_VLAN_INFO) return;
      if (v.data.length < 4) throw new Error(`IFLA_BRIDGE_VLAN_INFO: ${v.data.length} bytes`);
      const flags = v.data.readUInt16LE(0);
      const vid = v.data.readUInt16LE(2);
      if (flags & VLAN_INFO_RANGE_BEGIN) return void (rangeStart = vid);
      const from = flags & VLAN_INFO_RANGE_END && rangeStart !== null ? rangeStart : vid;
      rangeStart = null;
      for (let id = from; id <= vid; id++) vlans.vids.set(id, (flags & VLAN_INFO_UNTAGGED) !== 0);
      if (flags & VLAN_INFO_PVID) vlans.pvid = vid;
    });
  });
  if (!name) throw new Error('ifinfomsg: no IFLA_IFNAME');
  return { name, vlans };
}

export function parseBridgeVlans(msgs: NetlinkMessage[]): Map<string, PortVlans> {
  const out = new Map<string, PortVlans>();
  for (const m of msgs) {
    if (m.type !== RTM_NEWLINK) continue;
    const { name, vlans } = parsePortVlans(m.data);
    out.set(name, vlans);
  }
  return out;
}

/** Current VLANs of every bridge port in the namespace the socket was opened in. */
export async function readBridgeVlans(nl: RtnlRequester): Promise<Map<string, PortVlans>> {
  const msgs = await nl.request('read bridge vlans', RTM_GETLINK, NLM_F_DUMP, vlanDumpRequest());
  try {
    return parseBridgeVlans(msgs);
  } catch (e) {
    throw new Error(`read bridge vlans: ${(e as Error).message}`);
  }
}

/**
 * How a frame from a guest port with `guestPvid` leaves `uplink`: untagged, tagged with a vid,
 * or not at all (the uplink does not carry that VLAN).
 */
export function uplinkEgress(guestPvid: number | undefined, uplink: PortVlans | undefined): { send: false } | { send: true; vid: number | null } {
  if (guestPvid === undefined || !uplink) return { send: true, vid: null };
  const untagged = uplink.vids.get(guestPvid);
  if (untagged === undefined) return { send: false };
  return { send: true, vid: untagged ? null : guestPvid };
}
