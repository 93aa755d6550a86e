// Bridge port VLANs read over rtnetlink (the announcer's per-round read), against the kernel and
// against iproute2's `bridge -j vlan show` of the same bridge as the independent witness.
import { afterAll, describe, expect, it } from 'vitest';
import { readBridgeVlans, type PortVlans } from '../../src/announce/vlans.js';
import { RtnlRequester } from '../../src/sys/rtnl-request.js';
import { missing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns } from '../helpers/netns.js';
import { vlanFilteringSupported } from '../helpers/watch-env.js';

const socks: RtnlRequester[] = [];
const opened = (ns: TestNetns): RtnlRequester =>
  ns.run(() => {
    const r = new RtnlRequester();
    r.open();
    socks.push(r);
    return r;
  });

afterAll(() => {
  for (const s of socks) s.close();
  cleanupAll();
});

/** iproute2's view, in the same shape */
function iproute2(ns: TestNetns): Map<string, PortVlans> {
  const rows = JSON.parse(ns.tool('bridge', '-j', 'vlan', 'show') || '[]') as { ifname: string; vlans?: { vlan: number; vlanEnd?: number; flags?: string[] }[] }[];
  return new Map(
    rows.map((r) => {
      const pv: PortVlans = { pvid: undefined, vids: new Map() };
      for (const v of r.vlans ?? [])
        for (let id = v.vlan; id <= (v.vlanEnd ?? v.vlan); id++) {
          pv.vids.set(id, (v.flags ?? []).includes('Egress Untagged'));
          if ((v.flags ?? []).includes('PVID')) pv.pvid = id;
        }
      return [r.ifname, pv];
    }),
  );
}

function bridgeWithPorts(ns: TestNetns, filtering: boolean): void {
  ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', ...(filtering ? ['vlan_filtering', '1'] : []));
  for (const p of ['trunk', 'access']) {
    ns.ip('link', 'add', p, 'type', 'veth', 'peer', 'name', `${p}p`);
    ns.ip('link', 'set', p, 'master', 'br0');
  }
}

describe.skipIf(!!missing.bridge)('bridge VLANs over rtnetlink', () => {
  it('lists every bridge port of its namespace, with no VLANs on a bridge without vlan_filtering', async () => {
    const ns = new TestNetns('vlnf');
    bridgeWithPorts(ns, false);
    const got = await readBridgeVlans(opened(ns));
    expect([...got.keys()].sort()).toEqual(['access', 'br0', 'trunk']); // the bridge itself too, as in `bridge vlan show`
    for (const pv of got.values()) expect(pv.pvid === undefined || pv.vids.size <= 1).toBe(true);
  });

  it('on a vlan_filtering bridge: PVID, tagged and untagged VLANs and ranges, as iproute2 reads them', async (ctx) => {
    const probe = new TestNetns('vlprobe');
    const supported = vlanFilteringSupported(probe.name);
    probe.delete();
    if (!supported) ctx.skip('kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)');
    const ns = new TestNetns('vlf');
    bridgeWithPorts(ns, true);
    ns.tool('bridge', 'vlan', 'add', 'dev', 'trunk', 'vid', '100');
    ns.tool('bridge', 'vlan', 'add', 'dev', 'trunk', 'vid', '200-203');
    ns.tool('bridge', 'vlan', 'add', 'dev', 'access', 'vid', '100', 'pvid', 'untagged');
    const got = await readBridgeVlans(opened(ns));
    expect(got.get('trunk')).toEqual({ pvid: 1, vids: new Map([[1, true], [100, false], [200, false], [201, false], [202, false], [203, false]]) });
    expect(got.get('access')?.pvid).toBe(100);
    expect(got.get('access')?.vids.get(100)).toBe(true);
    for (const [name, pv] of iproute2(ns)) expect(got.get(name), name).toEqual(pv);
  });
});
