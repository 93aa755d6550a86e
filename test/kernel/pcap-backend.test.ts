// The libpcap fallback on real taps in a namespace of our own (bwt-pcap-*): a guest simulator
// writes frames into the tap, the backend captures them, and where BPF is available the kernel
// program on the same tap is the reference for counts, kinds, VLANs, lengths and times.
// portState plays the port watcher: the test sets what user space "knows", after the fact.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { BR_STATES, STATE_NOT_BRIDGE_PORT, STATS, type BpfEvent, type StatName } from '../../src/bpf/abi.js';
import type { BpfCollection } from '../../src/bpf/loader.js';
import { PcapBackend, type PcapBackendOptions } from '../../src/capture/pcap-backend.js';
import { Tap } from '../../src/sys/tun.js';
import { arp, ether, ipv4Frame, mac, qemuRarp, tagged } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { closeAllBpf, events as bpfEvents, loadBpf, requires } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, waitFor } from '../helpers/netns.js';

const GUEST = mac('52:54:00:00:00:01');
const OTHER = mac('52:54:00:00:00:02');
const FORWARDING = BR_STATES.indexOf('forwarding');
const NONE = STATE_NOT_BRIDGE_PORT;
const MS = 1_000_000n;

const backends = new Set<PcapBackend>();
const taps = new Set<{ close(): void }>();
afterEach(() => {
  for (const b of backends) b.close();
  backends.clear();
  closeAllBpf();
  for (const t of taps) t.close(); // before the namespace goes: an open tap fd keeps it alive
  taps.clear();
  cleanupAll();
});

const stats = (o: Partial<Record<StatName, number>> = {}) => ({ ...Object.fromEntries(STATS.map((s) => [s, 0])), ...o });
const fdCount = () => readdirSync('/proc/self/fd').length;
/** Packet sockets open in the namespace, as the kernel lists them. */
const packetSockets = (ns: TestNetns) =>
  execFileSync('ip', ['netns', 'exec', ns.name, 'cat', '/proc/net/packet'], { encoding: 'utf8' }).trim().split('\n').length - 1;
const bridgeState = (ns: TestNetns, dev: string): string | undefined =>
  (JSON.parse(ns.tool('bridge', '-j', 'link', 'show', 'dev', dev) || '[]') as { state?: string }[])[0]?.state;

interface World {
  ns: TestNetns;
  g: Guest;
  pcap: PcapBackend;
  events: BpfEvent[];
  /** what the port watcher would know; the backend asks through portState */
  known: { state: string | null };
}

/** Namespace, bridge br0 (STP off, forward delay 0), guest on tap0 (up, unbridged), backend attached. */
function world(opts: Partial<PcapBackendOptions> = {}): World {
  const ns = new TestNetns('pcap');
  ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  ns.ip('link', 'set', 'br0', 'up');
  const g = guest(ns, 'tap0', GUEST);
  const known = { state: null as string | null };
  const pcap = backend({ portState: () => known.state, ...opts });
  const events: BpfEvent[] = [];
  pcap.startEvents((e) => events.push(e), () => {});
  expect(ns.run(() => pcap.attach(g.ifindex, 'tap0'))).toEqual({ ifindex: g.ifindex, ifname: 'tap0', mode: 'pcap' });
  return { ns, g, pcap, events, known };
}

function guest(ns: TestNetns, name: string, m: Buffer, o: { mtu?: number } = {}): Guest {
  const g = new Guest(ns, name, m, o);
  taps.add(g);
  return g;
}

function backend(o: Partial<PcapBackendOptions> = {}): PcapBackend {
  // tests read explicitly (poll/mac/macs), as the daemon does on every netlink fact
  const b = new PcapBackend({ maxMacs: 1024, portState: () => null, intervalMs: 3_600_000, ...o });
  backends.add(b);
  return b;
}

