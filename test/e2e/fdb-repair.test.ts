// The local half of the heal, end to end: host B's own bridge learned the guest's MAC on its
// uplink while the guest ran elsewhere (its broadcasts reach every host), so after a late join it
// must be told the guest is now behind the tap. The built daemon in a namespace of our own, a real
// bridge, taps held open, broadcasts from "the fabric" written into the uplink's peer, and the
// kernel's own FDB (`bridge -j fdb`) as the independent witness.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announceOffsets, ANNOUNCE_DEFAULTS } from '../../src/announce/schedule.js';
import { PacketSocket } from '../../src/sys/packet.js';
import type { PortView } from '../../src/tracker/types.js';
import { sampleValue, type Sample } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { arp, mac } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, bridgeWithUplink, TestNetns, tempStateDir } from '../helpers/netns.js';

const skip = cliMissing() || kernelMissing.bpf || kernelMissing.tun || kernelMissing.bridge || kernelMissing.bridgeBtf;
const LAST_ROUND_MS = announceOffsets(ANNOUNCE_DEFAULTS).at(-1)!;

const guests: Guest[] = [];
let fabric: PacketSocket | undefined;

interface FdbRow {
  mac: string;
  ifname: string;
  master?: string;
  state?: string;
  flags?: string[];
}
const fdbRows = (ns: TestNetns): FdbRow[] => JSON.parse(ns.tool('bridge', '-j', 'fdb', 'show', 'br', 'br0') || '[]') as FdbRow[];
/** where br0 delivers `m` (its bridge-level entry, not the port's own self entry) */
const fdbOf = (ns: TestNetns, m: string): FdbRow | undefined => fdbRows(ns).find((r) => r.mac === m && r.master === 'br0');

const v = (s: Sample[], name: string, labels: Record<string, string> = {}) => sampleValue(s, name, labels);
const port = (d: DaemonProcess, name: string) => d.get(`/api/v1/ports/${name}`);
const waitPort = (d: DaemonProcess, name: string, ok: (p: PortView) => boolean, what: string, ms = 10_000) =>
  until(`${name}: ${what}`, () => port(d, name), (r) => r.status === 200 && ok(r.json as PortView), ms).then((r) => r.json as PortView);

afterAll(async () => {
  await killAllDaemons();
  fabric?.close();
  for (const g of guests) g.close();
  cleanupAll();
});

