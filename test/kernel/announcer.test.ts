// The Announcer against real sockets: a bridge in a namespace of our own with veth uplinks, the
// real AF_PACKET sender created inside that namespace, the real Metrics registry, and tcpdump on
// each uplink's peer as the independent witness. Every safety rule is checked on the wire (what
// left) and in the counters (what was decided).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Announcer, type AnnounceMode, type AnnouncerDeps, type Decision } from '../../src/announce/announcer.js';
import { rarpFrame, withVlanTag } from '../../src/announce/frames.js';
import { ANNOUNCE_DEFAULTS, announceOffsets, type AnnounceParameters } from '../../src/announce/schedule.js';
import { readBridgeVlans, type PortVlans } from '../../src/announce/vlans.js';
import { RtnlRequester } from '../../src/sys/rtnl-request.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { PacketSocket } from '../../src/sys/packet.js';
import { findExecutable } from '../../src/lab/qemu.js';
import { systemClock } from '../../src/tracker/types.js';
import { startCapture, stopAllCaptures, type Capture, type PcapPacket } from '../fixtures/pcap.js';
import { arp, mac as macBytes, neighbour } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { cleanupAll, TestNetns } from '../helpers/netns.js';
import { sampleValue } from '../helpers/daemon-metrics.js';
import { vlanFilteringSupported } from '../helpers/watch-env.js';
import { emptySource } from '../helpers/metrics-source.js';
import { scaled } from '../helpers/time-scale.js';

/** Schedule tolerance at the capture: each frame within ±30 ms of QEMU's offset from the first. */
const TOLERANCE_MS = 30;
const MAC = '52:54:00:12:34:56';
const missingTools = ['tcpdump', 'bridge'].filter((b) => !findExecutable(b));
const skipReason =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces, raw sockets)'
    : missingTools.length
      ? `${missingTools.join(' and ')} not found in PATH (scripts/setup.sh installs them)`
      : '';

const noSource = emptySource;

let ns: TestNetns;
let sock: PacketSocket;
let dir = '';
let guest: Guest | undefined;
const ifindex: Record<string, number> = {};
const announcers: Announcer[] = [];

interface Rig {
  a: Announcer;
  registry: Registry;
  sent: { ifindex: number; mac: string; detail: string }[];
  /** replayed guest frames: "kind detail" */
  replayed: string[];
  logs: { msg: string; o: object }[];
  value(name: string, labels?: Record<string, string>): Promise<number | undefined>;
}

/** An Announcer on br0's uplinks in `ns`, sending through the namespace's packet socket. */
function rig(o: {
  mode?: AnnounceMode;
  params?: Partial<AnnounceParameters>;
  holdoffMs?: number;
  ratePerSec?: number;
  uplinks?: string[];
  conflicts?: Set<string>;
  filtering?: boolean;
  vlans?: () => Promise<Map<string, PortVlans>>;
  beforeFirstRound?: AnnouncerDeps['beforeFirstRound'];
}): Rig {
  const registry = new Registry();
  const metrics = new Metrics(registry, noSource, { version: 'test', kernel: 'test', mode: 'ebpf' }, o.mode ?? 'on');
  metrics.bridgeSeen('br0');
  const sent: Rig['sent'] = [];
  const replayed: string[] = [];
  const logs: Rig['logs'] = [];
  const deps: AnnouncerDeps = {
    mode: o.mode ?? 'on',
    params: { ...ANNOUNCE_DEFAULTS, ...o.params },
    holdoffMs: o.holdoffMs ?? 10_000,
    ratePerSec: o.ratePerSec ?? 200,
    clock: systemClock,
    send: (i, frame) => sock.send(i, frame),
    uplinks: () => (o.uplinks ?? ['up1', 'up2']).map((name) => ({ ifindex: ifindex[name], name })),
    vlanFiltering: () => o.filtering ?? false,
    vlans: o.vlans ?? (async () => new Map()),
    activeElsewhere: (m) => (o.conflicts?.has(m) ? [ifindex.tap1] : []),
    metrics,
    onSent: (i, m, _ts, detail) => sent.push({ ifindex: i, mac: m, detail }),
    onReplayed: (_i, _m, _ts, kind, detail) => replayed.push(`${kind} ${detail}`),
    beforeFirstRound: o.beforeFirstRound,
    log: { info: (obj, msg) => logs.push({ msg, o: obj }), warn: (obj, msg) => logs.push({ msg, o: obj }) },
  };
  const a = new Announcer(deps);
  announcers.push(a);
  return { a, registry, sent, replayed, logs, value: async (name, labels = {}) => sampleValue(await registry.metrics(), name, labels) };
}

