// The kernel keeps the bytes of a gratuitous ARP or unsolicited NA that its port could not
// forward (ring bw_frames), under the event limits, and nothing else: both builds, test runs on
// the namespace's loopback (never a bridge port) and a real tap in a forwarding bridge.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FRAME_BYTES, type BpfFrame } from '../../src/bpf/abi.js';
import { KeptFrameReader } from '../../src/bpf/kept.js';
import type { BpfCollection } from '../../src/bpf/loader.js';
import { garp, GUEST, na } from '../helpers/classifier-cases.js';
import { arp, ipv4Frame, mac, neighbour, pad60, qemuRarp, tagged } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { closeAllBpf, loadBpf, requires, type Feature } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, waitFor } from '../helpers/netns.js';

const LO = 1;
let ns: TestNetns;
const readers: KeptFrameReader[] = [];

beforeAll(() => {
  ns = new TestNetns('kept');
});
afterEach(() => {
  for (const r of readers.splice(0)) r.stop();
  closeAllBpf();
});
afterAll(() => {
  closeAllBpf();
  cleanupAll();
});

/** Kept frames of bpf, drained when the test says so. */
function kept(bpf: BpfCollection): { poll: () => BpfFrame[] } {
  const list: BpfFrame[] = [];
  const r = new KeptFrameReader(bpf.frameMaps.frames, { onFrame: (f) => list.push(f), intervalMs: 3_600_000 });
  r.start();
  readers.push(r);
  return { poll: () => (r.poll(), list) };
}

const run = (bpf: BpfCollection, frame: Buffer) => ns.run(() => bpf.testRun(frame));
const builds: [string, 'kernel' | 'netlink', Feature][] = [
  ['kfunc build', 'kernel', 'kfunc'],
  ['statemap build', 'netlink', 'statemap'],
];

describe.each(builds)('%s: bw_frames', (_name, portState, feature) => {
  it('keeps a gARP and an NA seen while not forwarding, byte for byte; not a RARP, an ordinary ARP or IPv4', (ctx) => {
    requires(ctx, 'bpf', feature);
    const bpf = loadBpf(ns, { portState });
    const k = kept(bpf);
    const t0 = process.hrtime.bigint();
    for (const f of [qemuRarp(GUEST), ipv4Frame(GUEST), arp(GUEST, 1, '192.0.2.10', '192.0.2.1'), garp, na]) run(bpf, f);
    const got = k.poll();
    expect(got.map((f) => [f.kind, f.len, f.data.toString('hex')])).toEqual([
      ['garp', garp.length, garp.toString('hex')],
      ['na', na.length, na.toString('hex')],
    ]);
    for (const f of got) expect(f).toMatchObject({ ifindex: LO, mac: '52:54:00:12:34:56', vlan: 0 });
    expect(got[0].tsNs).toBeGreaterThanOrEqual(t0);
    expect(bpf.mac(LO, GUEST)!.lastAnnounceNs).toBe(got[1].tsNs); // the same instant as its event
    expect(bpf.frameStats()).toEqual({ kept: 2, drop_ringbuf: 0, drop_event: 0, load_fail: 0 });
  });

  it(`keeps at most the first ${FRAME_BYTES} bytes, and says how long the frame was`, (ctx) => {
    requires(ctx, 'bpf', feature);
    const bpf = loadBpf(ns, { portState });
    const k = kept(bpf);
    const long = Buffer.concat([garp, Buffer.alloc(300 - garp.length, 0xab)]);
    const exact = Buffer.concat([garp, Buffer.alloc(FRAME_BYTES - garp.length, 0xcd)]);
    const short = garp.subarray(0, 42); // unpadded, as a guest's stack writes it to virtio
    for (const f of [long, exact, short]) run(bpf, f);
    expect(k.poll().map((f) => [f.len, f.data.toString('hex')])).toEqual([
      [300, long.subarray(0, FRAME_BYTES).toString('hex')],
      [FRAME_BYTES, exact.toString('hex')],
      [42, short.toString('hex')],
    ]);
  });

  it('records the outer VLAN of a tagged announcement (user space refuses to replay it)', (ctx) => {
    requires(ctx, 'bpf', feature);
    const bpf = loadBpf(ns, { portState });
    const k = kept(bpf);
    const t = tagged(garp, { tpid: 0x8100, vid: 42 });
    run(bpf, t);
    expect(k.poll().map((f) => [f.vlan, f.data.toString('hex')])).toEqual([[42, t.toString('hex')]]);
  });

  it('under the per-{port, MAC} event limit: 6 gARPs with eventsPerMac 3 keep 3, the other 3 counted', (ctx) => {
    requires(ctx, 'bpf', feature);
    const bpf = loadBpf(ns, { portState, tunables: { eventsPerMac: 3, eventWindowMs: 60_000 } });
    const k = kept(bpf);
    for (let i = 0; i < 6; i++) run(bpf, garp);
    expect(k.poll()).toHaveLength(3);
    expect(bpf.frameStats()).toEqual({ kept: 3, drop_ringbuf: 0, drop_event: 3, load_fail: 0 });
    expect(bpf.stats().drop_rate_mac).toBe(3);
    // another MAC is not held back
    run(bpf, arp(mac('52:54:00:ab:cd:ef'), 1, '192.0.2.11', '192.0.2.11'));
    expect(k.poll().map((f) => f.mac)).toContain('52:54:00:ab:cd:ef');
  });
});

describe('bw_frames on a real tap', () => {
  let guest: Guest | undefined;
  afterEach(() => {
    guest?.close();
    guest = undefined;
  });

  it('keeps nothing while the port forwards; keeps the announcement while it is in no bridge', async (ctx) => {
    requires(ctx, 'bpf', 'tun', 'bridge');
    const bpf = loadBpf(ns);
    const k = kept(bpf);
    ns.ip('link', 'add', 'brk', 'type', 'bridge', 'stp_state', '0');
    ns.ip('link', 'set', 'brk', 'up');
    guest = new Guest(ns, 'tapk', GUEST);
    const g = guest;
    ns.run(() => bpf.attach(g.ifindex, g.tapName));
    const lost = neighbour(GUEST, 'fe80::5054:ff:fe12:3456');
    g.send(pad60(lost));
    await waitFor('the lost NA recorded', () => bpf.mac(g.ifindex, GUEST)?.kinds.na === 1);
    ns.ip('link', 'set', 'tapk', 'master', 'brk');
    if (bpf.portState === 'netlink') bpf.setPortState(g.ifindex, 3);
    await waitFor('the port forwarding', () => ns.ip('-d', '-j', 'link', 'show', 'tapk').includes('"forwarding"') || bpf.portState === 'netlink');
    await new Promise((r) => setTimeout(r, 50));
    g.send(garp, na);
    await waitFor('both forwarded', () => bpf.mac(g.ifindex, GUEST)?.kinds.na === 2 && bpf.mac(g.ifindex, GUEST)?.kinds.garp === 1);
    expect(bpf.mac(g.ifindex, GUEST)!.unfwdKinds).toMatchObject({ na: 1, garp: 0 });
    expect(k.poll().map((f) => [f.ifindex, f.kind, f.data.toString('hex')])).toEqual([[g.ifindex, 'na', pad60(lost).toString('hex')]]);
    ns.ip('link', 'del', 'brk');
  });
});