describe.skipIf(!!skip)('heal: the local bridge delivers the guest MAC to its port again', () => {
  let ns: TestNetns;
  let d: DaemonProcess;
  let uplinkPeer = 0;

  /** A broadcast ARP from `m` arriving from the fabric: br0 learns `m` on up0. */
  const fromFabric = (m: string) => fabric!.send(uplinkPeer, arp(mac(m), 1, '10.9.0.7', '10.9.0.1'));

  /** The guest resumed here: its burst dies on a tap in no bridge; then the late join. */
  async function lateGuest(tap: string, m: string): Promise<{ guest: Guest; joinedAt: number }> {
    const g = new Guest(ns, tap, mac(m));
    guests.push(g);
    await waitPort(d, tap, () => true, 'watched');
    g.announce(3);
    await waitPort(d, tap, (p) => p.macs[0]?.framesBeforeForwarding === 3, '3 frames before forwarding');
    ns.ip('link', 'set', tap, 'master', 'br0');
    return { guest: g, joinedAt: performance.now() };
  }

  beforeAll(async () => {
    ns = bridgeWithUplink('fdb');
    uplinkPeer = ns.ifindex('up0p');
    fabric = ns.run(() => new PacketSocket());
    d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir()]);
  }, 30_000);

  it('a learned entry on the uplink moves to the guest port within 100 ms of the join, before the first RARP, and ages as learned', async () => {
    const M = '52:54:00:fd:b0:01';
    fromFabric(M);
    await until('br0 learns the guest on up0', async () => fdbOf(ns, M), (r) => r?.ifname === 'up0', 2000);
    const { joinedAt } = await lateGuest('tap0', M);
    let movedAt = 0;
    await until('br0 delivers the guest to tap0', async () => fdbOf(ns, M), (r) => {
      if (r?.ifname === 'tap0' && !movedAt) movedAt = performance.now();
      return r?.ifname === 'tap0';
    }, 2000, 2);
    expect(movedAt - joinedAt, 'join to FDB entry on the guest port (ms)').toBeLessThan(100);
    const row = fdbOf(ns, M)!;
    expect(row.state ?? '', 'a dynamic entry, as if learned').toBe('');
    expect(row.flags ?? []).not.toContain('extern_learn');

    const p = await waitPort(d, 'tap0', (x) => x.timeline.some((f) => f.type === 'rarp_sent'), 'a RARP sent');
    const repaired = p.timeline.find((f) => f.type === 'fdb_repaired');
    expect(repaired).toMatchObject({ mac: M, detail: 'from up0' });
    expect(repaired!.seq, 'FDB repaired before the first RARP').toBeLessThan(p.timeline.find((f) => f.type === 'rarp_sent')!.seq);

    // dynamic means it follows the traffic: the MAC seen on the uplink again moves it back
    fromFabric(M);
    await until('br0 re-learns the guest on up0', async () => fdbOf(ns, M), (r) => r?.ifname === 'up0', 2000);

    await sleep(LAST_ROUND_MS + 200);
    const s = await d.metrics();
    expect(v(s, 'bridgewatch_fdb_repairs_total', { bridge: 'br0' })).toBe(1);
    for (const reason of ['static', 'permanent', 'extern_learn', 'sticky', 'dry_run', 'error']) expect(v(s, 'bridgewatch_fdb_repair_skipped_total', { reason }), reason).toBe(0);
  }, 20_000);

  it('a static and an extern_learn entry are left alone (counted), and the RARPs still go out', async () => {
    const S = '52:54:00:fd:b0:02';
    const E = '52:54:00:fd:b0:03';
    ns.tool('bridge', 'fdb', 'add', S, 'dev', 'up0', 'master', 'static');
    ns.tool('bridge', 'fdb', 'add', E, 'dev', 'up0', 'master', 'extern_learn');
    await lateGuest('tap1', S);
    await lateGuest('tap2', E);
    for (const t of ['tap1', 'tap2']) await waitPort(d, t, (x) => x.timeline.some((f) => f.type === 'rarp_sent'), 'a RARP sent');
    await sleep(100);
    expect(fdbOf(ns, S)).toMatchObject({ ifname: 'up0', state: 'static' });
    expect(fdbOf(ns, E)).toMatchObject({ ifname: 'up0', flags: expect.arrayContaining(['extern_learn']) });
    for (const t of ['tap1', 'tap2']) expect((await port(d, t)).json.timeline.some((f: { type: string }) => f.type === 'fdb_repaired'), t).toBe(false);
    const s = await d.metrics();
    expect(v(s, 'bridgewatch_fdb_repair_skipped_total', { reason: 'static' })).toBe(1);
    expect(v(s, 'bridgewatch_fdb_repair_skipped_total', { reason: 'extern_learn' })).toBe(1);
    expect(v(s, 'bridgewatch_fdb_repairs_total', { bridge: 'br0' })).toBe(1); // unchanged
  }, 20_000);

  it('a conflict (the MAC still active on another local port) repairs nothing', async () => {
    const M = '52:54:00:fd:b0:04';
    const home = new Guest(ns, 'tap3', mac(M));
    guests.push(home);
    ns.ip('link', 'set', 'tap3', 'master', 'br0');
    await waitPort(d, 'tap3', (p) => p.state === 'forwarding', 'forwarding');
    fromFabric(M); // br0 now has the MAC on up0
    await until('br0 learns the MAC on up0', async () => fdbOf(ns, M), (r) => r?.ifname === 'up0', 2000);
    const twin = new Guest(ns, 'tap4', mac(M));
    guests.push(twin);
    await waitPort(d, 'tap4', () => true, 'watched');
    twin.announce(2);
    await sleep(20);
    home.send(arp(mac(M), 1, '10.9.0.9', '10.9.0.1')); // still talking on tap3: br0 learns it there
    await until('br0 learns the MAC on tap3', async () => fdbOf(ns, M), (r) => r?.ifname === 'tap3', 2000);
    await waitPort(d, 'tap4', (p) => p.macs[0]?.framesBeforeForwarding === 2, '2 frames on tap4');
    ns.ip('link', 'set', 'tap4', 'master', 'br0');
    await waitPort(d, 'tap4', (p) => p.verdict === 'late', 'late');
    await sleep(LAST_ROUND_MS + 200);
    expect(fdbOf(ns, M)?.ifname, 'left where the traffic put it').toBe('tap3');
    const s = await d.metrics();
    expect(v(s, 'bridgewatch_announce_suppressed_total', { reason: 'conflict' })).toBe(1);
    expect(v(s, 'bridgewatch_fdb_repairs_total', { bridge: 'br0' })).toBe(1); // unchanged
  }, 20_000);
});

describe.skipIf(!!skip)('heal in dry-run: the FDB repair is only described', () => {
  it('logs what it would move and counts dry_run, leaving the entry on the uplink', async () => {
    const ns = bridgeWithUplink('fdbdry');
    const sock = ns.run(() => new PacketSocket());
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--announce', 'dry-run']);
    try {
      const M = '52:54:00:fd:b0:05';
      sock.send(ns.ifindex('up0p'), arp(mac(M), 1, '10.9.0.8', '10.9.0.1'));
      await until('br0 learns the guest on up0', async () => fdbOf(ns, M), (r) => r?.ifname === 'up0', 2000);
      const g = new Guest(ns, 'tap0', mac(M));
      guests.push(g);
      await waitPort(d, 'tap0', () => true, 'watched');
      g.announce(2);
      await waitPort(d, 'tap0', (p) => p.macs[0]?.framesBeforeForwarding === 2, '2 frames');
      ns.ip('link', 'set', 'tap0', 'master', 'br0');
      await until('dry_run counted', () => d.metrics(), (s) => v(s, 'bridgewatch_fdb_repair_skipped_total', { reason: 'dry_run' }) === 1, 3000);
      expect(fdbOf(ns, M)?.ifname).toBe('up0');
      expect(d.stdout).toMatch(/would move fdb entry to the guest port/);
      expect(v(await d.metrics(), 'bridgewatch_fdb_repairs_total', { bridge: 'br0' })).toBe(0);
    } finally {
      sock.close();
      await d.stop();
    }
  }, 30_000);
});