/** The kernel program on the same device (tests that use it require 'bpf' and 'bridgeBtf'). */
function reference(w: World, dev = 'tap0'): { bpf: BpfCollection; poll: () => BpfEvent[] } {
  const bpf = loadBpf(w.ns, { portState: 'kernel' }); // the kernel's own port state is the reference
  const ev = bpfEvents(bpf);
  w.ns.run(() => bpf.attach(w.ns.ifindex(dev), dev));
  return { bpf, poll: ev.poll };
}

const waitFrames = (pcap: PcapBackend, ifindex: number, m: Buffer, n: number) =>
  waitFor(`${n} frames captured`, () => pcap.mac(ifindex, m)?.frames === n);

async function joinForwarding(w: World): Promise<bigint> {
  const joined = process.hrtime.bigint();
  w.ns.ip('link', 'set', 'tap0', 'master', 'br0');
  await waitFor('tap0 forwarding', () => bridgeState(w.ns, 'tap0') === 'forwarding', 2_000);
  return joined;
}

describe('pcap backend on a real tap and bridge', () => {
  /** Two RARPs and a frame before the join, a gARP and two frames after it (STP off), read as the daemon reads them. */
  async function beforeAndAfterJoin(w: World) {
    const t0 = process.hrtime.bigint();
    w.g.announce(2);
    w.g.send(ipv4Frame(GUEST));
    await waitFrames(w.pcap, w.g.ifindex, GUEST, 3);
    const before = w.pcap.mac(w.g.ifindex, GUEST)!;
    const joined = await joinForwarding(w);
    w.known.state = 'forwarding'; // the watcher applied the netlink fact...
    w.pcap.poll(); // ...and the daemon reads the captures first
    w.g.send(arp(GUEST, 1, '192.0.2.10', '192.0.2.10'), ipv4Frame(GUEST), ipv4Frame(GUEST));
    await waitFrames(w.pcap, w.g.ifindex, GUEST, 6);
    const t1 = process.hrtime.bigint();
    w.pcap.poll();
    return { t0, before, joined, t1, after: w.pcap.mac(w.g.ifindex, GUEST)! };
  }

  it('counts frames before the tap joins as not forwarding, after it joins (STP off) as forwarding', async (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world();
    const { t0, before, joined, t1, after } = await beforeAndAfterJoin(w);
    expect(before).toMatchObject({ frames: 3, unfwdFrames: 3, firstFwdNs: 0n, firstState: NONE });
    expect(after).toMatchObject({
      frames: 6,
      unfwdFrames: 3,
      kinds: { other: 3, rarp: 2, garp: 1, na: 0, legacy: 0 },
      unfwdKinds: { other: 1, rarp: 2, garp: 0, na: 0, legacy: 0 },
      lastUnfwdNs: before.lastUnfwdNs,
      firstState: NONE,
      vlan: 0,
    });
    expect(after.firstNs).toBeGreaterThan(t0);
    expect(after.lastNs).toBeLessThan(t1);
    expect(after.firstFwdNs).toBeGreaterThan(joined);
    expect(after.firstFwdNs).toBeGreaterThan(after.lastUnfwdNs);
    expect(w.events.map((e) => [e.kind, e.first, e.forwarding, e.bridgePort, e.portState, e.len])).toEqual([
      ['rarp', true, false, false, NONE, 60],
      ['rarp', false, false, false, NONE, 60],
      ['garp', false, true, true, FORWARDING, 60],
    ]);
    expect(w.events[0].tsNs).toBe(after.firstNs);
    expect(w.events[2].tsNs).toBe(after.firstFwdNs);
    expect(w.pcap.stats()).toEqual(stats({ frames: 6, new_macs: 1 }));
  });

  it('records what the kernel program on the same tap records for those frames, times within a millisecond', async (ctx) => {
    requires(ctx, 'tun', 'bridge', 'kfunc', 'bridgeBtf');
    const w = world();
    const ref = reference(w);
    const { after } = await beforeAndAfterJoin(w);
    const k = ref.bpf.mac(w.g.ifindex, GUEST)!;
    const { firstNs, lastNs, firstFwdNs, lastUnfwdNs, lastAnnounceNs, ...counts } = after;
    expect(k).toMatchObject({ frames: 6, unfwdFrames: 3 }); // the kernel saw them all too
    expect({ ...k, firstNs, lastNs, firstFwdNs, lastUnfwdNs, lastAnnounceNs }).toEqual({ ...counts, firstNs, lastNs, firstFwdNs, lastUnfwdNs, lastAnnounceNs });
    for (const [a, b] of [[firstNs, k.firstNs], [lastNs, k.lastNs], [firstFwdNs, k.firstFwdNs], [lastUnfwdNs, k.lastUnfwdNs]])
      expect(a - b < 0n ? b - a : a - b).toBeLessThan(MS);
    const strip = (e: BpfEvent) => ({ ...e, tsNs: 0n });
    expect(w.events).toHaveLength(3);
    expect(w.events.map(strip)).toEqual(ref.poll().map(strip));
  });

  it('counts frames sent before the join as not forwarding even when read after the watcher saw forwarding', async (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world();
    w.g.announce(3);
    await joinForwarding(w);
    w.known.state = 'forwarding';
    w.pcap.poll(); // the first read of these frames happens now, with the port known forwarding
    expect(w.pcap.mac(w.g.ifindex, GUEST)).toMatchObject({ frames: 3, unfwdFrames: 3, firstFwdNs: 0n });
    expect(w.events.map((e) => e.forwarding)).toEqual([false, false, false]);
    w.g.announce();
    await waitFrames(w.pcap, w.g.ifindex, GUEST, 4);
    expect(w.pcap.mac(w.g.ifindex, GUEST)).toMatchObject({ frames: 4, unfwdFrames: 3 });
  });

  /** Tagged, unicast and jumbo frames from the guest on a forwarding tap0, and a neighbour's broadcasts flooded out of it. */
  async function taggedAndFlooded(w: World) {
    w.ns.ip('link', 'set', 'tap0', 'mtu', '9000');
    await joinForwarding(w);
    w.known.state = 'forwarding';
    w.pcap.poll();
    const other = guest(w.ns, 'tap1', OTHER);
    w.ns.ip('link', 'set', 'tap1', 'master', 'br0');
    await waitFor('tap1 forwarding', () => bridgeState(w.ns, 'tap1') === 'forwarding', 2_000);
    w.g.send(
      tagged(qemuRarp(GUEST), { tpid: 0x8100, vid: 42 }),
      tagged(arp(GUEST, 2, '192.0.2.7', '192.0.2.7'), { tpid: 0x88a8, vid: 100 }, { tpid: 0x8100, vid: 200 }),
      ether(mac('02:00:00:00:00:99'), GUEST, 0x0800, Buffer.alloc(46)), // unicast to someone else
      Buffer.concat([qemuRarp(GUEST), Buffer.alloc(9000 - 60)]),
    );
    other.announce(2); // flooded out of tap0: the host sends it, tap0 did not receive it
    await waitFrames(w.pcap, w.g.ifindex, GUEST, 4);
    w.pcap.poll();
  }

  it('sees what TC sees: VLAN tags the kernel took into metadata, lengths, jumbo frames, unicast; not what the host sends out', async (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world();
    await taggedAndFlooded(w);
    expect(w.pcap.macs().map((e) => [e.ifindex, e.mac])).toEqual([[w.g.ifindex, '52:54:00:00:00:01']]);
    expect(w.pcap.mac(w.g.ifindex, GUEST)).toMatchObject({ frames: 4, kinds: { other: 1, rarp: 2, garp: 1, na: 0, legacy: 0 }, vlan: 0 });
    expect(w.events.map((e) => [e.kind, e.vlan, e.len])).toEqual([
      ['rarp', 42, 60],
      ['garp', 100, 64],
      ['rarp', 0, 9000],
    ]);
  });

  it('records what the kernel program records for tagged, jumbo and flooded frames', async (ctx) => {
    requires(ctx, 'tun', 'bridge', 'kfunc', 'bridgeBtf');
    const w = world();
    const ref = reference(w);
    await taggedAndFlooded(w);
    const strip = (e: BpfEvent) => ({ ...e, tsNs: 0n });
    expect(w.events).toHaveLength(3);
    expect(w.events.map(strip)).toEqual(ref.poll().map(strip));
    const { firstNs: _a, lastNs: _b, firstFwdNs: _c, lastUnfwdNs: _d, lastAnnounceNs: _e, ...k } = ref.bpf.mac(w.g.ifindex, GUEST)!;
    expect(k).toMatchObject({ frames: 4 });
    expect(w.pcap.mac(w.g.ifindex, GUEST)).toMatchObject(k);
    expect(ref.bpf.macs().map((e) => e.mac)).toEqual(['52:54:00:00:00:01']); // the kernel did not see OTHER on tap0 either
  });

  it("filters the host's traffic out of the port in the kernel: it takes no room in the ring", async (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world();
    await joinForwarding(w);
    const other = guest(w.ns, 'tap1', OTHER);
    w.ns.ip('link', 'set', 'tap1', 'master', 'br0');
    await waitFor('tap1 forwarding', () => bridgeState(w.ns, 'tap1') === 'forwarding', 2_000);
    // 5000 broadcasts the bridge floods out of tap0 (RARP: br_netfilter may drop an IPv4 frame
    // of zeros), all read by the guest behind tap0; the capture is not read meanwhile
    let out = 0;
    for (let i = 0; i < 5000; i++) {
      other.send(qemuRarp(OTHER));
      if (i % 250 === 249) for (let f = w.g.tap.read(); f; f = w.g.tap.read()) if (f.subarray(6, 12).equals(OTHER)) out++;
    }
    expect(out).toBe(5000);
    w.g.announce();
    await waitFrames(w.pcap, w.g.ifindex, GUEST, 1);
    expect(w.pcap.stats()).toEqual(stats({ frames: 1, new_macs: 1 }));
  });

  it('delivers events from its own timer, without poll()', async (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world({ intervalMs: 10 });
    w.g.announce();
    await waitFor('an event from the timer', () => w.events.length === 1);
    expect(w.events[0]).toMatchObject({ kind: 'rarp', first: true, ifindex: w.g.ifindex });
  });

  it('opens a device that was down at attach once it comes up', async (ctx) => {
    requires(ctx, 'tun');
    const ns = new TestNetns('pcap');
    const tap = ns.run(() => new Tap('tapdown'));
    taps.add(tap);
    const ifindex = ns.ifindex('tapdown');
    const pcap = backend();
    const events: BpfEvent[] = [];
    pcap.startEvents((e) => events.push(e), () => {});
    expect(ns.run(() => pcap.attach(ifindex, 'tapdown'))).toEqual({ ifindex, ifname: 'tapdown', mode: 'pcap' });
    expect(pcap.attachments()).toEqual([{ ifindex, ifname: 'tapdown', mode: 'pcap' }]);
    expect(() => tap.write(qemuRarp(GUEST))).toThrow(/Input\/output error/); // a down tap takes nothing
    pcap.poll();
    expect(packetSockets(ns)).toBe(0);
    ns.ip('link', 'set', 'tapdown', 'up');
    pcap.poll(); // outside the namespace: the open enters it
    expect(packetSockets(ns)).toBe(1);
    tap.write(qemuRarp(GUEST));
    await waitFrames(pcap, ifindex, GUEST, 1);
    // down and up again: the capture survives
    ns.ip('link', 'set', 'tapdown', 'down');
    pcap.poll();
    ns.ip('link', 'set', 'tapdown', 'up');
    tap.write(qemuRarp(GUEST));
    await waitFrames(pcap, ifindex, GUEST, 2);
    pcap.poll();
    expect(events.map((e) => [e.kind, e.first])).toEqual([
      ['rarp', true],
      ['rarp', false],
    ]);
    expect(pcap.captureLost).toBe(0);
  });

  it('detach and close release every capture; attaching again replaces, never stacks', (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const fds = fdCount();
    const w = world();
    const g1 = guest(w.ns, 'tap1', OTHER);
    w.ns.run(() => w.pcap.attach(g1.ifindex, 'tap1'));
    w.ns.run(() => w.pcap.attach(g1.ifindex, 'tap1'));
    expect(packetSockets(w.ns)).toBe(2);
    expect(w.pcap.attachments().map((a) => a.ifname).sort()).toEqual(['tap0', 'tap1']);
    w.pcap.detach(g1.ifindex);
    w.pcap.detach(g1.ifindex); // again: nothing left, no error
    expect(packetSockets(w.ns)).toBe(1);
    expect(w.pcap.attachments().map((a) => a.ifname)).toEqual(['tap0']);
    w.pcap.close();
    w.pcap.close();
    expect(packetSockets(w.ns)).toBe(0);
    expect(w.pcap.attachments()).toEqual([]);
    expect(() => w.ns.run(() => w.pcap.attach(w.g.ifindex, 'tap0'))).toThrow('use pcap backend: already closed');
    for (const t of taps) t.close();
    taps.clear();
    cleanupAll();
    expect(fdCount()).toBe(fds);
  });

  it('refuses a device that does not exist, naming it', (ctx) => {
    requires(ctx, 'tun');
    const ns = new TestNetns('pcap');
    const pcap = backend();
    expect(() => ns.run(() => pcap.attach(4242, 'ghost0'))).toThrow(
      expect.objectContaining({ code: 'ENODEV', message: 'attach pcap on ghost0: no device with ifindex 4242' }),
    );
    expect(() => pcap.attach(0, 'zero')).toThrow('attach pcap on zero: invalid ifindex 0');
    expect(pcap.attachments()).toEqual([]);
  });

  it('survives its device being deleted mid-capture, like the kernel removing a hook', async (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world({ intervalMs: 10 });
    w.g.announce();
    await waitFrames(w.pcap, w.g.ifindex, GUEST, 1);
    w.g.close(); // closing the last fd deletes the tap
    taps.delete(w.g);
    await waitFor('the capture to notice', () => w.pcap.captureLost === 1);
    await new Promise((r) => setTimeout(r, 50)); // more timer reads of a dead port: no crash
    w.pcap.poll();
    expect(w.pcap.captureLost).toBe(1);
    expect(packetSockets(w.ns)).toBe(0);
    // what was seen stays until the owner deletes it; the attachment until forget()
    expect(w.pcap.macs()).toHaveLength(1);
    expect(w.pcap.stats()).toMatchObject({ frames: 1, new_macs: 1 });
    expect(w.pcap.attachments()).toHaveLength(1);
    w.pcap.forget(w.g.ifindex);
    expect(w.pcap.attachments()).toEqual([]);
    expect(w.pcap.deletePort(w.g.ifindex)).toBe(1);
  });

  it('stays bounded under a flooding guest and accounts for every frame it was sent', (ctx) => {
    requires(ctx, 'tun', 'bridge');
    const w = world({ maxMacs: 64, maxQueuedEvents: 1000, tunables: { eventsPerCpu: 1_000_000 } });
    const sent = 20_000;
    const hex = (n: number) => n.toString(16).padStart(2, '0');
    for (let i = 0; i < sent; i++) {
      w.g.send(ipv4Frame(mac(`52:54:01:${hex(i >> 16)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`)));
      if (i % 5000 === 4999) w.pcap.macs(); // reads without delivering: events queue up
    }
    const s = w.pcap.stats();
    expect(w.pcap.macs()).toHaveLength(64);
    expect(s.new_macs).toBe(s.frames);
    const queued = (w.pcap as unknown as { queue: unknown[] }).queue.length;
    expect(queued).toBe(1000);
    // drop_ringbuf = frames lost in the libpcap ring (full between two reads) + events refused
    // by the full queue (every frame here is a first frame, so an event)
    const ringDrops = s.drop_ringbuf - (s.frames - queued);
    expect(ringDrops).toBeGreaterThan(0);
    expect(s.frames + ringDrops).toBe(sent);
  });

});
