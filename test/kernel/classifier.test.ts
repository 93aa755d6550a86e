// The classifier in the real kernel: BPF_PROG_TEST_RUN on the namespace's loopback (never a
// bridge port, so every frame is "not forwarding"), and a real tap for what test runs cannot do.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KINDS, STATE_NOT_BRIDGE_PORT, type Kind, type KindCounts } from '../../src/bpf/abi.js';
import type { BpfCollection } from '../../src/bpf/loader.js';
import { CLASSIFIER_CASES, garp, GUEST, na } from '../helpers/classifier-cases.js';
import { ipv4Frame, legacyRarp, mac, qemuRarp, tagged } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { closeAllBpf, events, loadBpf, requires } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, waitFor } from '../helpers/netns.js';

const LO = 1; // test runs happen on the namespace's loopback
const TC_ACT_UNSPEC = -1;

let ns: TestNetns;
beforeAll(() => {
  ns = new TestNetns('cls');
});
afterEach(() => closeAllBpf());
afterAll(() => {
  closeAllBpf();
  cleanupAll();
});

const counts = (k: Kind, n: number): KindCounts =>
  Object.fromEntries(KINDS.map((x) => [x, x === k ? n : 0])) as KindCounts;
const stats = (o: Partial<ReturnType<BpfCollection['stats']>>) => ({
  frames: 0,
  new_macs: 0,
  bad_source: 0,
  drop_rate_mac: 0,
  drop_rate_all: 0,
  drop_ringbuf: 0,
  insert_fail: 0,
  port_full: 0,
  settled: 0,
  ...o,
});

function run(bpf: BpfCollection, frame: Buffer) {
  const r = ns.run(() => bpf.testRun(frame));
  expect(r.retval).toBe(TC_ACT_UNSPEC); // observe only: never changes a packet's fate
  expect(r.dataOut.equals(frame)).toBe(true);
  return r;
}

const cases = CLASSIFIER_CASES;

describe('classifier (BPF_PROG_TEST_RUN on loopback)', () => {
  it("tests with QEMU's RARP byte for byte (net/announce.c)", () => {
    const hex = 'ffffffffffff' + '525400123456' + '8035' + '0001' + '0800' + '06' + '04' + '0003' +
      '525400123456' + '00000000' + '525400123456' + '00000000' + '00'.repeat(18);
    expect(qemuRarp(GUEST).toString('hex')).toBe(hex);
    expect(qemuRarp(GUEST)).toHaveLength(60);
  });

  it.for(cases)('$name -> $kind', (tc, ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns);
    const ev = events(bpf);
    const t0 = process.hrtime.bigint();
    run(bpf, tc.frame);
    run(bpf, tc.frame);
    const t1 = process.hrtime.bigint();

    const announce = tc.kind !== 'other';
    const e = bpf.mac(LO, GUEST);
    expect(e).toMatchObject({
      frames: 2,
      unfwdFrames: 2,
      firstFwdNs: 0n,
      kinds: counts(tc.kind, 2),
      unfwdKinds: counts(tc.kind, 2),
      vlan: tc.vlan ?? 0,
      firstState: STATE_NOT_BRIDGE_PORT,
    });
    expect(e!.firstNs).toBeGreaterThanOrEqual(t0);
    expect(e!.lastNs).toBeLessThanOrEqual(t1);
    expect(e!.lastUnfwdNs).toBe(e!.lastNs);
    expect(e!.lastAnnounceNs).toBe(announce ? e!.lastNs : 0n);
    expect(bpf.macs()).toHaveLength(1);
    expect(bpf.stats()).toEqual(stats({ frames: 2, new_macs: 1 }));

    // a first-frame event, then one per announcement
    const base = { ifindex: LO, mac: '52:54:00:12:34:56', kind: tc.kind, vlan: tc.vlan ?? 0, forwarding: false };
    const more = { bridgePort: false, portState: STATE_NOT_BRIDGE_PORT, len: tc.frame.length };
    expect(ev.poll()).toEqual(
      [{ ...base, ...more, first: true }, ...(announce ? [{ ...base, ...more, first: false }] : [])].map((x) =>
        expect.objectContaining(x),
      ),
    );
    expect(ev.list[0].tsNs).toBe(e!.firstNs);
  });

  it('rejects frames of 0-13 bytes (EINVAL) and records nothing', (ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns);
    const ev = events(bpf);
    const rarp = qemuRarp(GUEST);
    for (let n = 0; n < 14; n++) {
      expect(() => ns.run(() => bpf.testRun(rarp.subarray(0, n)))).toThrow(
        expect.objectContaining({ errno: 22, message: `test run tc_ingress on ${n}-byte frame: Invalid argument` }),
      );
    }
    expect(bpf.macs()).toEqual([]);
    expect(bpf.stats()).toEqual(stats({}));
    expect(ev.poll()).toEqual([]);
  });

  it('ignores group and zero source MACs, counting them as bad_source', (ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns);
    const ev = events(bpf);
    run(bpf, qemuRarp(mac('01:00:5e:00:00:01')));
    run(bpf, qemuRarp(mac('33:33:00:00:00:01')));
    run(bpf, qemuRarp(mac('00:00:00:00:00:00')));
    expect(bpf.macs()).toEqual([]);
    expect(bpf.stats()).toEqual(stats({ frames: 3, bad_source: 3 }));
    expect(ev.poll()).toEqual([]);
  });

  it('emits a first-frame event and one per announcement, in order', (ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns);
    const ev = events(bpf);
    const seq = [ipv4Frame(GUEST), qemuRarp(GUEST), ipv4Frame(GUEST), garp, na, legacyRarp(GUEST), ipv4Frame(GUEST)];
    for (const f of seq) run(bpf, f);
    const got = ev.poll();
    expect(got.map((x) => [x.kind, x.first, x.forwarding, x.len])).toEqual([
      ['other', true, false, 60],
      ['rarp', false, false, 60],
      ['garp', false, false, 60],
      ['na', false, false, na.length],
      ['legacy', false, false, 60],
    ]);
    expect(got.map((x) => x.tsNs)).toEqual([...got.map((x) => x.tsNs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const e = bpf.mac(LO, GUEST)!;
    expect(e.frames).toBe(7);
    expect(e.kinds).toEqual({ other: 3, rarp: 1, garp: 1, na: 1, legacy: 1 });
    expect(e.lastAnnounceNs).toBe(got[4].tsNs);
    expect(bpf.stats()).toEqual(stats({ frames: 7, new_macs: 1 }));
  });

  it('rate-limits events per {port, MAC}: 10 announcements with eventsPerMac 4 give 4 events', (ctx) => {
    requires(ctx, 'bpf');
    // a long window so a slow machine cannot start a fresh one mid-test
    const bpf = loadBpf(ns, { tunables: { eventsPerMac: 4, eventWindowMs: 60_000 } });
    const ev = events(bpf);
    for (let i = 0; i < 10; i++) run(bpf, qemuRarp(GUEST));
    expect(ev.poll().map((x) => [x.kind, x.first])).toEqual([
      ['rarp', true],
      ['rarp', false],
      ['rarp', false],
      ['rarp', false],
    ]);
    expect(bpf.stats()).toEqual(stats({ frames: 10, new_macs: 1, drop_rate_mac: 6 }));
    expect(bpf.mac(LO, GUEST)!.kinds.rarp).toBe(10); // counting is never limited

    // the limit is per MAC: another guest still gets its event
    const other = mac('52:54:00:ab:cd:ef');
    run(bpf, qemuRarp(other));
    expect(ev.poll().slice(4).map((x) => [x.mac, x.first])).toEqual([['52:54:00:ab:cd:ef', true]]);
    expect(bpf.stats()).toEqual(stats({ frames: 11, new_macs: 2, drop_rate_mac: 6 }));
  });
});

