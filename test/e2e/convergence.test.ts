// Did the network come back? The built daemon watches each arrived guest's MAC on the bridge's
// uplink: its first frame out, and the fabric's first unicast frame to it. Checked against
// independent tcpdump captures on the tap and the uplink; an unanswered guest is unconverged,
// a guest that sends nothing out is not judged, and the uplink programs leave with the daemon.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/lab/qemu.js';
import { PacketSocket } from '../../src/sys/packet.js';
import type { MigrationPage, MigrationView } from '../../src/tracker/convergence-view.js';
import { startCapture, stopAllCaptures } from '../fixtures/pcap.js';
import { sampleValue } from '../helpers/daemon-metrics.js';
import { cli, cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { arp, ether, ipv4Frame, mac, qemuRarp } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';
import { scaled } from '../helpers/time-scale.js';

const skip = cliMissing() || missing.bpf || missing.tun || missing.bridge || (findExecutable('tcpdump') ? '' : 'tcpdump not in PATH (scripts/setup.sh installs it)');
const FABRIC = mac('02:fa:b0:00:00:01'); // a host out on the fabric
const guests: Guest[] = [];
let fabric: PacketSocket | undefined;
let dir = '';

afterAll(async () => {
  await killAllDaemons();
  await stopAllCaptures();
  fabric?.close();
  for (const g of guests) g.close();
  cleanupAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A unicast IPv4 frame from the fabric to `dst`. */
const fromFabric = (dst: Buffer) => {
  const f = ether(dst, FABRIC, 0x0800, Buffer.alloc(46));
  f[14] = 0x45;
  return f;
};

describe.skipIf(!!skip)('convergence: the fabric delivers to an arrived guest again', () => {
  let ns: TestNetns;
  let d: DaemonProcess;
  let up0p = 0;

  const migration = (m: string, ok: (v: MigrationView) => boolean, what: string) =>
    until(
      `${m}: ${what}`,
      async () => ((await d.get('/api/v1/migrations?limit=1000')).json as MigrationPage).migrations.find((v) => v.mac === m),
      (v) => v !== undefined && ok(v),
      scaled(10_000),
    ).then((v) => v!);

  const filters = (dev: string, side: 'ingress' | 'egress') => ns.tool('tc', 'filter', 'show', 'dev', dev, side);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bwt-conv-'));
    ns = new TestNetns('conv');
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
    ns.ip('link', 'set', 'br0', 'up');
    ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p');
    ns.ip('link', 'set', 'up0', 'master', 'br0');
    ns.ip('link', 'set', 'up0', 'up');
    ns.ip('link', 'set', 'up0p', 'up');
    up0p = ns.ifindex('up0p');
    fabric = ns.run(() => new PacketSocket());
    d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--converge-timeout', '2s', '--announce', 'off'], { readyMs: scaled(15_000) });
  }, scaled(30_000));

  it('puts its programs on both sides of the uplink, none on the guest side of it', async () => {
    await until('uplink programs', async () => filters('up0', 'egress'), (s) => s.includes('tc_uplink_out'), scaled(5000));
    expect(filters('up0', 'ingress')).toContain('tc_uplink_in');
    expect(filters('up0', 'ingress')).not.toContain('tc_ingress');
  });

  it('converged: first frame to first unicast from the fabric, as independent captures on the tap and the uplink saw them', async () => {
    const M = '52:54:00:c0:00:01';
    const g = new Guest(ns, 'tap1', mac(M));
    guests.push(g);
    ns.ip('link', 'set', 'tap1', 'master', 'br0');
    const tapCap = await startCapture(ns.name, 'tap1', join(dir, 'tap1.pcap'), ['ether', 'src', M], 'in');
    const upCap = await startCapture(ns.name, 'up0', join(dir, 'up0.pcap'), ['ether', 'dst', M], 'in');
    await until('tap1 forwarding', async () => (await d.get('/api/v1/ports/tap1')).json as { state?: string }, (p) => p.state === 'forwarding', scaled(5000));
    g.send(arp(mac(M), 1, '10.9.0.7', '10.9.0.1')); // who-has: out of the uplink, unanswered for now
    await migration(M, (v) => v.firstUplinkOut !== null, 'its frame went out of up0');
    await sleep(300);
    fabric!.send(up0p, fromFabric(mac(M))); // the answer
    const v = await migration(M, (x) => x.state === 'converged', 'converged');
    const tapP = (await tapCap.stop()).packets;
    const upP = (await upCap.stop()).packets;
    expect(tapP.length).toBeGreaterThan(0);
    expect(upP.length).toBeGreaterThan(0);
    const captured = Number(upP[0].tsNs - tapP[0].tsNs) / 1e9;
    expect(Math.abs(v.convergenceSeconds! - captured), `bridgewatch ${v.convergenceSeconds} s, captures ${captured} s`).toBeLessThan(scaled(50) / 1000);
    expect(v).toMatchObject({ port: 'tap1', bridge: 'br0', firstUplinkOut: { uplink: 'up0' }, firstFabricUnicast: { uplink: 'up0' } });
    expect(v.joined).not.toBeNull();
    expect(v.forwarding).not.toBeNull();
    expect(v.firstUplinkOut!.afterFirstFrame).toBeLessThanOrEqual(v.firstFabricUnicast!.afterFirstFrame);
    const s = await d.metrics();
    expect(sampleValue(s, 'bridgewatch_convergence_seconds_count', { bridge: 'br0' })).toBe(1);
    expect(sampleValue(s, 'bridgewatch_guests_awaiting_convergence', { bridge: 'br0' })).toBe(0);
  });

  it('unconverged: its frames go out, nothing comes back for --converge-timeout; converged once the fabric answers', async () => {
    const M = '52:54:00:c0:00:02';
    const g = new Guest(ns, 'tap2', mac(M));
    guests.push(g);
    // late: the first frames die on a tap in no bridge, then the join (announce is off: nobody heals)
    await until('tap2 watched', async () => (await d.get('/api/v1/ports/tap2')).status, (st) => st === 200, scaled(5000));
    g.send(arp(mac(M), 1, '10.9.0.8', '10.9.0.8'));
    await sleep(200);
    ns.ip('link', 'set', 'tap2', 'master', 'br0');
    await until('tap2 forwarding', async () => (await d.get('/api/v1/ports/tap2')).json as { state?: string }, (p) => p.state === 'forwarding', scaled(5000));
    g.send(arp(mac(M), 1, '10.9.0.8', '10.9.0.1'));
    const v = await migration(M, (x) => x.state === 'unconverged', 'unconverged');
    expect(v.firstFabricUnicast).toBeNull();
    let s = await d.metrics();
    expect(sampleValue(s, 'bridgewatch_guests_unconverged', { bridge: 'br0' })).toBe(1);
    expect(sampleValue(s, 'bridgewatch_guest_unconverged', { bridge: 'br0', port: 'tap2', mac: M })).toBe(1);
    // another host's unicast is nobody's convergence
    fabric!.send(up0p, fromFabric(mac('52:54:00:c0:00:99')));
    await sleep(200);
    expect((await migration(M, () => true, 'listed')).state).toBe('unconverged');
    fabric!.send(up0p, fromFabric(mac(M)));
    await migration(M, (x) => x.state === 'converged', 'converged after the answer');
    s = await d.metrics();
    expect(sampleValue(s, 'bridgewatch_guests_unconverged', { bridge: 'br0' })).toBe(0);
    expect(sampleValue(s, 'bridgewatch_guest_unconverged', { bridge: 'br0', port: 'tap2', mac: M })).toBeUndefined();
  });

  it('quiet: a guest that sends nothing out of an uplink is not judged; a deleted port ends its watch', async () => {
    const Q = '52:54:00:c0:00:03';
    const q = new Guest(ns, 'tap3', mac(Q));
    guests.push(q);
    ns.ip('link', 'set', 'tap3', 'master', 'br0');
    await until('tap3 forwarding', async () => (await d.get('/api/v1/ports/tap3')).json as { state?: string }, (p) => p.state === 'forwarding', scaled(5000));
    // one frame to a MAC the bridge knows on another local port: it never reaches the uplink
    q.send(ether(mac('52:54:00:c0:00:01'), mac(Q), 0x0800, Buffer.alloc(46)));
    // and its announcements, which do leave by the uplink but ask for no answer
    q.send(qemuRarp(mac(Q)), arp(mac(Q), 1, '10.9.0.9', '10.9.0.9'));
    const v = await migration(Q, (x) => x.state === 'quiet', 'quiet');
    expect(v.firstUplinkOut).toBeNull();

    const G = '52:54:00:c0:00:04';
    const g = new Guest(ns, 'tap4', mac(G));
    ns.ip('link', 'set', 'tap4', 'master', 'br0');
    g.send(ipv4Frame(mac(G)));
    await migration(G, (x) => x.state === 'awaiting', 'awaiting');
    g.close(); // the tap goes with its fd
    const gone = await migration(G, (x) => x.state === 'gone', 'gone');
    expect(gone.detail).toBe('port deleted');
    const s = await d.metrics();
    expect(sampleValue(s, 'bridgewatch_convergence_unjudged_total', { bridge: 'br0', reason: 'quiet' })).toBe(1);
    expect(sampleValue(s, 'bridgewatch_convergence_unjudged_total', { bridge: 'br0', reason: 'gone' })).toBe(1);
  });

  it('pages migrations with a cursor and refuses bad ones', async () => {
    const all = (await d.get('/api/v1/migrations?limit=1000')).json as MigrationPage;
    expect(all.enabled).toBe(true);
    expect(all.migrations.length).toBeGreaterThanOrEqual(4);
    const first = (await d.get('/api/v1/migrations?limit=1')).json as MigrationPage;
    expect(first.migrations).toHaveLength(1);
    const rest = (await d.get(`/api/v1/migrations?since=${first.next}&limit=1000`)).json as MigrationPage;
    expect([...first.migrations, ...rest.migrations].map((m) => m.seq)).toEqual(all.migrations.map((m) => m.seq));
    expect((await d.get('/api/v1/migrations?limit=0')).status).toBe(400);
    expect((await d.get('/api/v1/migrations?since=-1')).status).toBe(400);
  });

  it('`bridgewatch status` lists the arrivals with their state and milestones', async () => {
    const r = await cli(ns, ['status', '--url', d.url]);
    expect(r.code, r.stderr).toBe(0);
    const [, arrivals] = r.stdout.split(/\narrivals \(the last \d+; milestones in seconds after the guest's first frame here\):\n/);
    expect(arrivals, r.stdout).toBeDefined();
    const rows = arrivals.trim().split('\n').map((l) => l.split(/\s{2,}/));
    expect(rows[0]).toEqual(['MAC', 'PORT', 'VM', 'BRIDGE', 'STATE', 'CONVERGENCE', 'FIRST-FRAME', 'ANNOUNCED', 'JOINED', 'FORWARDING', 'RARP', 'OUT', 'FABRIC']);
    const tap1 = rows.find((x) => x[1] === 'tap1')!;
    expect(tap1.slice(0, 5)).toEqual(['52:54:00:c0:00:01', 'tap1', '-', 'br0', 'converged']);
    expect(tap1[5]).toMatch(/^\d+\.\d{3}s$/);
    expect(tap1[11]).toMatch(/^\+\d+\.\d{3} up0$/);
    expect(tap1[12]).toMatch(/^\+\d+\.\d{3} up0$/);
    expect(rows.find((x) => x[1] === 'tap3')?.[4]).toBe('quiet');
    const json = JSON.parse((await cli(ns, ['status', '--url', d.url, '--json'])).stdout);
    expect(json.migrations.map((m: MigrationView) => m.mac)).toContain('52:54:00:c0:00:02');
  });

  it('removes the uplink programs on SIGTERM', async () => {
    const exit = await d.stop('SIGTERM');
    expect(exit.code).toBe(0);
    expect(filters('up0', 'ingress')).not.toContain('tc_uplink');
    expect(filters('up0', 'egress')).not.toContain('tc_uplink');
  });

  it('after a crash: a restart replaces its uplink filters (never stacks), and one with convergence off removes them', async () => {
    const count = (side: 'ingress' | 'egress') => filters('up0', side).split('\n').filter((l) => l.includes('tc_uplink')).length;
    const state = tempStateDir();
    // someone else's clsact: the journal never removes it, so what a killed run left stays on it
    ns.tool('tc', 'qdisc', 'add', 'dev', 'up0', 'clsact');
    const crashed = await DaemonProcess.start(ns, ['--state-dir', state], { readyMs: scaled(15_000) });
    await until('uplink programs', async () => count('egress'), (n) => n === 1, scaled(5000));
    await crashed.stop('SIGKILL');
    expect([count('ingress'), count('egress')], 'left by the killed run').toEqual([1, 1]);
    const again = await DaemonProcess.start(ns, ['--state-dir', state], { readyMs: scaled(15_000) });
    await again.stop('SIGKILL');
    expect([count('ingress'), count('egress')], 'replaced, not stacked').toEqual([1, 1]);
    const off = await DaemonProcess.start(ns, ['--state-dir', state, '--converge-timeout', '0'], { readyMs: scaled(15_000) });
    expect([count('ingress'), count('egress')]).toEqual([0, 0]);
    expect(ns.tool('tc', 'qdisc', 'show', 'dev', 'up0'), 'their clsact stays').toContain('clsact');
    expect(((await off.get('/api/v1/migrations')).json as MigrationPage).enabled).toBe(false);
    expect((await off.stop('SIGTERM')).code).toBe(0);
  });
});
