// The port watcher against the real kernel: namespaces, a bridge, taps held open like QEMU
// holds them, veths as uplinks. Every namespace is removed in afterAll, even on failure.
import { formatMessage, Protocol, RawNetlinkSocket } from 'netlink';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { inNetns, ip } from '../../src/sys/netns.js';
import { Tap } from '../../src/sys/tun.js';
import { defaultRules } from '../../src/ports/match.js';
import { PortWatcher, type PortWatcherDeps } from '../../src/ports/watcher.js';
import type { PortEvent } from '../../src/ports/types.js';
import { buildWatcherChild, runWatcherChild } from '../helpers/watch-child.js';
import { dropNetnses, freshNetns, kernelSkipReason, poll, Recorder, startIn, vlanFilteringSupported, watcherPortId } from '../helpers/watch-env.js';

const skip = kernelSkipReason();
const MS = 1_000_000n;

const types = (evs: PortEvent[]): string[] => evs.map((e) => e.type);
const ifindexOf = (ns: string, dev: string): number => Number(ip(ns, '-o', 'link', 'show', 'dev', dev).split(':')[0]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip)('PortWatcher (kernel)', () => {
  const watchers: PortWatcher[] = [];
  const taps: Tap[] = [];

  /** A watcher following `ns`, stopped after the test. */
  async function watch(ns: string, opts: Partial<PortWatcherDeps> = {}) {
    const w = new PortWatcher({ rules: defaultRules(), ...opts });
    watchers.push(w);
    const rec = new Recorder(w);
    await startIn(ns, w);
    return { w, rec };
  }
  const tap = (ns: string, name: string): Tap => {
    const t = inNetns(ns, () => new Tap(name));
    taps.push(t);
    return t;
  };
  const bridge = (ns: string, name: string, ...opts: string[]) => {
    ip(ns, 'link', 'add', name, 'type', 'bridge', ...opts);
    ip(ns, 'link', 'set', name, 'up');
  };

  afterEach(() => {
    for (const w of watchers.splice(0)) w.stop();
    for (const t of taps.splice(0)) t.close();
  });
  afterAll(() => dropNetnses());

  it('reports a tap when it appears, before it joins, then join and forwarding (STP off)', async () => {
    const ns = freshNetns('fwd');
    bridge(ns, 'br0', 'stp_state', '0', 'forward_delay', '0');
    const { w, rec } = await watch(ns);
    const before = process.hrtime.bigint();
    tap(ns, 'tap0');
    const created = await rec.next('tap0', 'created');
    const idx = created.ifindex;
    // reported while still outside any bridge: this is when announcements get lost
    expect(created).toMatchObject({ initial: false, resync: false, name: 'tap0', ifindex: ifindexOf(ns, 'tap0') });
    expect(created.link).toMatchObject({ kind: 'tun', guest: true, bridged: false, master: null, state: null, carrier: true, operUp: false, up: false });
    expect(created.link.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(created.tsNs).toBeGreaterThanOrEqual(before);
    expect(created.tsNs).toBeLessThanOrEqual(process.hrtime.bigint());

    ip(ns, 'link', 'set', 'tap0', 'up');
    await rec.next(idx, 'carrier');
    ip(ns, 'link', 'set', 'tap0', 'master', 'br0');
    await rec.next(idx, 'state');
    const evs = rec.of(idx);
    expect(types(evs)).toEqual(['created', 'carrier', 'joined', 'state']);
    expect(evs[1]).toMatchObject({ carrier: true, operUp: true, up: true });
    expect(evs[2]).toMatchObject({ bridge: 'br0', bridgeIndex: ifindexOf(ns, 'br0'), state: 'disabled' });
    expect(evs[3]).toMatchObject({ bridge: 'br0', state: 'forwarding', prev: 'disabled' });
    for (let i = 1; i < evs.length; i++) expect(evs[i].tsNs).toBeGreaterThanOrEqual(evs[i - 1].tsNs);
    expect(w.link(idx)).toMatchObject({ name: 'tap0', master: ifindexOf(ns, 'br0'), masterName: 'br0', bridged: true, state: 'forwarding' });
    expect(w.stats).toMatchObject({ badMessages: 0, resyncs: 0 });
  });

  it('follows STP: listening, learning and forwarding one forward delay (2 s) apart', async () => {
    const ns = freshNetns('stp');
    bridge(ns, 'br0', 'stp_state', '1', 'forward_delay', '200');
    const { rec } = await watch(ns);
    tap(ns, 'tap0');
    ip(ns, 'link', 'set', 'tap0', 'up');
    ip(ns, 'link', 'set', 'tap0', 'master', 'br0');
    const fwd = await rec.next('tap0', 'state', 3, 8000);
    const evs = rec.of('tap0').filter((e) => e.type === 'joined' || e.type === 'state');
    expect(evs.map((e) => (e.type === 'state' ? `${e.prev}->${e.state}` : `joined/${e.type === 'joined' && e.state}`))).toEqual([
      'joined/disabled',
      'disabled->listening',
      'listening->learning',
      'learning->forwarding',
    ]);
    const [joined, listening, learning] = evs;
    expect(listening.tsNs - joined.tsNs).toBeLessThan(500n * MS);
    for (const [a, b] of [[listening, learning], [learning, fwd]]) {
      expect(b.tsNs - a.tsNs).toBeGreaterThan(1800n * MS);
      expect(b.tsNs - a.tsNs).toBeLessThan(3000n * MS);
    }
  });

  it('reports carrier as the tap fd is closed and reopened (persistent tap)', async () => {
    const ns = freshNetns('carrier');
    const { w, rec } = await watch(ns);
    ip(ns, 'tuntap', 'add', 'tapc0', 'mode', 'tap');
    ip(ns, 'link', 'set', 'tapc0', 'up');
    const created = await rec.next('tapc0', 'created');
    const lastCarrier = () => w.link(created.ifindex)?.carrier;
    // carrier is on while `ip tuntap` holds the fd, off once it lets go of the persistent tap
    await rec.until('carrier off, nobody holds it', () => lastCarrier() === false);
    let t = tap(ns, 'tapc0');
    await rec.until('carrier on', () => lastCarrier() === true);
    t.close();
    await rec.until('carrier off', () => lastCarrier() === false);
    t = tap(ns, 'tapc0');
    await rec.until('carrier on again', () => lastCarrier() === true);
    const flips = rec.of(created.ifindex).filter((e) => e.type === 'carrier').map((e) => (e.type === 'carrier' && e.carrier ? 'on' : 'off'));
    // each flip reported once: no two equal reports in a row, and exactly the flips we made
    // (the first "off" is ip tuntap letting go, when the created event did not already say off)
    expect(flips.filter((f, i) => i > 0 && f === flips[i - 1])).toEqual([]);
    expect(flips.join(' ')).toMatch(/^(off )?on off on$/);
    expect(w.link(created.ifindex)).toMatchObject({ operUp: true, carrier: true });
  });

  it('rename keeps the ifindex; a tap stays watched whatever its name; renaming into --exclude-devices unwatches', async () => {
    const ns = freshNetns('rename');
    const { w, rec } = await watch(ns, { rules: { ...defaultRules(), excludeDevices: ['off*'] } });
    tap(ns, 'tapr0');
    const { ifindex } = await rec.next('tapr0', 'created');
    ip(ns, 'link', 'set', 'tapr0', 'name', 'tapr1');
    const renamed = await rec.next(ifindex, 'renamed');
    expect(renamed).toMatchObject({ ifindex, name: 'tapr1', oldName: 'tapr0' });
    expect(w.link(ifindex)?.name).toBe('tapr1');
    // a hotplug script's name for it: still a tap, still the guest's port
    ip(ns, 'link', 'set', 'tapr1', 'name', 'guest0');
    expect(await rec.next(ifindex, 'renamed', 2)).toMatchObject({ name: 'guest0', link: { guest: true } });
    ip(ns, 'link', 'set', 'guest0', 'name', 'off0');
    await rec.next(ifindex, 'unwatched');
    expect(types(rec.of(ifindex))).toEqual(['created', 'renamed', 'renamed', 'renamed', 'unwatched']);
    expect(w.link(ifindex)).toBeUndefined();
  });

  it('a tap created under any name is watched from creation, an L3 tun is not', async () => {
    const ns = freshNetns('kind');
    const { w, rec } = await watch(ns);
    tap(ns, 'guest7');
    const { ifindex, link } = await rec.next('guest7', 'created');
    expect(link).toMatchObject({ kind: 'tun', guest: true, bridged: false });
    ip(ns, 'tuntap', 'add', 'dev', 'vpn0', 'mode', 'tun');
    tap(ns, 'guest8'); // a later event: vpn0's creation has been seen by then
    await rec.next('guest8', 'created');
    expect(rec.of('vpn0')).toEqual([]);
    expect(w.link(ifindex)?.name).toBe('guest7');
  });

  it('leaving the bridge: a tap stays watched, a veth uplink is unwatched', async () => {
    const ns = freshNetns('leave');
    bridge(ns, 'br0', 'stp_state', '0');
    ip(ns, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1');
    const { w, rec } = await watch(ns);
    tap(ns, 'tapl0');
    ip(ns, 'link', 'set', 'tapl0', 'up');
    ip(ns, 'link', 'set', 'tapl0', 'master', 'br0');
    const { ifindex: t } = await rec.next('tapl0', 'state');
    ip(ns, 'link', 'set', 'tapl0', 'nomaster');
    expect(await rec.next(t, 'left')).toMatchObject({ bridge: 'br0', link: { bridged: false, state: null, master: null } });
    expect(w.link(t)).toMatchObject({ bridged: false, state: null });

    ip(ns, 'link', 'set', 'veth0', 'master', 'br0');
    const vc = await rec.next('veth0', 'created');
    expect(vc.link).toMatchObject({ kind: 'veth', guest: false, bridged: true, masterName: 'br0' });
    ip(ns, 'link', 'set', 'veth0', 'nomaster');
    await rec.next(vc.ifindex, 'unwatched');
    expect(types(rec.of(vc.ifindex))).toEqual(['created', 'left', 'unwatched']);
    expect(w.link(vc.ifindex)).toBeUndefined();
    expect(rec.of('veth1')).toEqual([]);
  });

  it('reports deletes: a bridged tap whose fd closes, a veth deleted with ip', async () => {
    const ns = freshNetns('del');
    bridge(ns, 'br0', 'stp_state', '0');
    const { w, rec } = await watch(ns);
    const t = tap(ns, 'tapd0');
    ip(ns, 'link', 'set', 'tapd0', 'up', 'master', 'br0');
    const { ifindex } = await rec.next('tapd0', 'state');
    t.close();
    await rec.next(ifindex, 'deleted');
    expect(types(rec.of(ifindex)).slice(-1)).toEqual(['deleted']);
    expect(types(rec.of(ifindex))).not.toContain('left');
    expect(w.link(ifindex)).toBeUndefined();

    ip(ns, 'link', 'add', 'veth0', 'master', 'br0', 'type', 'veth', 'peer', 'name', 'veth1');
    const vc = await rec.next('veth0', 'created');
    ip(ns, 'link', 'del', 'veth0');
    await rec.next(vc.ifindex, 'deleted');
    expect(w.links()).toEqual([]);
  });

  it('the initial dump finds existing ports (initial: true) and bridges', async () => {
    const ns = freshNetns('dump');
    bridge(ns, 'br0', 'stp_state', '0', 'forward_delay', '300');
    tap(ns, 'tap0');
    ip(ns, 'link', 'set', 'tap0', 'up', 'master', 'br0');
    tap(ns, 'tap1'); // unbridged, matches tap*
    ip(ns, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1');
    ip(ns, 'link', 'set', 'veth0', 'up', 'master', 'br0');
    ip(ns, 'link', 'set', 'veth1', 'up');
    ip(ns, 'link', 'add', 'veth2', 'type', 'veth', 'peer', 'name', 'veth3'); // unbridged uplinks: not watched
    await sleep(200); // let the bridge settle its ports before we look
    const { w, rec } = await watch(ns);
    // start() resolves after the dumps: everything initial has been reported by now
    expect(rec.ports.map((e) => `${e.type}:${e.name}`).sort()).toEqual(['created:tap0', 'created:tap1', 'created:veth0']);
    expect(rec.ports.every((e) => e.type === 'created' && e.initial && !e.resync)).toBe(true);
    const byName = Object.fromEntries(w.links().map((l) => [l.name, l]));
    expect(Object.keys(byName).sort()).toEqual(['tap0', 'tap1', 'veth0']);
    expect(byName.tap0).toMatchObject({ kind: 'tun', guest: true, bridged: true, masterName: 'br0', state: 'forwarding', carrier: true, operUp: true });
    expect(byName.tap1).toMatchObject({ kind: 'tun', guest: true, bridged: false, master: null, state: null, up: false });
    expect(byName.veth0).toMatchObject({ kind: 'veth', guest: false, bridged: true, state: 'forwarding' });
    expect(rec.bridges).toHaveLength(1);
    expect(rec.bridges[0]).toMatchObject({ initial: true, prev: null, bridge: { name: 'br0', stpEnabled: false, forwardDelaySec: 3, vlanFiltering: false } });
    expect(w.bridges()).toEqual([{ ifindex: ifindexOf(ns, 'br0'), name: 'br0', stpEnabled: false, forwardDelaySec: 3, vlanFiltering: false }]);
    // later events are live ones
    tap(ns, 'tap2');
    expect(await rec.next('tap2', 'created')).toMatchObject({ initial: false });
  });

  // the kernel notifies bridge attribute changes only while the bridge is up
  // (netdev_state_change); a down bridge's new values arrive with its next link message
  it('reports bridge STP and forward delay, their changes, rename and delete', async () => {
    const ns = freshNetns('bridge');
    const { w, rec } = await watch(ns);
    const nth = async (n: number) => {
      await rec.until(`bridge event #${n}`, () => rec.bridges.length >= n);
      return rec.bridges[n - 1];
    };
    ip(ns, 'link', 'add', 'br1', 'type', 'bridge', 'stp_state', '1', 'forward_delay', '1500');
    expect(await nth(1)).toMatchObject({ initial: false, prev: null, bridge: { name: 'br1', stpEnabled: true, forwardDelaySec: 15, vlanFiltering: false } });
    ip(ns, 'link', 'set', 'br1', 'up'); // state changes alone are not bridge changes
    ip(ns, 'link', 'set', 'br1', 'type', 'bridge', 'forward_delay', '400');
    expect(await nth(2)).toMatchObject({ prev: { forwardDelaySec: 15 }, bridge: { forwardDelaySec: 4, stpEnabled: true } });
    ip(ns, 'link', 'set', 'br1', 'type', 'bridge', 'stp_state', '0');
    expect(await nth(3)).toMatchObject({ prev: { stpEnabled: true }, bridge: { stpEnabled: false, forwardDelaySec: 4 } });
    ip(ns, 'link', 'set', 'br1', 'down');
    ip(ns, 'link', 'set', 'br1', 'name', 'br2');
    expect(await nth(4)).toMatchObject({ prev: { name: 'br1' }, bridge: { name: 'br2' } });
    ip(ns, 'link', 'del', 'br2');
    await rec.until('bridgeDeleted', () => rec.bridgeDeletes.length === 1);
    await sleep(50);
    expect(rec.bridges).toHaveLength(4);
    expect(rec.bridgeDeletes).toMatchObject([{ name: 'br2', reason: 'deleted', resync: false }]);
    expect(w.bridges()).toEqual([]);
  });

  it('reports bridge VLAN filtering', async (ctx) => {
    const ns = freshNetns('vlan');
    if (!vlanFilteringSupported(ns)) ctx.skip('this kernel has no CONFIG_BRIDGE_VLAN_FILTERING');
    bridge(ns, 'br0', 'vlan_filtering', '1');
    const { rec } = await watch(ns);
    expect(rec.bridges[0]).toMatchObject({ initial: true, bridge: { vlanFiltering: true } });
    ip(ns, 'link', 'set', 'br0', 'type', 'bridge', 'vlan_filtering', '0');
    await rec.until('vlan filtering off', () => rec.bridges.length === 2);
    expect(rec.bridges[1]).toMatchObject({ prev: { vlanFiltering: true }, bridge: { vlanFiltering: false } });
  });

  it('counts malformed and unexpected messages sent to its socket, and carries on', async () => {
    const ns = freshNetns('bad');
    const { w, rec } = await watch(ns);
    const port = watcherPortId(ns);
    const applied = w.stats.messages; // the dump's lo
    const evil = inNetns(ns, () => new RawNetlinkSocket(Protocol.ROUTE));
    try {
      const send = (bufs: Uint8Array | Uint8Array[]) => new Promise<void>((res, rej) => evil.send(bufs, { port }, (e) => (e ? rej(e) : res())));
      await send(Buffer.from('not netlink')); // shorter than a header
      await send(formatMessage({ type: 16, flags: 0, seq: 0, port: 0, data: Buffer.alloc(10) })); // ifinfomsg cut short
      await send(formatMessage({ type: 20, flags: 0, seq: 0, port: 0, data: Buffer.alloc(24) })); // RTM_NEWADDR: not ours
      await send(formatMessage({ type: 2, flags: 0, seq: 99, port: 0, data: Buffer.alloc(20) })); // stray NLMSG_ERROR
      await poll('4 bad messages', () => w.stats.badMessages >= 4);
      await sleep(50);
      expect(w.stats.badMessages).toBe(4);
      expect(w.stats.messages).toBe(applied);
    } finally {
      evil.close();
    }
    tap(ns, 'tapb0');
    await rec.next('tapb0', 'created');
  });

  it('resyncs after an overrun (ENOBUFS) and emits exactly the differences', async () => {
    const ns = freshNetns('overrun');
    // a 32 KiB buffer cannot hold the notifications of 60 taps made without yielding
    const { w, rec } = await watch(ns, { rcvbufBytes: 16 << 10 });
    expect(w.stats.rcvbufBytes).toBe(32 << 10);
    const made = inNetns(ns, () => Array.from({ length: 60 }, (_, i) => new Tap(`tapo${i}`)));
    taps.push(...made);
    await rec.until('60 links', () => w.links().length === 60, 10_000);
    expect(w.stats.socketErrors).toBeGreaterThan(0);
    expect(w.stats.resyncs).toBeGreaterThan(0);
    const created = rec.ports.filter((e) => e.type === 'created');
    expect(new Set(created.map((e) => e.ifindex)).size).toBe(60);
    expect(created).toHaveLength(60); // none twice
    expect(created.some((e) => e.resync)).toBe(true); // some only the dump could tell

    for (const t of made) t.close();
    await rec.until('table empty', () => w.links().length === 0, 10_000);
    const deleted = rec.ports.filter((e) => e.type === 'deleted');
    expect(deleted).toHaveLength(60);
    expect(new Set(deleted.map((e) => e.ifindex))).toEqual(new Set(created.map((e) => e.ifindex)));
  });

  it('flood: 100 taps created and deleted without yielding, no event lost or duplicated', async () => {
    const ns = freshNetns('flood');
    // above net.core.rmem_max on purpose: as root SO_RCVBUFFORCE grants it (the kernel doubles it)
    const { w, rec } = await watch(ns, { rcvbufBytes: 8 << 20 });
    expect(w.stats.rcvbufBytes).toBe(16 << 20);
    const made = inNetns(ns, () => Array.from({ length: 100 }, (_, i) => new Tap(`tapf${i}`)));
    taps.push(...made);
    await rec.until('100 created', () => rec.ports.filter((e) => e.type === 'created').length >= 100, 10_000);
    for (const t of made) t.close();
    await rec.until('100 deleted', () => rec.ports.filter((e) => e.type === 'deleted').length >= 100, 10_000);
    await sleep(100); // anything late or duplicated would land now
    const count = (type: string) => rec.ports.filter((e) => e.type === type).length;
    expect(count('created')).toBe(100);
    expect(count('deleted')).toBe(100);
    expect(new Set(rec.ports.filter((e) => e.type === 'created').map((e) => e.ifindex)).size).toBe(100);
    expect(rec.ports.every((e) => !e.resync)).toBe(true);
    expect(w.links()).toEqual([]);
    expect(w.stats).toMatchObject({ badMessages: 0, resyncs: 0, socketErrors: 0 });
  });

  it('stop() releases the socket; start() again works', async () => {
    const ns = freshNetns('stop');
    const { w, rec } = await watch(ns);
    expect(() => watcherPortId(ns)).not.toThrow();
    await expect(startIn(ns, w)).rejects.toThrow(/start port watcher: already started/);
    w.stop();
    w.stop(); // idempotent
    expect(() => watcherPortId(ns)).toThrow(/none subscribed/);
    tap(ns, 'taps0');
    await sleep(200);
    expect(rec.of('taps0')).toEqual([]);
    await startIn(ns, w);
    expect(rec.of('taps0').map((e) => e.type === 'created' && e.initial)).toEqual([true]);
    w.stop();

    // stopped before the dump is answered: start() rejects, nothing stays open
    const w2 = new PortWatcher({ rules: defaultRules() });
    const starting = startIn(ns, w2);
    w2.stop();
    await expect(starting).rejects.toMatchObject({ code: 'ESTATE', message: 'start port watcher: stopped while starting' });
    expect(() => watcherPortId(ns)).toThrow(/none subscribed/);
  });

  it('stop() lets the process exit (child process)', async () => {
    const ns = freshNetns('exit');
    const { dir, remove } = buildWatcherChild();
    try {
      const [stopped, running] = await Promise.all([runWatcherChild(dir, ns, 'stop'), runWatcherChild(dir, ns, 'keep')]);
      expect(stopped).toEqual({ exited: true, code: 0, out: 'started\n' });
      // control: a running watcher holds the event loop, so the check above means something
      expect(running).toMatchObject({ exited: false, out: 'started\n' });
    } finally {
      remove();
    }
  });
});