const target = (m = MAC, o: { forwardingNs?: bigint; port?: string } = {}) => ({
  ifindex: ifindex.tap0,
  port: o.port ?? 'tap0',
  bridge: 'br0',
  mac: m,
  ...(o.forwardingNs !== undefined && { forwardingNs: o.forwardingNs }),
});

/** RARP frames in a capture (untagged, or one 802.1Q tag), in capture order. */
const rarps = (packets: PcapPacket[]): PcapPacket[] =>
  packets.filter((p) => p.data.readUInt16BE(12) === 0x8035 || (p.data.readUInt16BE(12) === 0x8100 && p.data.readUInt16BE(16) === 0x8035));

/** tcpdump on each named uplink's peer (frames arriving there are what the uplink sent). */
async function capture(names: string[]): Promise<{ stop(): Promise<Record<string, PcapPacket[]>> }> {
  const caps: [string, Capture][] = [];
  for (const n of names) caps.push([n, await startCapture(ns.name, `${n}p`, join(dir, `${n}-${Date.now()}.pcap`), [], 'in')]);
  return {
    async stop() {
      const out: Record<string, PcapPacket[]> = {};
      for (const [n, c] of caps) out[n] = rarps((await c.stop()).packets);
      return out;
    },
  };
}

const hex = (b: Buffer) => b.toString('hex');
const offsetsOf = (p: PcapPacket[]) => p.map((x) => Number(x.tsNs - p[0].tsNs) / 1e6);
/** Longest schedule in these tests plus margin for the last frame to reach the capture. */
const SCHEDULE_MS = announceOffsets(ANNOUNCE_DEFAULTS).at(-1)! + 300;

