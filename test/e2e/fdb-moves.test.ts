// The source side of a migration, end to end: the built daemon in a namespace of our own follows
// the bridge's FDB notifications. A guest that leaves (its tap deleted, its MAC then arriving from
// the fabric) counts one move to the uplink; a MAC bouncing between a tap and the uplink flaps.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PacketSocket } from '../../src/sys/packet.js';
import type { PortView } from '../../src/tracker/types.js';
import { sampleValue, type Sample } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { arp, mac } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, bridgeWithUplink, TestNetns, tempStateDir } from '../helpers/netns.js';

const skip = cliMissing() || kernelMissing.bpf || kernelMissing.tun || kernelMissing.bridge;
const guests: Guest[] = [];
let fabric: PacketSocket | undefined;
const v = (s: Sample[], name: string, labels: Record<string, string> = {}) => sampleValue(s, name, labels);
const fdbPort = (ns: TestNetns, m: string): string | undefined =>
  (JSON.parse(ns.tool('bridge', '-j', 'fdb', 'show', 'br', 'br0') || '[]') as { mac: string; ifname: string; master?: string }[]).find((r) => r.mac === m && r.master === 'br0')?.ifname;

afterAll(async () => {
  await killAllDaemons();
  fabric?.close();
  for (const g of guests) g.close();
  cleanupAll();
});

describe.skipIf(!!skip)('source side: guest MACs moving between guest ports and uplinks', () => {
  let ns: TestNetns;
  let d: DaemonProcess;
  let peer = 0;
  const fromFabric = (m: string) => fabric!.send(peer, arp(mac(m), 1, '10.9.1.7', '10.9.1.1'));
  const fromGuest = (g: Guest, m: string) => g.send(arp(mac(m), 1, '10.9.1.8', '10.9.1.1'));
  const learnedOn = (m: string, port: string) => until(`br0 learns ${m} on ${port}`, async () => fdbPort(ns, m), (p) => p === port, 2000, 10);

  beforeAll(async () => {
    ns = bridgeWithUplink('moves');
    peer = ns.ifindex('up0p');
    fabric = ns.run(() => new PacketSocket());
  });

  it('a guest running before the daemon started (seeded by the FDB dump) leaves: one move to the uplink, in the uplink\'s timeline', async () => {
    const M = '52:54:00:50:00:01';
    const g = new Guest(ns, 'tap0', mac(M));
    guests.push(g);
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    fromGuest(g, M);
    await learnedOn(M, 'tap0');
    d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--flap-moves', '3', '--flap-window', '60s']);
    // migrated away: the source QEMU exits (its tap goes), the destination's RARP comes back in
    g.close();
    fromFabric(M);
    await learnedOn(M, 'up0');
    const s = await until('a move counted', () => d.metrics(), (x) => v(x, 'bridgewatch_fdb_moves_total', { bridge: 'br0', direction: 'to_uplink' }) === 1, 3000);
    expect(v(s, 'bridgewatch_fdb_moves_total', { bridge: 'br0', direction: 'to_guest' })).toBe(0);
    expect(v(s, 'bridgewatch_mac_flaps_total', { bridge: 'br0' })).toBe(0);
    const up = (await d.get('/api/v1/ports/up0')).json as PortView;
    expect(up.timeline.find((f) => f.type === 'fdb_move')).toMatchObject({ mac: M, detail: 'left this host: from tap0' });
  }, 30_000);

  it('another host\'s MAC on the uplink is not followed', async () => {
    fromFabric('52:54:00:50:00:99');
    await learnedOn('52:54:00:50:00:99', 'up0');
    const s = await d.metrics();
    expect(v(s, 'bridgewatch_fdb_moves_total', { bridge: 'br0', direction: 'to_uplink' })).toBe(1);
  });

  it('a MAC bouncing between a tap and the uplink: every crossing counted, the flap once', async () => {
    const M = '52:54:00:50:00:02';
    const g = new Guest(ns, 'tap1', mac(M));
    guests.push(g);
    ns.ip('link', 'set', 'tap1', 'master', 'br0');
    await until('tap1 forwarding', () => d.get('/api/v1/ports/tap1'), (r) => r.status === 200 && (r.json as PortView).state === 'forwarding', 5000);
    fromGuest(g, M);
    await learnedOn(M, 'tap1');
    for (let i = 0; i < 3; i++) {
      fromFabric(M);
      await learnedOn(M, 'up0');
      fromGuest(g, M);
      await learnedOn(M, 'tap1');
    }
    const s = await until('6 crossings', () => d.metrics(), (x) => v(x, 'bridgewatch_fdb_moves_total', { bridge: 'br0', direction: 'to_guest' }) === 3, 3000);
    expect(v(s, 'bridgewatch_fdb_moves_total', { bridge: 'br0', direction: 'to_uplink' })).toBe(1 + 3);
    expect(v(s, 'bridgewatch_mac_flaps_total', { bridge: 'br0' })).toBe(1);
    expect(d.stdout).toMatch(/guest MAC is flapping between a guest port and an uplink/);
  }, 30_000);
});
