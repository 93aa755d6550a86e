// Forwarding truth: the kernel, not timing, says whether a tap was a forwarding bridge port when
// each frame arrived. A guest simulator writes frames into a real tap in a namespace. The kernel
// build reads the port's state at each frame (6.3+); the statemap build (older kernels) reads what
// the port watcher last wrote, as the daemon feeds it.
import { afterEach, describe, expect, it } from 'vitest';
import { BR_STATES, STATE_NOT_BRIDGE_PORT } from '../../src/bpf/abi.js';
import type { BpfCollection } from '../../src/bpf/loader.js';
import { defaultRules } from '../../src/ports/match.js';
import type { PortEvent } from '../../src/ports/types.js';
import { PortWatcher } from '../../src/ports/watcher.js';
import { arp, ipv4Frame, mac, qemuRarp } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { closeAllBpf, events, loadBpf, requires } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, waitFor } from '../helpers/netns.js';
import { startIn } from '../helpers/watch-env.js';

const GUEST = mac('52:54:00:00:00:01');
const ID = '52:54:00:00:00:01';
const FORWARDING = BR_STATES.indexOf('forwarding');
const LISTENING = BR_STATES.indexOf('listening');
const LEARNING = BR_STATES.indexOf('learning');

let guest: Guest | undefined;
const watchers: PortWatcher[] = [];
afterEach(() => {
  for (const w of watchers.splice(0)) w.stop();
  closeAllBpf();
  guest?.close(); // before the namespace goes: an open tap fd keeps it alive unseen
  guest = undefined;
  cleanupAll();
});

/** A namespace with bridge br0 (up, with `opts`), a guest on tap0 (not yet a port), bpf attached. */
function setup(bridgeOpts: string[], portState: 'kernel' | 'netlink' = 'kernel'): { ns: TestNetns; g: Guest; bpf: BpfCollection } {
  const ns = new TestNetns('fwd');
  ns.ip('link', 'add', 'br0', 'type', 'bridge', ...bridgeOpts);
  ns.ip('link', 'set', 'br0', 'up');
  const g = (guest = new Guest(ns, 'tap0', GUEST));
  const bpf = loadBpf(ns, { portState });
  expect(bpf.portState).toBe(portState);
  ns.run(() => bpf.attach(g.ifindex, 'tap0'));
  return { ns, g, bpf };
}

/**
 * The statemap build's source of truth: a real port watcher in `ns` writing each port event's
 * state into the program's map, by the daemon's rule. Returns the states written, in order.
 */
async function feedFromNetlink(ns: TestNetns, bpf: BpfCollection): Promise<(number | null)[]> {
  const written: (number | null)[] = [];
  const w = new PortWatcher({ rules: defaultRules() });
  watchers.push(w);
  w.on('port', (ev: PortEvent) => {
    const gone = ev.type === 'deleted' || ev.type === 'unwatched';
    const state = gone || !ev.link.bridged || !ev.link.state ? null : BR_STATES.indexOf(ev.link.state);
    bpf.setPortState(ev.ifindex, state);
    written.push(state);
  });
  await startIn(ns.name, w);
  return written;
}

/** The port state as the bridge reports it (`bridge link show`), or undefined when not a port. */
function portState(ns: TestNetns): string | undefined {
  const links = JSON.parse(ns.tool('bridge', '-j', 'link', 'show', 'dev', 'tap0') || '[]') as { state?: string }[];
  return links[0]?.state;
}

/** Send frames while the port is in `state`, and prove it stayed there throughout. */
function sendIn(ns: TestNetns, g: Guest, state: string, frames: Buffer[]): void {
  expect(portState(ns)).toBe(state);
  g.send(...frames);
  expect(portState(ns), `port left ${state} while sending; the counts below would be wrong`).toBe(state);
}

const waitState = (ns: TestNetns, state: string, ms = 10_000) => waitFor(`tap0 ${state}`, () => portState(ns) === state, ms);
const waitFrames = (bpf: BpfCollection, g: Guest, n: number) =>
  waitFor(`${n} frames from ${ID}`, () => bpf.mac(g.ifindex, GUEST)?.frames === n);