describe.skipIf(!!skipReason)('Announcer on real sockets', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bwt-ann-'));
    ns = new TestNetns('ann');
    // no IPv6 autoconfiguration chatter on the links
    execFileSync('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
    ns.ip('link', 'set', 'br0', 'up');
    for (const up of ['up1', 'up2']) {
      ns.ip('link', 'add', up, 'type', 'veth', 'peer', 'name', `${up}p`);
      ns.ip('link', 'set', up, 'master', 'br0');
      ns.ip('link', 'set', up, 'up');
      ns.ip('link', 'set', `${up}p`, 'up');
      ifindex[up] = ns.ifindex(up);
    }
    guest = new Guest(ns, 'tap0', macBytes(MAC));
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    ifindex.tap0 = guest.ifindex;
    ifindex.tap1 = ifindex.tap0 + 1000; // "another local port" for the conflict rule
    // created inside the namespace, the socket stays there: it reaches only our devices
    sock = ns.run(() => new PacketSocket());
  });

  afterEach(() => {
    for (const a of announcers.splice(0)) a.stop();
  });

  afterAll(async () => {
    for (const a of announcers.splice(0)) a.stop();
    await stopAllCaptures();
    sock?.close();
    guest?.close();
    cleanupAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`sends QEMU's RARP on every uplink at QEMU's offsets 0, 50, 200, 450, 800 ms (±${TOLERANCE_MS} ms at the capture)`, async () => {
    const r = rig({});
    const cap = await capture(['up1', 'up2']);
    const forwardingNs = process.hrtime.bigint();
    const calledAtNs = BigInt(Date.now()) * 1_000_000n;
    expect(r.a.announce(target(MAC, { forwardingNs }), 'late_attach')).toEqual({ ok: true });
    await sleep(SCHEDULE_MS);
    const got = await cap.stop();

    const want = announceOffsets(ANNOUNCE_DEFAULTS);
    expect(want).toEqual([0, 50, 200, 450, 800]);
    for (const up of ['up1', 'up2']) {
      expect(got[up].map((p) => hex(p.data)), up).toEqual(want.map(() => hex(rarpFrame(MAC))));
      offsetsOf(got[up]).forEach((off, i) => expect(Math.abs(off - want[i]), `${up} round ${i + 1} at ${off.toFixed(1)} ms`).toBeLessThanOrEqual(TOLERANCE_MS));
      // the first round goes out at once
      expect(Number(got[up][0].tsNs - calledAtNs) / 1e6).toBeLessThanOrEqual(TOLERANCE_MS);
    }
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(10);
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'manual' })).toBe(0);
    expect(await r.value('bridgewatch_reannounce_latency_seconds_count', { bridge: 'br0' })).toBe(1);
    expect(await r.value('bridgewatch_rarp_send_errors_total', { bridge: 'br0' })).toBe(0);
    expect(r.sent.map((s) => s.detail)).toEqual(
      [1, 2, 3, 4, 5].flatMap((round) => [`round ${round} via up1 (late_attach)`, `round ${round} via up2 (late_attach)`]),
    );
    expect(r.logs.map((l) => l.msg)).toEqual(['announce scheduled']);
  });

  it('the schedule follows its parameters (QEMU announce-initial/-max/-rounds/-step)', async () => {
    const params = { initial: 20, max: 120, rounds: 4, step: 100 }; // gaps 20, 120 (capped), 120
    const r = rig({ params, uplinks: ['up1'] });
    const cap = await capture(['up1']);
    r.a.announce(target(), 'manual');
    await sleep(announceOffsets({ ...ANNOUNCE_DEFAULTS, ...params }).at(-1)! + 300);
    const got = (await cap.stop()).up1;
    const want = [0, 20, 140, 260];
    expect(announceOffsets({ ...ANNOUNCE_DEFAULTS, ...params })).toEqual(want);
    expect(got).toHaveLength(4);
    offsetsOf(got).forEach((off, i) => expect(Math.abs(off - want[i]), `round ${i + 1} at ${off.toFixed(1)} ms`).toBeLessThanOrEqual(TOLERANCE_MS));
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'manual' })).toBe(4);
  });

  it.each([
    ['broadcast', 'ff:ff:ff:ff:ff:ff'],
    ['IPv4 multicast', '01:00:5e:00:00:01'],
    ['IPv6 multicast', '33:33:00:00:00:01'],
    ['locally administered group', '03:00:00:00:00:01'],
    ['all zeros', '00:00:00:00:00:00'],
  ])('never sends for a %s MAC (group_mac, counted)', async (_kind, m) => {
    const r = rig({});
    const cap = await capture(['up1']);
    expect(r.a.announce(target(m), 'late_attach')).toEqual({ ok: false, reason: 'group_mac' });
    expect(r.a.announce(target(m), 'manual')).toEqual({ ok: false, reason: 'group_mac' });
    await sleep(200);
    expect((await cap.stop()).up1).toEqual([]);
    expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'group_mac' })).toBe(2);
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(0);
  });

  it('holdoff: a second late_attach schedule for the MAC within --announce-holdoff is suppressed and counted', async () => {
    const r = rig({ holdoffMs: 10_000, uplinks: ['up1'] });
    const cap = await capture(['up1']);
    expect(r.a.announce(target(), 'late_attach')).toEqual({ ok: true });
    await sleep(100);
    expect(r.a.announce(target(), 'late_attach')).toEqual({ ok: false, reason: 'holdoff' });
    expect(r.a.announce(target(MAC, { port: 'tap9' }), 'late_attach')).toEqual({ ok: false, reason: 'holdoff' }); // per MAC, any port
    await sleep(SCHEDULE_MS);
    expect((await cap.stop()).up1).toHaveLength(5);
    expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'holdoff' })).toBe(2);
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(5);
    expect(r.logs.filter((l) => l.msg === 'announce suppressed').map((l) => (l.o as { suppressed: string }).suppressed)).toEqual(['holdoff', 'holdoff']);
  });

  it('one schedule per MAC at a time: a new request replaces the running one (as QEMU announce-self)', async () => {
    const r = rig({ uplinks: ['up1'], params: { rounds: 2, initial: 100 } });
    const cap = await capture(['up1']);
    expect(r.a.announce(target(), 'manual')).toEqual({ ok: true }); // round 1 now, round 2 cancelled
    await sleep(20);
    expect(r.a.announce(target(), 'manual')).toEqual({ ok: true }); // rounds at +0 and +100 ms
    await sleep(300);
    expect((await cap.stop()).up1).toHaveLength(3);
    expect(r.logs.filter((l) => l.msg === 'announce restarted')).toHaveLength(1);
  });

  it('holdoff ends: after --announce-holdoff the MAC may be announced again; other MACs are never held', async () => {
    const r = rig({ holdoffMs: 300, uplinks: ['up1'], params: { rounds: 1 } });
    const cap = await capture(['up1']);
    expect(r.a.announce(target(), 'late_attach')).toEqual({ ok: true });
    expect(r.a.announce(target('52:54:00:12:34:57'), 'late_attach')).toEqual({ ok: true });
    await sleep(400);
    expect(r.a.announce(target(), 'late_attach')).toEqual({ ok: true });
    await sleep(200);
    const got = (await cap.stop()).up1;
    expect(got.map((p) => p.data.subarray(6, 12).toString('hex'))).toEqual(['525400123456', '525400123457', '525400123456']);
  });

  it('remembers a MAC only for its holdoff: the holdoff table does not grow with every MAC ever announced', async () => {
    const r = rig({ holdoffMs: 200, uplinks: ['up1'], params: { rounds: 1 } });
    for (let i = 0; i < 50; i++) r.a.announce(target(`52:54:00:00:02:${i.toString(16).padStart(2, '0')}`), 'late_attach');
    await sleep(250);
    r.a.announce(target(), 'late_attach');
    // white-box: the table is private; what matters is its size on a host that migrates for months
    expect((r.a as unknown as { lastSchedule: Map<string, number> }).lastSchedule.size).toBe(1);
  });

  it('the global rate cap: frames beyond --announce-rate per second are dropped and counted', async () => {
    // 4 MACs x 1 round x 1 uplink at once; the bucket holds 2
    const r = rig({ ratePerSec: 2, uplinks: ['up1'], params: { rounds: 1 } });
    const cap = await capture(['up1']);
    const macs = ['52:54:00:00:01:01', '52:54:00:00:01:02', '52:54:00:00:01:03', '52:54:00:00:01:04'];
    for (const m of macs) expect(r.a.announce(target(m), 'late_attach')).toEqual({ ok: true });
    await sleep(300);
    const got = (await cap.stop()).up1;
    expect(got.map((p) => hex(p.data))).toEqual(macs.slice(0, 2).map((m) => hex(rarpFrame(m))));
    expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'rate_limit' })).toBe(2);
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(2);
  });

  it('the rate cap refills: at 1 frame/s a 5-round schedule sends its first round only', async () => {
    const r = rig({ ratePerSec: 1, uplinks: ['up1'] });
    const cap = await capture(['up1']);
    r.a.announce(target(), 'late_attach');
    await sleep(SCHEDULE_MS);
    expect((await cap.stop()).up1).toHaveLength(1); // 0.8 s of refill never reaches a whole token
    expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'rate_limit' })).toBe(4);
  });

  it('a MAC active on two local ports at once is a conflict: counted, nothing sent', async () => {
    const r = rig({ conflicts: new Set([MAC]) });
    const cap = await capture(['up1', 'up2']);
    expect(r.a.announce(target(), 'late_attach')).toEqual({ ok: false, reason: 'conflict' });
    expect(r.a.announce(target(), 'manual')).toEqual({ ok: false, reason: 'conflict' });
    await sleep(200);
    expect(await cap.stop()).toEqual({ up1: [], up2: [] });
    expect(await r.value('bridgewatch_mac_conflicts_total', { bridge: 'br0' })).toBe(2);
    expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'conflict' })).toBe(2);
  });

  it.each<[AnnounceMode, Decision]>([
    ['dry-run', { ok: false, reason: 'dry_run' }],
    ['off', { ok: false, reason: 'off' }],
  ])('--announce=%s sends nothing, and counts the decision', async (mode, decision) => {
    const r = rig({ mode });
    const cap = await capture(['up1', 'up2']);
    expect(r.a.announce(target(MAC, { forwardingNs: process.hrtime.bigint() }), 'late_attach')).toEqual(decision);
    expect(r.a.announce(target(), 'manual')).toEqual(decision);
    await sleep(SCHEDULE_MS);
    expect(await cap.stop()).toEqual({ up1: [], up2: [] });
    expect(await r.value('bridgewatch_announce_suppressed_total', { reason: decision.ok ? '' : decision.reason })).toBe(2);
    expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(0);
    expect(await r.value('bridgewatch_reannounce_latency_seconds_count', { bridge: 'br0' })).toBe(0);
    expect(await r.value('bridgewatch_announce_mode', { mode })).toBe(1);
    expect(r.logs.map((l) => l.msg)).toEqual(['announce suppressed', 'announce suppressed']);
  });

  it('a port in no bridge is never announced', () => {
    const r = rig({});
    expect(r.a.announce({ ...target(), bridge: '' }, 'late_attach')).toEqual({ ok: false, reason: 'no_bridge' });
  });

  it('a send the kernel refuses is counted per bridge; the other uplinks still get every round', async () => {
    ns.ip('link', 'set', 'up2', 'down');
    try {
      const r = rig({});
      const cap = await capture(['up1']);
      r.a.announce(target(), 'late_attach');
      await sleep(SCHEDULE_MS);
      expect((await cap.stop()).up1).toHaveLength(5);
      expect(await r.value('bridgewatch_rarp_send_errors_total', { bridge: 'br0' })).toBe(5);
      expect(await r.value('bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(5);
      expect(r.logs.filter((l) => l.msg === 'rarp send failed')).toHaveLength(5);
    } finally {
      ns.ip('link', 'set', 'up2', 'up');
    }
  });

  it('a first round that waits (the FDB repair) past the next offsets still goes first; the rest follow in order', async () => {
    const sentDuringRepair: number[] = [];
    const r: Rig = rig({
      uplinks: ['up1'],
      beforeFirstRound: async () => {
        await sleep(250); // past the offsets of rounds 2 (50 ms) and 3 (200 ms)
        sentDuringRepair.push(r.sent.length);
      },
    });
    const cap = await capture(['up1']);
    r.a.announce(target(), 'late_attach');
    await sleep(SCHEDULE_MS + 250);
    expect((await cap.stop()).up1).toHaveLength(5);
    expect(sentDuringRepair, 'frames sent before the repair finished').toEqual([0]);
    expect(r.sent.map((x) => x.detail.split(' via ')[0])).toEqual(['round 1', 'round 2', 'round 3', 'round 4', 'round 5']);
  });

  it('stop() cancels the rounds not sent yet', async () => {
    const r = rig({ uplinks: ['up1'] });
    const cap = await capture(['up1']);
    r.a.announce(target(), 'late_attach');
    await sleep(120); // rounds at 0 and 50 ms are out, 200 ms is not
    r.a.stop();
    await sleep(SCHEDULE_MS);
    expect((await cap.stop()).up1).toHaveLength(2);
  });

  describe("replaying the guest's own gARP/NA (target.replay)", () => {
    const M = macBytes(MAC);
    const garp = arp(M, 1, '192.0.2.10', '192.0.2.10').subarray(0, 42);
    const na = neighbour(M, 'fe80::5054:ff:fe12:3456');
    const replay = [
      { kind: 'garp' as const, tsNs: 1n, data: garp },
      { kind: 'na' as const, tsNs: 2n, data: na },
    ];
    /** every frame from the guest's MAC that reached each uplink's peer (the bridge's own IGMP is not ours) */
    async function all(names: string[]) {
      const caps = await Promise.all(names.map((n) => startCapture(ns.name, `${n}p`, join(dir, `rp-${n}-${Date.now()}.pcap`), ['ether', 'src', MAC], 'in')));
      return { stop: async () => Promise.all(caps.map(async (c) => (await c.stop()).packets.map((p) => hex(p.data)))) };
    }

    it('after the RARP in each round, on each uplink, as the guest sent them; the same tag as the RARP on a trunk', async () => {
      const pv = (pvid: number | undefined, ...vids: [number, boolean][]): PortVlans => ({ pvid, vids: new Map(vids) });
      const vlans = async () =>
        new Map([
          ['tap0', pv(100, [100, true])],
          ['up1', pv(1, [1, true], [100, false])],
          ['up2', pv(100, [100, true])],
        ]);
      const r = rig({ filtering: true, vlans, params: { rounds: 2 } });
      const cap = await all(['up1', 'up2']);
      r.a.announce({ ...target(), replay }, 'late_attach');
      await sleep(400);
      const [up1, up2] = await cap.stop();
      const tag = (b: Buffer) => hex(withVlanTag(b, 100));
      expect(up1).toEqual([tag(rarpFrame(MAC)), tag(garp), tag(na), tag(rarpFrame(MAC)), tag(garp), tag(na)]);
      expect(up2).toEqual([hex(rarpFrame(MAC)), hex(garp), hex(na), hex(rarpFrame(MAC)), hex(garp), hex(na)]);
      expect(await r.value('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' })).toBe(4);
      expect(await r.value('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'na' })).toBe(4);
      expect(r.replayed.slice(0, 4)).toEqual(['garp round 1 via up1 vlan 100 (late_attach)', 'na round 1 via up1 vlan 100 (late_attach)', 'garp round 1 via up2 (late_attach)', 'na round 1 via up2 (late_attach)']);
    });

    it('under the same rate cap as the RARPs: each replayed frame takes a token', async () => {
      const r = rig({ ratePerSec: 2, uplinks: ['up1'], params: { rounds: 1 } });
      const cap = await all(['up1']);
      r.a.announce({ ...target(), replay }, 'late_attach');
      await sleep(200);
      const [up1] = await cap.stop();
      expect(up1).toEqual([hex(rarpFrame(MAC)), hex(garp)]);
      expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'rate_limit' })).toBe(1);
      expect(await r.value('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'na' })).toBe(0);
    });

    it.each<[AnnounceMode, Decision]>([
      ['dry-run', { ok: false, reason: 'dry_run' }],
      ['off', { ok: false, reason: 'off' }],
    ])('--announce=%s replays nothing', async (mode, decision) => {
      const r = rig({ mode });
      const cap = await all(['up1', 'up2']);
      expect(r.a.announce({ ...target(), replay }, 'late_attach')).toEqual(decision);
      await sleep(300);
      expect(await cap.stop()).toEqual([[], []]);
      expect(await r.value('bridgewatch_announcements_replayed_total', { bridge: 'br0', kind: 'garp' })).toBe(0);
    });

    it('a conflict replays nothing', async () => {
      const r = rig({ conflicts: new Set([MAC]) });
      const cap = await all(['up1', 'up2']);
      expect(r.a.announce({ ...target(), replay }, 'late_attach')).toEqual({ ok: false, reason: 'conflict' });
      await sleep(200);
      expect(await cap.stop()).toEqual([[], []]);
    });
  });

  describe('VLANs (a vlan_filtering bridge: PVID 100 on the guest port)', () => {
    // tap0 PVID 100 untagged; trunk carries 100 tagged; access carries 100 untagged (its PVID);
    // other carries only 200
    const pv = (pvid: number | undefined, ...vids: [number, boolean][]): PortVlans => ({ pvid, vids: new Map(vids) });
    const table = (guest: PortVlans) =>
      new Map([
        ['tap0', guest],
        ['up1', pv(1, [1, true], [100, false])],
        ['up2', pv(100, [100, true])],
        ['br0', pv(1, [1, true])],
      ]);

    it('tagged 100 on a trunk, untagged where 100 is untagged, not sent where 100 is absent', async () => {
      const vlans = async () => table(pv(100, [100, true]));
      const noHundred = async () => {
        const m = await vlans();
        m.set('up2', { pvid: 200, vids: new Map([[200, false]]) });
        return m;
      };
      for (const [reader, want] of [
        [vlans, { up1: hex(withVlanTag(rarpFrame(MAC), 100)), up2: hex(rarpFrame(MAC)) }],
        [noHundred, { up1: hex(withVlanTag(rarpFrame(MAC), 100)), up2: null }],
      ] as const) {
        const r = rig({ filtering: true, vlans: reader, params: { rounds: 2 } });
        const cap = await capture(['up1', 'up2']);
        r.a.announce(target(), 'manual');
        await sleep(300);
        const got = await cap.stop();
        expect(got.up1.map((p) => hex(p.data))).toEqual([want.up1, want.up1]);
        expect(got.up2.map((p) => hex(p.data))).toEqual(want.up2 ? [want.up2, want.up2] : []);
        r.a.stop();
      }
    });

    it('sends nothing, and counts unknown_vlan, when the guest port has no PVID on a filtering bridge', async () => {
      const noPvid = async () => table(pv(undefined, [100, false]));
      const r = rig({ filtering: true, vlans: noPvid, params: { rounds: 2 } });
      const cap = await capture(['up1', 'up2']);
      r.a.announce(target(), 'manual');
      await sleep(300);
      const got = await cap.stop();
      expect([...got.up1, ...got.up2]).toEqual([]);
      expect(await r.value('bridgewatch_announce_suppressed_total', { reason: 'unknown_vlan' })).toBe(2);
      r.a.stop();
    });

    it('on a real vlan_filtering bridge, read from rtnetlink at each round', async (ctx) => {
      const probe = new TestNetns('annprobe');
      const supported = vlanFilteringSupported(probe.name);
      probe.delete();
      if (!supported) ctx.skip('kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)');

      const v = new TestNetns('annvlan');
      const tap = new Guest(v, 'tap0', macBytes(MAC));
      let vsock: PacketSocket | undefined;
      let nl: RtnlRequester | undefined;
      try {
        v.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'vlan_filtering', '1');
        v.ip('link', 'set', 'br0', 'up');
        const idx: Record<string, number> = {};
        for (const up of ['trunk', 'access', 'other']) {
          v.ip('link', 'add', up, 'type', 'veth', 'peer', 'name', `${up}p`);
          v.ip('link', 'set', up, 'master', 'br0');
          v.ip('link', 'set', up, 'up');
          v.ip('link', 'set', `${up}p`, 'up');
          idx[up] = v.ifindex(up);
        }
        v.ip('link', 'set', 'tap0', 'master', 'br0');
        v.tool('bridge', 'vlan', 'add', 'dev', 'tap0', 'vid', '100', 'pvid', 'untagged');
        v.tool('bridge', 'vlan', 'add', 'dev', 'trunk', 'vid', '100'); // tagged
        v.tool('bridge', 'vlan', 'add', 'dev', 'access', 'vid', '100', 'pvid', 'untagged');
        v.tool('bridge', 'vlan', 'del', 'dev', 'access', 'vid', '1');
        v.tool('bridge', 'vlan', 'add', 'dev', 'other', 'vid', '200');
        v.tool('bridge', 'vlan', 'del', 'dev', 'other', 'vid', '1');
        vsock = v.run(() => new PacketSocket());
        nl = v.run(() => {
          const r = new RtnlRequester();
          r.open(); // the namespace a socket is opened in is the one it reads
          return r;
        });
        const vnl = nl;

        const registry = new Registry();
        const metrics = new Metrics(registry, noSource, { version: 'test', kernel: 'test', mode: 'ebpf' }, 'on');
        const a = new Announcer({
          mode: 'on',
          params: ANNOUNCE_DEFAULTS,
          holdoffMs: 10_000,
          ratePerSec: 200,
          clock: systemClock,
          send: (i, f) => vsock!.send(i, f),
          uplinks: () => ['trunk', 'access', 'other'].map((name) => ({ ifindex: idx[name], name })),
          vlanFiltering: () => true,
          vlans: () => readBridgeVlans(vnl),
          activeElsewhere: () => [],
          metrics,
          log: { info: () => undefined, warn: () => undefined },
        });
        announcers.push(a);
        const caps = await Promise.all(['trunk', 'access', 'other'].map((n) => startCapture(v.name, `${n}p`, join(dir, `v-${n}.pcap`), [], 'in')));
        a.announce({ ifindex: tap.ifindex, port: 'tap0', bridge: 'br0', mac: MAC }, 'late_attach');
        // each round reads the table: wait for the 10 frames, not a fixed time
        const sent = async () => sampleValue(await registry.metrics(), 'bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' });
        for (const end = Date.now() + scaled(SCHEDULE_MS * 3); (await sent()) !== 10 && Date.now() < end; ) await sleep(20);
        await sleep(SCHEDULE_MS - announceOffsets(ANNOUNCE_DEFAULTS).at(-1)!); // the last frames reach the capture
        const [trunk, access, other] = await Promise.all(caps.map(async (c) => rarps((await c.stop()).packets)));
        expect(trunk.map((p) => hex(p.data))).toEqual(Array(5).fill(hex(withVlanTag(rarpFrame(MAC), 100))));
        expect(access.map((p) => hex(p.data))).toEqual(Array(5).fill(hex(rarpFrame(MAC))));
        expect(other).toEqual([]);
        expect(sampleValue(await registry.metrics(), 'bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'late_attach' })).toBe(10);
      } finally {
        nl?.close();
        vsock?.close();
        tap.close();
        v.delete();
      }
    });
  });
});
