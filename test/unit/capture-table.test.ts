// The user-space {port, MAC} table of the libpcap fallback: the kernel's counters, entry fields
// and event rules, and a bounded LRU. test/kernel/capture-table-twin.test.ts holds it against the
// BPF program on the same frames.
import { describe, expect, it } from 'vitest';
import { STATS, type StatName } from '../../src/bpf/abi.js';
import { MacTable } from '../../src/capture/table.js';
import { garp } from '../helpers/classifier-cases.js';
import { ipv4Frame, mac, qemuRarp, tagged } from '../helpers/frames.js';
import { table } from '../helpers/mac-table.js';

const A = mac('52:54:00:00:00:0a');
const B = mac('52:54:00:00:00:0b');
const FWD = 3;
const LEARNING = 2;
const S = 1_000_000_000n;

const stats = (o: Partial<Record<StatName, number>> = {}) => ({ ...Object.fromEntries(STATS.map((s) => [s, 0])), ...o });
const guestMac = (i: number) => mac(`52:54:${[i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255].map((x) => x.toString(16).padStart(2, '0')).join(':')}`);

describe('MacTable: entries and counters', () => {
  it('records first/last times, kinds, unforwarded frames and the first-frame and announcement events', () => {
    const { t, feed, events } = table();
    const t0 = 5_000n * S;
    feed(ipv4Frame(A), { tsNs: t0, state: LEARNING });
    feed(qemuRarp(A), { tsNs: t0 + 10n, state: LEARNING });
    feed(ipv4Frame(A), { tsNs: t0 + 20n, state: FWD });
    feed(tagged(garp, { tpid: 0x8100, vid: 9 }), { tsNs: t0 + 30n, state: FWD, ifindex: 8 });
    feed(ipv4Frame(A), { tsNs: t0 + 40n, state: FWD });

    expect(t.get(7, A)).toEqual({
      firstNs: t0,
      lastNs: t0 + 40n,
      firstFwdNs: t0 + 20n,
      lastUnfwdNs: t0 + 10n,
      lastAnnounceNs: t0 + 10n,
      frames: 4,
      unfwdFrames: 2,
      kinds: { other: 3, rarp: 1, garp: 0, na: 0, legacy: 0 },
      unfwdKinds: { other: 1, rarp: 1, garp: 0, na: 0, legacy: 0 },
      vlan: 0,
      firstState: LEARNING,
    });
    // garp's source is the classifier cases' guest, on another port
    expect(t.entries().map((e) => [e.ifindex, e.mac, e.vlan, e.frames])).toEqual([
      [7, '52:54:00:00:00:0a', 0, 4],
      [8, '52:54:00:12:34:56', 9, 1],
    ]);
    expect(events.map((e) => [e.ifindex, e.kind, e.first, e.forwarding, e.bridgePort, e.portState, e.vlan, e.tsNs - t0])).toEqual([
      [7, 'other', true, false, true, LEARNING, 0, 0n],
      [7, 'rarp', false, false, true, LEARNING, 0, 10n],
      [8, 'garp', true, true, true, FWD, 9, 30n],
    ]);
    expect(t.counters).toEqual(stats({ frames: 5, new_macs: 2 }));
  });

  it('does not count frames shorter than an Ethernet header; counts group and zero sources as bad_source', () => {
    const { t, feed, events } = table();
    for (let n = 0; n < 14; n++) feed(qemuRarp(A).subarray(0, n));
    feed(qemuRarp(mac('01:00:5e:00:00:01')));
    feed(qemuRarp(mac('33:33:00:00:00:01')));
    feed(qemuRarp(mac('00:00:00:00:00:00')));
    expect(t.entries()).toEqual([]);
    expect(events).toEqual([]);
    expect(t.counters).toEqual(stats({ frames: 3, bad_source: 3 }));
  });

  it('deletes a port and only that port', () => {
    const { t, feed } = table();
    feed(qemuRarp(A));
    feed(qemuRarp(B));
    feed(qemuRarp(A), { ifindex: 9 });
    expect(t.deletePort(7)).toBe(2);
    expect(t.deletePort(7)).toBe(0);
    expect(t.entries().map((e) => [e.ifindex, e.mac])).toEqual([[9, '52:54:00:00:00:0a']]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new MacTable({ maxMacs: 0 })).toThrow('create mac table: maxMacs 0 is not a positive integer');
  });
});

