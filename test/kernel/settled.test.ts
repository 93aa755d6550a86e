// The settled fast path: a data frame of a {port, MAC} already delivered on a forwarding port is
// only counted per CPU. The facts stay exact: counts (user space adds the per-CPU slots in),
// the first forwarded frame after an unforwarded one, the VLAN, and last_ns within a tick.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BR_STATES, settledSlot } from '../../src/bpf/abi.js';
import type { BpfCollection, LoadOptions } from '../../src/bpf/loader.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { cpuCount, onCpu } from '../helpers/cpu.js';
import { ipv4Frame, mac, qemuRarp, tagged } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { closeAllBpf, loadBpf, requires } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, waitFor } from '../helpers/netns.js';

const GUEST = mac('52:54:00:00:5e:01');
const TICK_MAX_NS = 10_000_000n; // one jiffy at HZ=100, the slowest tick Linux has
let guest: Guest | undefined;
afterEach(() => {
  closeAllBpf();
  guest?.close();
  guest = undefined;
  cleanupAll();
});

/** A namespace with tap0 a forwarding port of br0 (STP off), the program loaded (not attached). */
function world(opts: LoadOptions = {}) {
  const ns = new TestNetns('settle');
  ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  ns.ip('link', 'set', 'br0', 'up');
  const g = (guest = new Guest(ns, 'tap0', GUEST));
  ns.ip('link', 'set', 'tap0', 'master', 'br0');
  const bpf = loadBpf(ns, opts);
  // STP is off: the state is ours to set (the kernel takes disabled..forwarding, not blocking)
  const setState = (state: 'listening' | 'learning' | 'forwarding') => {
    ns.tool('bridge', 'link', 'set', 'dev', 'tap0', 'state', String(BR_STATES.indexOf(state)));
    expect(JSON.parse(ns.tool('bridge', '-j', 'link', 'show', 'dev', 'tap0'))[0]?.state).toBe(state);
    bpf.setPortState(g.ifindex, BR_STATES.indexOf(state)); // the statemap build's view; else a no-op
  };
  setState('forwarding');
  const run = (frame: Buffer, repeat = 1) => ns.run(() => bpf.testRun(frame, { ifindex: g.ifindex, repeat }));
  return { ns, g, bpf, setState, run };
}

const entry = (bpf: BpfCollection, g: Guest, m = GUEST) => bpf.mac(g.ifindex, m)!;

/** The cases every build must pass: kfunc (either way of reading the port state) and statemap. */
function settledCases(label: string, opts: () => LoadOptions, o = { tick: true }) {
  describe(label, () => {
    it('counts settled frames exactly, in macs() and mac(), without recording each', (ctx) => {
      requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
      const { bpf, g, run } = world(opts());
      const t0 = process.hrtime.bigint();
      run(ipv4Frame(GUEST)); // first frame: recorded, settles
      run(ipv4Frame(GUEST), 20_000);
      const t1 = process.hrtime.bigint();
      const s = bpf.stats();
      expect(s.settled).toBeGreaterThan(10_000); // all but one frame per tick
      expect(s.frames).toBe(20_001);
      const e = entry(bpf, g);
      expect(e).toMatchObject({ frames: 20_001, unfwdFrames: 0, kinds: { other: 20_001 } });
      expect(bpf.macs().find((x) => x.ifindex === g.ifindex)).toMatchObject({ frames: 20_001, kinds: { other: 20_001 } });
      if (o.tick) expect(e.lastNs).toBeGreaterThan(t1 - TICK_MAX_NS);
      expect(e.lastNs).toBeLessThan(t1);
      expect(e.firstFwdNs).toBe(e.firstNs);
      expect(e.firstNs).toBeGreaterThan(t0);
    });

    it('records the first forwarded frame after an unforwarded one, whichever CPU had the MAC settled', (ctx) => {
      requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
      if (cpuCount() < 2) ctx.skip('needs 2 CPUs: the MAC is settled on one, unforwarded on the other');
      const { bpf, g, run, setState } = world(opts());
      onCpu(0, () => run(ipv4Frame(GUEST), 1000)); // settled on CPU 0
      setState('learning');
      onCpu(1, () => run(ipv4Frame(GUEST)));
      const lost = entry(bpf, g);
      expect(lost).toMatchObject({ frames: 1001, unfwdFrames: 1 });
      setState('forwarding');
      const before = bpf.stats().settled;
      onCpu(0, () => run(ipv4Frame(GUEST)));
      const after = entry(bpf, g);
      expect(bpf.stats().settled).toBe(before); // recorded, not settled
      expect(after.lastNs).toBeGreaterThan(after.lastUnfwdNs); // the heal rule's "delivered since"
      expect(after).toMatchObject({ frames: 1002, unfwdFrames: 1 });
      onCpu(0, () => run(ipv4Frame(GUEST), 1000));
      expect(bpf.stats().settled).toBeGreaterThan(before); // settled again
    });

    it('while the port cannot forward, records every frame', (ctx) => {
      requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
      const { bpf, g, run, setState } = world(opts());
      run(ipv4Frame(GUEST), 100);
      setState('listening');
      run(ipv4Frame(GUEST), 500);
      const e = entry(bpf, g);
      expect(e).toMatchObject({ frames: 600, unfwdFrames: 500, unfwdKinds: { other: 500 } });
      expect(e.lastUnfwdNs).toBe(e.lastNs);
    });

    it('keeps the latest VLAN when another CPU saw the MAC on another one', (ctx) => {
      requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
      if (cpuCount() < 2) ctx.skip('needs 2 CPUs: one VLAN settled on each');
      const { bpf, g, run } = world(opts());
      const on = (vid: number) => tagged(ipv4Frame(GUEST), { tpid: 0x8100, vid });
      onCpu(0, () => run(on(10), 100));
      onCpu(1, () => run(on(20), 100));
      expect(entry(bpf, g).vlan).toBe(20);
      onCpu(0, () => run(on(10)));
      expect(entry(bpf, g)).toMatchObject({ vlan: 10, frames: 201 });
    });

    it('announcements are never settled', (ctx) => {
      requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
      const { bpf, g, run } = world(opts());
      run(ipv4Frame(GUEST), 100);
      const before = bpf.stats().settled;
      run(qemuRarp(GUEST), 10);
      expect(bpf.stats().settled).toBe(before);
      expect(entry(bpf, g)).toMatchObject({ frames: 110, kinds: { other: 100, rarp: 10 } });
    });
  });
}