describe('forwarding truth on a real bridge (the kernel build reads skb->dev)', () => {
  it('counts frames before the tap joins as not forwarding, after it joins (STP off) as forwarding', async (ctx) => {
    requires(ctx, 'kfunc', 'tun', 'bridge', 'bridgeBtf');
    const { ns, g, bpf } = setup(['stp_state', '0', 'forward_delay', '0']);
    const ev = events(bpf);

    expect(portState(ns)).toBeUndefined();
    g.announce(2);
    g.send(ipv4Frame(GUEST));
    await waitFrames(bpf, g, 3);
    const before = bpf.mac(g.ifindex, GUEST)!;
    expect(before).toMatchObject({ frames: 3, unfwdFrames: 3, firstFwdNs: 0n, firstState: STATE_NOT_BRIDGE_PORT });

    const joined = process.hrtime.bigint();
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    await waitState(ns, 'forwarding', 2_000);
    sendIn(ns, g, 'forwarding', [arp(GUEST, 1, '192.0.2.10', '192.0.2.10'), ipv4Frame(GUEST), ipv4Frame(GUEST)]);
    await waitFrames(bpf, g, 6);

    const after = bpf.mac(g.ifindex, GUEST)!;
    expect(after).toMatchObject({
      frames: 6,
      unfwdFrames: 3,
      kinds: { other: 3, rarp: 2, garp: 1, na: 0, legacy: 0 },
      unfwdKinds: { other: 1, rarp: 2, garp: 0, na: 0, legacy: 0 },
      lastUnfwdNs: before.lastUnfwdNs,
      firstState: STATE_NOT_BRIDGE_PORT,
    });
    expect(after.firstFwdNs).toBeGreaterThan(joined);
    expect(after.firstFwdNs).toBeGreaterThan(after.lastUnfwdNs);

    expect(ev.poll().map((e) => [e.kind, e.first, e.forwarding, e.bridgePort, e.portState])).toEqual([
      ['rarp', true, false, false, STATE_NOT_BRIDGE_PORT],
      ['rarp', false, false, false, STATE_NOT_BRIDGE_PORT],
      ['garp', false, true, true, FORWARDING],
    ]);
  });

  it('counts a port of a bridge that is down (disabled) as not forwarding', async (ctx) => {
    requires(ctx, 'kfunc', 'tun', 'bridge', 'bridgeBtf');
    const { ns, g, bpf } = setup(['stp_state', '0', 'forward_delay', '0']);
    ns.ip('link', 'set', 'br0', 'down');
    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    sendIn(ns, g, 'disabled', [ipv4Frame(GUEST)]);
    g.announce();
    await waitFrames(bpf, g, 2);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ frames: 2, unfwdFrames: 2, firstFwdNs: 0n, firstState: 0 });
  });

  it('with STP and forward_delay 2 s, counts listening and learning as not forwarding', async (ctx) => {
    requires(ctx, 'kfunc', 'tun', 'bridge', 'bridgeBtf');
    // forward_delay is in centiseconds: 200 = 2 s in listening, then 2 s in learning
    const { ns, g, bpf } = setup(['stp_state', '1', 'forward_delay', '200']);
    const ev = events(bpf);
    ns.ip('link', 'set', 'tap0', 'master', 'br0');

    sendIn(ns, g, 'listening', [qemuRarp(GUEST), ipv4Frame(GUEST)]);
    await waitState(ns, 'learning');
    sendIn(ns, g, 'learning', [qemuRarp(GUEST), ipv4Frame(GUEST), ipv4Frame(GUEST)]);
    await waitFrames(bpf, g, 5);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ frames: 5, unfwdFrames: 5, firstFwdNs: 0n, firstState: LISTENING });

    await waitState(ns, 'forwarding');
    sendIn(ns, g, 'forwarding', [qemuRarp(GUEST), ipv4Frame(GUEST)]);
    await waitFrames(bpf, g, 7);
    const e = bpf.mac(g.ifindex, GUEST)!;
    expect(e).toMatchObject({
      frames: 7,
      unfwdFrames: 5,
      kinds: { other: 4, rarp: 3, garp: 0, na: 0, legacy: 0 },
      unfwdKinds: { other: 3, rarp: 2, garp: 0, na: 0, legacy: 0 },
    });
    expect(e.firstFwdNs).toBeGreaterThan(e.lastUnfwdNs);
    expect(ev.poll().map((x) => [x.kind, x.first, x.forwarding, x.portState])).toEqual([
      ['rarp', true, false, LISTENING],
      ['rarp', false, false, LEARNING],
      ['rarp', false, true, FORWARDING],
    ]);
  });
});