describe('MacTable: LRU bound', () => {
  it('evicts the least recently used entry at maxMacs; a recently used one gets a second chance', () => {
    const { t, feed } = table(3);
    for (let i = 1; i <= 3; i++) feed(qemuRarp(guestMac(i)));
    feed(ipv4Frame(guestMac(1))); // 1 is used again: 2 is now the oldest unused
    feed(qemuRarp(guestMac(4)));
    expect(t.entries().map((e) => e.mac).sort()).toEqual(['52:54:00:00:00:01', '52:54:00:00:00:03', '52:54:00:00:00:04']);
    feed(qemuRarp(guestMac(5)));
    expect(t.get(7, guestMac(3))).toBeUndefined();
    expect(t.size).toBe(3);
    // a MAC that comes back after eviction is new again, as in the kernel
    const ev = feed(qemuRarp(guestMac(2)));
    expect(ev).toMatchObject({ mac: '52:54:00:00:00:02', first: true });
    expect(t.counters.new_macs).toBe(6);
  });

  it('stays at maxMacs under a flood of 100 000 source MACs, while a busy guest keeps its entry', () => {
    const { t, feed } = table(256);
    const guest = mac('52:54:00:aa:aa:aa');
    feed(qemuRarp(guest));
    for (let i = 0; i < 100_000; i++) {
      feed(ipv4Frame(guestMac(0x0100_0000 + i)));
      if (i % 64 === 0) feed(ipv4Frame(guest));
    }
    expect(t.size).toBe(256);
    expect(t.entries()).toHaveLength(256);
    expect(t.get(7, guest)?.kinds.rarp).toBe(1);
    expect(t.counters.new_macs).toBe(100_001);
  });
});

describe('MacTable: event rules', () => {
  it('limits events to 32 per {port, MAC} per 1 s window, counting every frame regardless', () => {
    const { t, feed, events, now } = table();
    for (let i = 0; i < 40; i++) feed(qemuRarp(A));
    expect(events).toHaveLength(32);
    expect(events[0].first).toBe(true);
    expect(t.counters.drop_rate_mac).toBe(8);
    expect(t.get(7, A)!.kinds.rarp).toBe(40);
    // the limit is per MAC and per port
    feed(qemuRarp(B));
    feed(qemuRarp(A), { ifindex: 8 });
    expect(events).toHaveLength(34);
    // a new window opens 1 s after the last one opened
    const start = events[0].tsNs;
    feed(qemuRarp(A), { tsNs: start + S - 1n });
    expect(events).toHaveLength(34);
    feed(qemuRarp(A), { tsNs: start + S });
    expect(events).toHaveLength(35);
    expect(t.counters.drop_rate_mac).toBe(9);
    expect(now()).toBe(start + S);
  });

  it('caps events over all ports per window, and a refused event still spends its MAC budget', () => {
    const { t, feed, events } = table(64, { eventsPerCpu: 10, eventsPerMac: 2 });
    for (let i = 1; i <= 15; i++) feed(qemuRarp(guestMac(i)));
    expect(events).toHaveLength(10);
    expect(t.counters).toMatchObject({ new_macs: 15, drop_rate_all: 5, drop_rate_mac: 0 });
    // MAC 15 spent 1 of its 2 on the refused first frame, and a fresh global window admits it once
    const later = events[9].tsNs + 2n * S;
    feed(qemuRarp(guestMac(15)), { tsNs: later });
    feed(qemuRarp(guestMac(15)), { tsNs: later + 1n });
    feed(qemuRarp(guestMac(15)), { tsNs: later + 2n });
    expect(events.slice(10).map((e) => e.mac)).toEqual(['52:54:00:00:00:0f', '52:54:00:00:00:0f']);
    expect(t.counters).toMatchObject({ drop_rate_all: 5, drop_rate_mac: 1 });
  });

  it('emits nothing for ordinary frames after the first', () => {
    const { feed, events } = table();
    for (let i = 0; i < 5; i++) feed(ipv4Frame(A));
    expect(events.map((e) => [e.kind, e.first])).toEqual([['other', true]]);
  });
});