settledCases('settled path, kfunc build', () => ({}));
settledCases('settled path, kfunc build reading the port state by probe read (the fallback)', () => ({ objectPath: variant('-DBW_BRIDGE_STATE_PROBE') }));
settledCases('settled path, statemap build', () => ({ portState: 'netlink' }));
// a new tick unsettles too, and setting a port state takes ms: here only the epoch can
settledCases('settled path, kfunc build without the tick', () => ({ objectPath: variant('-DBW_SETTLED_NO_TICK') }), { tick: false });
settledCases('settled path, statemap build without the tick', () => ({ statemapPath: variant('-DBW_SETTLED_NO_TICK', '-DBW_STATE_FROM_MAP'), portState: 'netlink' }), { tick: false });

describe('settled path, shared slots and real frames', () => {
  it('two MACs in one slot: the one pushed out hands its counts to its entry', (ctx) => {
    requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
    const { bpf, g, run } = world();
    const other = Buffer.from(GUEST);
    other[4] ^= 0x11;
    other[5] ^= 0x11; // mac[4] ^ mac[5] unchanged: the same slot
    expect(settledSlot(g.ifindex, other)).toBe(settledSlot(g.ifindex, GUEST));
    for (let i = 0; i < 5; i++) {
      run(ipv4Frame(GUEST), 200);
      run(ipv4Frame(other), 300);
    }
    expect(entry(bpf, g)).toMatchObject({ frames: 1000, kinds: { other: 1000 } });
    expect(entry(bpf, g, other)).toMatchObject({ frames: 1500, kinds: { other: 1500 } });
    expect(bpf.stats()).toMatchObject({ frames: 2500 });
    expect(bpf.stats().settled).toBeGreaterThan(2000);
  });

  it('frames a guest writes into a bridged tap take the settled path and are all counted', async (ctx) => {
    requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
    const { ns, bpf, g } = world();
    ns.run(() => bpf.attach(g.ifindex, 'tap0'));
    await waitFor('tap0 forwarding', () => JSON.parse(ns.tool('bridge', '-j', 'link', 'show', 'dev', 'tap0'))[0]?.state === 'forwarding');
    for (let i = 0; i < 2000; i++) g.send(ipv4Frame(GUEST));
    await waitFor('2000 frames', () => bpf.mac(g.ifindex, GUEST)?.frames === 2000);
    expect(bpf.stats().settled).toBeGreaterThan(1000);
    expect(bpf.stats().frames).toBe(2000);
  });
});

/** The object built with test-only defines (see bpf/port_state.bpf.h, bpf/settled.bpf.h). */
const buildDir = mkdtempSync(join(tmpdir(), 'bwt-build-'));
afterAll(() => rmSync(buildDir, { recursive: true, force: true }));
const built = new Map<string, string>();
function variant(...defines: string[]): string {
  const key = defines.join(' ');
  const have = built.get(key);
  if (have) return have;
  const out = join(buildDir, `variant-${built.size}.bpf.o`);
  const arch = execFileSync('uname', ['-m'], { encoding: 'utf8' }).trim();
  const src = join(PACKAGE_ROOT, 'bpf');
  execFileSync('clang', ['-g', '-O2', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`, `-I${src}`, ...defines,
    '-c', join(src, 'bridgewatch.bpf.c'), '-o', out], { stdio: 'pipe' });
  built.set(key, out);
  return out;
}