describe('forwarding from rtnetlink on a real bridge (the statemap build, kernels before 6.3)', () => {
  const wrote = (w: (number | null)[], state: number) => waitFor(`the watcher wrote state ${BR_STATES[state]}`, () => w.at(-1) === state);

  it('before the join not forwarding; once the watcher wrote forwarding, forwarding', async (ctx) => {
    requires(ctx, 'statemap', 'tun', 'bridge');
    const { ns, g, bpf } = setup(['stp_state', '0', 'forward_delay', '0'], 'netlink');
    const written = await feedFromNetlink(ns, bpf);
    const ev = events(bpf);

    g.announce(2);
    g.send(ipv4Frame(GUEST));
    await waitFrames(bpf, g, 3);
    const before = bpf.mac(g.ifindex, GUEST)!;
    expect(before).toMatchObject({ frames: 3, unfwdFrames: 3, firstFwdNs: 0n, firstState: STATE_NOT_BRIDGE_PORT });

    ns.ip('link', 'set', 'tap0', 'master', 'br0');
    await wrote(written, FORWARDING);
    const told = process.hrtime.bigint();
    sendIn(ns, g, 'forwarding', [arp(GUEST, 1, '192.0.2.10', '192.0.2.10'), ipv4Frame(GUEST)]);
    await waitFrames(bpf, g, 5);
    const after = bpf.mac(g.ifindex, GUEST)!;
    expect(after).toMatchObject({ frames: 5, unfwdFrames: 3, lastUnfwdNs: before.lastUnfwdNs });
    expect(after.firstFwdNs).toBeGreaterThan(told);
    expect(ev.poll().map((e) => [e.kind, e.first, e.forwarding, e.portState])).toEqual([
      ['rarp', true, false, STATE_NOT_BRIDGE_PORT],
      ['rarp', false, false, STATE_NOT_BRIDGE_PORT],
      ['garp', false, true, FORWARDING],
    ]);

    ns.ip('link', 'set', 'tap0', 'nomaster');
    await waitFor('the watcher wrote "not a bridge port"', () => written.at(-1) === null);
    g.announce();
    await waitFrames(bpf, g, 6);
    expect(bpf.mac(g.ifindex, GUEST)!.unfwdFrames).toBe(4);
  });

  it('with STP and forward_delay 2 s, listening and learning as written by the watcher count as not forwarding', async (ctx) => {
    requires(ctx, 'statemap', 'tun', 'bridge');
    const { ns, g, bpf } = setup(['stp_state', '1', 'forward_delay', '200'], 'netlink');
    const written = await feedFromNetlink(ns, bpf);
    const ev = events(bpf);
    ns.ip('link', 'set', 'tap0', 'master', 'br0');

    await wrote(written, LISTENING);
    sendIn(ns, g, 'listening', [qemuRarp(GUEST)]);
    await waitState(ns, 'learning');
    await wrote(written, LEARNING);
    sendIn(ns, g, 'learning', [qemuRarp(GUEST), ipv4Frame(GUEST)]);
    await waitFrames(bpf, g, 3);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ frames: 3, unfwdFrames: 3, firstFwdNs: 0n, firstState: LISTENING });

    await waitState(ns, 'forwarding');
    await wrote(written, FORWARDING);
    sendIn(ns, g, 'forwarding', [qemuRarp(GUEST)]);
    await waitFrames(bpf, g, 4);
    expect(bpf.mac(g.ifindex, GUEST)).toMatchObject({ frames: 4, unfwdFrames: 3 });
    expect(ev.poll().map((x) => [x.kind, x.forwarding, x.portState])).toEqual([
      ['rarp', false, LISTENING],
      ['rarp', false, LEARNING],
      ['rarp', true, FORWARDING],
    ]);
  });
});
