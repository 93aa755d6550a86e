// Bridge VLAN configuration at this moment (hotplug scripts often set a port's VLANs just after
// enslaving it, so every announce round asks again). Reads `bridge -j vlan show`.
import { execFile } from 'node:child_process';

export interface PortVlans {
  pvid: number | undefined;
  /** vid -> egress untagged? */
  vids: Map<number, boolean>;
}

export function parseBridgeVlanJson(text: string): Map<string, PortVlans> {
  const out = new Map<string, PortVlans>();
  const data = JSON.parse(text || '[]') as { ifname: string; vlans?: { vlan: number; vlanEnd?: number; flags?: string[] }[] }[];
  for (const port of data) {
    const pv: PortVlans = { pvid: undefined, vids: new Map() };
    for (const v of port.vlans ?? []) {
      const flags = v.flags ?? [];
      for (let vid = v.vlan; vid <= (v.vlanEnd ?? v.vlan); vid++) {
        pv.vids.set(vid, flags.includes('Egress Untagged'));
        if (flags.includes('PVID')) pv.pvid = vid;
      }
    }
    out.set(port.ifname, pv);
  }
  return out;
}

/** Current VLANs of every bridge port in the calling thread's namespace. */
export function readBridgeVlans(): Promise<Map<string, PortVlans>> {
  return new Promise((resolve, reject) => {
    execFile('bridge', ['-j', 'vlan', 'show'], { timeout: 2000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`read bridge vlans: ${(stderr || err.message).trim()}`));
      try {
        resolve(parseBridgeVlanJson(stdout));
      } catch (e) {
        reject(new Error(`read bridge vlans: ${(e as Error).message}`));
      }
    });
  });
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