describe('classifier on a real tap ingress', () => {
  let guest: Guest | undefined;
  afterEach(() => {
    closeAllBpf();
    guest?.close();
    guest = undefined;
  });

  it('counts a 9000-byte jumbo frame (larger than BPF_PROG_TEST_RUN accepts)', async (ctx) => {
    requires(ctx, 'bpf', 'tun');
    const bpf = loadBpf(ns);
    const ev = events(bpf);
    guest = new Guest(ns, 'tapjumbo', GUEST, { mtu: 9000 });
    const g = guest;
    ns.run(() => bpf.attach(g.ifindex, g.tapName));
    const jumbo = Buffer.concat([qemuRarp(GUEST), Buffer.alloc(9000 - 60)]);
    g.send(jumbo);
    await waitFor('the jumbo frame in bw_port_macs', () => bpf.mac(g.ifindex, GUEST)?.frames === 1);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ frames: 1, unfwdFrames: 1, kinds: counts('rarp', 1), vlan: 0 });
    expect(ev.poll()).toEqual([expect.objectContaining({ ifindex: g.ifindex, kind: 'rarp', first: true, len: 9000 })]);
    expect(bpf.stats()).toEqual(stats({ frames: 1, new_macs: 1 }));
  });

  it('classifies untagged frames with a cut IPv6 or ARP header as other', async (ctx) => {
    requires(ctx, 'bpf', 'tun');
    const bpf = loadBpf(ns);
    guest = new Guest(ns, 'tapcut', GUEST);
    const g = guest;
    ns.run(() => bpf.attach(g.ifindex, g.tapName));
    g.send(na.subarray(0, 40), na.subarray(0, 54), garp.subarray(0, 41), na.subarray(0, 55));
    await waitFor('four frames in bw_port_macs', () => bpf.mac(g.ifindex, GUEST)?.frames === 4);
    expect(bpf.mac(g.ifindex, GUEST)!.kinds).toEqual({ other: 3, rarp: 0, garp: 0, na: 1, legacy: 0 });
  });

  it('records the VLAN of a tagged RARP the kernel has already untagged into skb metadata', async (ctx) => {
    requires(ctx, 'bpf', 'tun');
    const bpf = loadBpf(ns);
    const ev = events(bpf);
    guest = new Guest(ns, 'tapvlan', GUEST);
    const g = guest;
    ns.run(() => bpf.attach(g.ifindex, g.tapName));
    g.send(tagged(qemuRarp(GUEST), { tpid: 0x8100, vid: 42 }));
    g.send(tagged(garp, { tpid: 0x88a8, vid: 100 }, { tpid: 0x8100, vid: 200 }));
    await waitFor('two frames in bw_port_macs', () => bpf.mac(g.ifindex, GUEST)?.frames === 2);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ kinds: { other: 0, rarp: 1, garp: 1, na: 0, legacy: 0 }, vlan: 100 });
    expect(ev.poll().map((x) => [x.kind, x.vlan])).toEqual([
      ['rarp', 42],
      ['garp', 100],
    ]);
  });
});
