import { describe, expect, it } from 'vitest';
import { KINDS, type BpfEvent, type Kind, type KindCounts, type MacEntry } from '../../src/bpf/abi.js';
import { Ring } from '../../src/tracker/ring.js';
import { Tracker, type TrackerOptions } from '../../src/tracker/timeline.js';
import type { Clock, FactView, PortInput, TrackerSink } from '../../src/tracker/types.js';
import { bpfEvent } from '../helpers/events.js';

// ---- fixtures: a fake clock, a sink that records its calls, builders in milliseconds ----

const MS = 1_000_000n;
const ms = (n: number): bigint => BigInt(n) * MS;
const WALL0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const iso = (monoMs: number): string => new Date(WALL0 + monoMs).toISOString();

class FakeClock implements Clock {
  now = 0n;
  monoNs(): bigint {
    return this.now;
  }
  wallMs(): number {
    return WALL0 + Number(this.now) / 1e6; // wall and monotonic tick together
  }
  at(monoMs: number): void {
    this.now = ms(monoMs);
  }
}

type Call = [string, ...unknown[]];
class RecordingSink implements TrackerSink {
  calls: Call[] = [];
  portJoined(bridge: string): void {
    this.calls.push(['portJoined', bridge]);
  }
  lateAttach(bridge: string, attachDelaySec: number): void {
    this.calls.push(['lateAttach', bridge, attachDelaySec]);
  }
  onTime(bridge: string, firstFrameDelaySec: number): void {
    this.calls.push(['onTime', bridge, firstFrameDelaySec]);
  }
  silent(bridge: string): void {
    this.calls.push(['silent', bridge]);
  }
  framesBeforeForwarding(bridge: string, kind: Kind, n: number): void {
    this.calls.push(['framesBeforeForwarding', bridge, kind, n]);
  }
  announcements(bridge: string, kind: Kind, delivered: boolean, n: number): void {
    this.calls.push(['announcements', bridge, kind, delivered, n]);
  }
  /** Calls since the last take(). */
  take(): Call[] {
    const out = this.calls;
    this.calls = [];
    return out;
  }
  count(name: string): number {
    return this.calls.filter((c) => c[0] === name).length;
  }
}

function setup(o: Omit<TrackerOptions, 'clock' | 'sink'> = {}) {
  const clock = new FakeClock();
  const sink = new RecordingSink();
  const t = new Tracker({ clock, sink, ...o });
  return { clock, sink, t };
}

const TAP = 7;
const MAC = '52:54:00:12:34:56';
const MAC2 = '52:54:00:aa:bb:02';
const MAC3 = '52:54:00:aa:bb:03';

const port = (over: Partial<PortInput> = {}): PortInput => ({
  ifindex: TAP,
  name: 'tap0',
  kind: 'tun',
  guest: true,
  bridge: '',
  state: 'none',
  carrier: true,
  tsNs: 0n,
  initial: false,
  ...over,
});

/** A ring-buffer event; defaults: an unforwarded RARP on a device that is no bridge port. */
const ev = (atMs: number, o: Partial<BpfEvent> = {}): BpfEvent => bpfEvent(ms(atMs), TAP, MAC, o);
const fwdEv = (atMs: number, o: Partial<BpfEvent> = {}): BpfEvent =>
  ev(atMs, { forwarding: true, bridgePort: true, portState: 3, ...o });

/** QEMU's announce schedule (0, 50, 200, 450, 800 ms) starting at `t0`; the first is the MAC's first frame. */
const QEMU = [0, 50, 200, 450, 800];
const burst = (t0: number, o: Partial<BpfEvent> = {}): BpfEvent[] => QEMU.map((d, i) => ev(t0 + d, { first: i === 0, ...o }));

const counts = (p: Partial<KindCounts> = {}): KindCounts => ({ other: 0, rarp: 0, garp: 0, na: 0, legacy: 0, ...p });
const total = (c: KindCounts): number => KINDS.reduce((n, k) => n + c[k], 0);

/** One bw_port_macs entry as the kernel would hold it (times in ms). */
function entry(o: {
  firstMs: number;
  lastMs?: number;
  firstFwdMs?: number;
  lastUnfwdMs?: number;
  kinds?: Partial<KindCounts>;
  unfwd?: Partial<KindCounts>;
  ifindex?: number;
  mac?: string;
  vlan?: number;
}): MacEntry {
  const kinds = counts(o.kinds);
  const unfwdKinds = counts(o.unfwd);
  return {
    ifindex: o.ifindex ?? TAP,
    mac: o.mac ?? MAC,
    firstNs: ms(o.firstMs),
    lastNs: ms(o.lastMs ?? o.firstMs),
    firstFwdNs: o.firstFwdMs === undefined ? 0n : ms(o.firstFwdMs),
    lastUnfwdNs: o.lastUnfwdMs === undefined ? 0n : ms(o.lastUnfwdMs),
    lastAnnounceNs: ms(o.lastMs ?? o.firstMs),
    frames: total(kinds),
    unfwdFrames: total(unfwdKinds),
    kinds,
    unfwdKinds,
    vlan: o.vlan ?? 0,
    firstState: 0xff,
  };
}

/** The kernel's entry after QEMU's burst at 100 ms on a port that could not forward. */
const lateBurstEntry = (): MacEntry => entry({ firstMs: 100, lastMs: 900, lastUnfwdMs: 900, kinds: { rarp: 5 }, unfwd: { rarp: 5 } });

/** Compact timeline facts: [type, ms, the fields that matter for that type]. */
const brief = (f: FactView): unknown[] => {
  const at = Number(BigInt(f.monoNs) / MS);
  switch (f.type) {
    case 'first_frame':
    case 'announcement':
      return [f.type, at, f.mac, f.kind, f.delivered];
    case 'state':
      return [f.type, at, f.state, f.bridge, f.detail];
    case 'verdict':
      return [f.type, at, f.mac, f.verdict];
    case 'joined':
    case 'left':
      return [f.type, at, f.bridge];
    case 'renamed':
    case 'carrier':
    case 'rarp_sent':
      return [f.type, at, f.detail];
    default:
      return [f.type, at];
  }
};

/** A live guest tap in br0, forwarding from `fwdMs`. */
function forwardingTap(t: Tracker, fwdMs = 1000, over: Partial<PortInput> = {}): void {
  t.portAppeared(port(over));
  t.portJoined(over.ifindex ?? TAP, 'br0', ms(fwdMs));
  t.portState(over.ifindex ?? TAP, 'forwarding', ms(fwdMs));
}

/** A MAC's verdict on a port, from the port views; undefined when the tracker does not know it. */
const verdictOf = (t: Tracker, mac = MAC, ifindex = TAP) =>
  t.portViews().find((p) => p.ifindex === ifindex)?.macs.find((m) => m.mac === mac)?.verdict;

// ---- the product's main case ----

describe('late attach: the guest announces before its tap joins the bridge', () => {
  it('judges late at forwarding, with attach delay = forwarding - first frame, and the facts in order', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    for (const e of burst(100)) t.frame(e);
    expect(verdictOf(t)).toBe('pending'); // not judged until the port can forward
    expect(sink.take()).toEqual([]);

    t.portJoined(TAP, 'br0', ms(2000));
    t.portState(TAP, 'forwarding', ms(2000), [lateBurstEntry()]);

    expect(verdictOf(t)).toBe('late');
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['lateAttach', 'br0', 1.9],
    ]);

    clock.at(3000);
    const v = t.portView('tap0')!;
    expect(v.timeline.map(brief)).toEqual([
      ['port_created', 0],
      ['first_frame', 100, MAC, 'rarp', false],
      ['announcement', 100, MAC, 'rarp', false],
      ['announcement', 150, MAC, 'rarp', false],
      ['announcement', 300, MAC, 'rarp', false],
      ['announcement', 550, MAC, 'rarp', false],
      ['announcement', 900, MAC, 'rarp', false],
      ['joined', 2000, 'br0'],
      ['state', 2000, 'forwarding', 'br0', 'from none'],
      ['verdict', 2000, MAC, 'late'],
    ]);
    expect(v.timeline.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(v).toMatchObject({
      name: 'tap0',
      ifindex: TAP,
      bridge: 'br0',
      kind: 'tun',
      guest: true,
      state: 'forwarding',
      carrier: true,
      verdict: 'late',
      createdAt: iso(0),
      forwardingSince: iso(2000),
    });
    expect(v.macs).toEqual([
      {
        mac: MAC,
        verdict: 'late',
        vlan: 0,
        firstFrameAt: iso(100),
        announcements: 5,
        framesBeforeForwarding: 5,
        attachDelaySeconds: 1.9,
        firstFrameDelaySeconds: null,
        rarpSent: 0,
      },
    ]);
  });

  it('holds kernel counts read before the join until the port has a bridge, then never counts them twice', () => {
    const { t, sink } = setup();
    t.portAppeared(port());
    for (const e of burst(100)) t.frame(e);

    t.syncCounters([lateBurstEntry()]); // read while the tap is in no bridge
    expect(sink.take()).toEqual([]);

    t.portJoined(TAP, 'br0', ms(2000));
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);

    t.portState(TAP, 'forwarding', ms(2000), [lateBurstEntry()]);
    expect(sink.take()).toEqual([['lateAttach', 'br0', 1.9]]);

    t.syncCounters([lateBurstEntry()]); // same kernel values: no delta
    t.syncCounters([lateBurstEntry()]);
    expect(sink.take()).toEqual([]);

    // two more RARPs once forwarding: delivered
    t.frame(fwdEv(2100));
    t.frame(fwdEv(2200));
    const after = entry({ firstMs: 100, lastMs: 2200, firstFwdMs: 2100, lastUnfwdMs: 900, kinds: { rarp: 7 }, unfwd: { rarp: 5 } });
    t.syncCounters([after]);
    expect(sink.take()).toEqual([['announcements', 'br0', 'rarp', true, 2]]);
    t.syncCounters([after]);
    expect(sink.take()).toEqual([]);

    expect(t.portView('tap0')!.timeline.slice(-2).map(brief)).toEqual([
      ['announcement', 2100, MAC, 'rarp', true],
      ['announcement', 2200, MAC, 'rarp', true],
    ]);
    expect(t.portView('tap0')!.macs[0]).toMatchObject({ announcements: 7, framesBeforeForwarding: 5, verdict: 'late' });
  });

  it('counts a map read after the join straight to the bridge', () => {
    const { t, sink } = setup();
    t.portAppeared(port());
    for (const e of burst(100)) t.frame(e);
    t.portJoined(TAP, 'br0', ms(2000));
    t.syncCounters([lateBurstEntry()]);
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);
  });

  type KindCase = [string, Partial<KindCounts>, Partial<KindCounts>, Call[]];
  const kindCases: KindCase[] = [
    ['rarp all lost', { rarp: 5 }, { rarp: 5 }, [['framesBeforeForwarding', 'br0', 'rarp', 5], ['announcements', 'br0', 'rarp', false, 5]]],
    ['rarp all delivered', { rarp: 5 }, {}, [['announcements', 'br0', 'rarp', true, 5]]],
    [
      'garp 1 lost of 3',
      { garp: 3 },
      { garp: 1 },
      [['framesBeforeForwarding', 'br0', 'garp', 1], ['announcements', 'br0', 'garp', false, 1], ['announcements', 'br0', 'garp', true, 2]],
    ],
    ['na delivered', { na: 2 }, {}, [['announcements', 'br0', 'na', true, 2]]],
    ['legacy 0x0835 lost', { legacy: 4 }, { legacy: 4 }, [['framesBeforeForwarding', 'br0', 'legacy', 4], ['announcements', 'br0', 'legacy', false, 4]]],
    ['other frames are no announcements', { other: 10 }, { other: 4 }, [['framesBeforeForwarding', 'br0', 'other', 4]]],
    [
      'mixed, in KINDS order',
      { other: 3, rarp: 2, na: 1 },
      { other: 1, rarp: 2 },
      [
        ['framesBeforeForwarding', 'br0', 'other', 1],
        ['framesBeforeForwarding', 'br0', 'rarp', 2],
        ['announcements', 'br0', 'rarp', false, 2],
        ['announcements', 'br0', 'na', true, 1],
      ],
    ],
  ];
  it.each(kindCases)('kernel counts by kind: %s', (_name, kinds, unfwd, want) => {
    const { t, sink } = setup();
    forwardingTap(t);
    sink.take();
    const e = entry({ firstMs: 1100, lastMs: 1500, kinds, unfwd });
    t.syncCounters([e]);
    expect(sink.take()).toEqual(want);
    t.syncCounters([e]);
    expect(sink.take()).toEqual([]);
  });
});

describe('on time', () => {
  it('a live port forwarding before the first frame: on_time with the exact first-frame delay', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    t.portJoined(TAP, 'br0', ms(1000));
    t.portState(TAP, 'forwarding', ms(1000));
    t.frame(fwdEv(1250, { first: true, kind: 'other' }));
    t.frame(fwdEv(1300, { kind: 'garp' }));

    expect(verdictOf(t)).toBe('on_time');
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['onTime', 'br0', 0.25],
    ]);
    clock.at(2000);
    const v = t.portView('tap0')!;
    expect(v.verdict).toBe('on_time');
    expect(v.macs[0]).toMatchObject({ verdict: 'on_time', firstFrameDelaySeconds: 0.25, attachDelaySeconds: null, announcements: 1, framesBeforeForwarding: 0 });
    expect(v.timeline.map(brief)).toEqual([
      ['port_created', 0],
      ['joined', 1000, 'br0'],
      ['state', 1000, 'forwarding', 'br0', 'from none'],
      ['first_frame', 1250, MAC, 'other', true],
      ['verdict', 1250, MAC, 'on_time'],
      ['announcement', 1300, MAC, 'garp', true],
    ]);

    // forwarded frames in the kernel map: no late count, announcements delivered
    t.syncCounters([entry({ firstMs: 1250, lastMs: 1300, firstFwdMs: 1250, kinds: { other: 1, garp: 1 } })]);
    expect(sink.take()).toEqual([['announcements', 'br0', 'garp', true, 1]]);
  });

  it('a port found forwarding in the initial dump: on_time, no delay observed, never silent', () => {
    const { t, sink, clock } = setup({ silentAfterMs: 10_000 });
    t.portAppeared(port({ initial: true, bridge: 'br0', state: 'forwarding', tsNs: ms(5000) }));
    t.frame(fwdEv(6000, { first: true, kind: 'other' }));

    expect(verdictOf(t)).toBe('on_time');
    clock.at(60_000);
    t.tick();
    clock.at(600_000);
    t.tick();
    expect(sink.take()).toEqual([]); // no portJoined (not seen joining), no onTime, no silent
    const v = t.portView('tap0')!;
    expect(v.macs[0]).toMatchObject({ verdict: 'on_time', firstFrameDelaySeconds: null, attachDelaySeconds: null });
    expect(v.forwardingSince).toBe(iso(5000));
    expect(v.timeline.map(brief)).toEqual([
      ['port_found', 5000],
      ['first_frame', 6000, MAC, 'other', true],
      ['verdict', 6000, MAC, 'on_time'],
    ]);
  });
});

describe('events lost to rate limiting', () => {
  it('no event at all, but the map entry read at forwarding shows unforwarded frames: late', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    t.portJoined(TAP, 'br0', ms(2000));
    expect(t.macCount()).toBe(0);
    t.portState(TAP, 'forwarding', ms(2000), [lateBurstEntry()]);

    expect(verdictOf(t)).toBe('late');
    expect(t.macCount()).toBe(1);
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['lateAttach', 'br0', 1.9],
    ]);
    clock.at(3000);
    expect(t.portView('tap0')!.macs).toEqual([
      {
        mac: MAC,
        verdict: 'late',
        vlan: 0,
        firstFrameAt: iso(100),
        announcements: 5,
        framesBeforeForwarding: 5,
        attachDelaySeconds: 1.9,
        firstFrameDelaySeconds: null,
        rarpSent: 0,
      },
    ]);
  });

  it('a map entry whose first frame was forwarded is on time, not late', () => {
    const { t, sink } = setup();
    t.portAppeared(port({ initial: true, bridge: 'br0', state: 'blocking', tsNs: ms(0) }));
    const e = entry({ firstMs: 100, lastMs: 200, firstFwdMs: 100, kinds: { other: 2 } });
    t.portState(TAP, 'forwarding', ms(3000), [e]);
    expect(verdictOf(t)).toBe('on_time');
    expect(sink.take()).toEqual([]);
  });
});

describe('STP: listening, learning, forwarding, blocking', () => {
  /** A tap in br0 whose guest sent a RARP burst during listening; forwarding at 2010. */
  function stpLate() {
    const h = setup();
    const { t } = h;
    t.portAppeared(port({ tsNs: ms(0) }));
    t.portJoined(TAP, 'br0', ms(10));
    t.portState(TAP, 'listening', ms(10));
    for (const e of burst(100, { bridgePort: true, portState: 1 })) t.frame(e);
    t.portState(TAP, 'learning', ms(1010));
    t.frame(ev(1500, { kind: 'other', bridgePort: true, portState: 2 }));
    const e1 = entry({ firstMs: 100, lastMs: 1500, lastUnfwdMs: 1500, kinds: { rarp: 5, other: 1 }, unfwd: { rarp: 5, other: 1 } });
    t.portState(TAP, 'forwarding', ms(2010), [e1]);
    t.syncCounters([e1]);
    return { ...h, e1 };
  }

  it('frames during listening and learning count as before forwarding: late once', () => {
    const { t, sink } = stpLate();
    expect(verdictOf(t)).toBe('late');
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['lateAttach', 'br0', 1.91],
      ['framesBeforeForwarding', 'br0', 'other', 1],
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);
    expect(
      t
        .portView('tap0')!
        .timeline.filter((f) => f.type === 'state')
        .map(brief),
    ).toEqual([
      ['state', 10, 'listening', 'br0', 'from none'],
      ['state', 1010, 'learning', 'br0', 'from listening'],
      ['state', 2010, 'forwarding', 'br0', 'from learning'],
    ]);
  });

  it('a repeated state is no transition', () => {
    const { t, sink } = stpLate();
    sink.take();
    const before = t.events(0, 1000).events.length;
    t.portState(TAP, 'forwarding', ms(3000), [lateBurstEntry()]);
    expect(t.events(0, 1000).events.length).toBe(before);
    expect(sink.take()).toEqual([]);
  });

  type Cycle = [string, (t: Tracker, e1: MacEntry) => MacEntry, Call[]];
  const cycles: Cycle[] = [
    ['no new unforwarded frames: no second late count', (_t, e1) => e1, []],
    [
      'new unforwarded frames seen as events: a second late count, delay from that frame',
      (t) => {
        t.frame(ev(5500, { kind: 'other', bridgePort: true, portState: 4 }));
        return entry({ firstMs: 100, lastMs: 5500, lastUnfwdMs: 5500, kinds: { rarp: 5, other: 2 }, unfwd: { rarp: 5, other: 2 } });
      },
      [['lateAttach', 'br0', 1.5]],
    ],
    [
      'new unforwarded frames only in the map (events rate-limited): a second late count, delay from blocking',
      () => entry({ firstMs: 100, lastMs: 5500, lastUnfwdMs: 5500, kinds: { rarp: 5, other: 2 }, unfwd: { rarp: 5, other: 2 } }),
      [['lateAttach', 'br0', 2]],
    ],
  ];
  it.each(cycles)('forwarding -> blocking -> forwarding, %s', (_name, during, want) => {
    const { t, sink, e1 } = stpLate();
    sink.take();
    t.portState(TAP, 'blocking', ms(5000));
    const e2 = during(t, e1);
    t.portState(TAP, 'forwarding', ms(7000), [e2]);
    expect(sink.take().filter((c) => c[0] === 'lateAttach')).toEqual(want);
    expect(verdictOf(t)).toBe('late');
    // the verdict was already late: no second verdict fact
    expect(t.portView('tap0')!.timeline.filter((f) => f.type === 'verdict')).toHaveLength(1);
  });
});

describe('silent guests', () => {
  type SilentCase = [string, { up: 'live' | 'initial' | 'never'; guest: boolean; kind: Kind }, boolean];
  const cases: SilentCase[] = [
    ['a live guest that talks but never announces', { up: 'live', guest: true, kind: 'other' }, true],
    ['a guest that announced (gARP)', { up: 'live', guest: true, kind: 'garp' }, false],
    ['a guest that announced (IPv6 NA)', { up: 'live', guest: true, kind: 'na' }, false],
    ['an uplink (guest=false)', { up: 'live', guest: false, kind: 'other' }, false],
    ['a port found at start', { up: 'initial', guest: true, kind: 'other' }, false],
    ['a port that never forwards', { up: 'never', guest: true, kind: 'other' }, false],
  ];
  it.each(cases)('%s -> silent %s', (_name, c, want) => {
    const { t, sink, clock } = setup({ silentAfterMs: 10_000 });
    if (c.up === 'initial') t.portAppeared(port({ guest: c.guest, initial: true, bridge: 'br0', state: 'forwarding', tsNs: ms(1000) }));
    else {
      t.portAppeared(port({ guest: c.guest }));
      t.portJoined(TAP, 'br0', ms(1000));
      t.portState(TAP, c.up === 'live' ? 'forwarding' : 'listening', ms(1000));
    }
    const fwd = c.up !== 'never';
    t.frame(ev(1200, { first: true, kind: c.kind, forwarding: fwd, bridgePort: true, portState: fwd ? 3 : 1 }));
    const first = verdictOf(t);
    sink.take();

    clock.at(10_999); // 1 ms short of 10 s forwarding
    t.tick();
    expect(sink.take()).toEqual([]);
    expect(verdictOf(t)).toBe(first);

    clock.at(11_000);
    t.tick();
    clock.at(12_000);
    t.tick();
    clock.at(100_000);
    t.tick();
    expect(sink.take()).toEqual(want ? [['silent', 'br0']] : []);
    // a port that never forwards: its guest's frames died there, so late once --silent-after passed
    expect(verdictOf(t)).toBe(want ? 'silent' : c.up === 'never' ? 'late' : first);
    if (want) {
      const facts = t.portView('tap0')!.timeline.filter((f) => f.type === 'verdict').map(brief);
      expect(facts).toEqual([
        ['verdict', 1200, MAC, 'on_time'],
        ['verdict', 11_000, MAC, 'silent'],
      ]);
    }
  });

  it('a late guest that never announces is counted silent but stays late (the worse verdict)', () => {
    const { t, sink, clock } = setup({ silentAfterMs: 10_000 });
    t.portAppeared(port());
    t.frame(ev(100, { first: true, kind: 'other' }));
    t.portJoined(TAP, 'br0', ms(1000));
    t.portState(TAP, 'forwarding', ms(1000));
    sink.take();
    clock.at(11_000);
    t.tick();
    t.tick();
    expect(sink.take()).toEqual([['silent', 'br0']]);
    expect(verdictOf(t)).toBe('late');
  });

  it('the silent clock restarts when the port leaves forwarding', () => {
    const { t, sink, clock } = setup({ silentAfterMs: 10_000 });
    forwardingTap(t, 1000);
    t.frame(fwdEv(1200, { first: true, kind: 'other' }));
    t.portState(TAP, 'blocking', ms(5000));
    t.portState(TAP, 'forwarding', ms(8000));
    sink.take();
    clock.at(17_999);
    t.tick();
    expect(sink.take()).toEqual([]);
    clock.at(18_000);
    t.tick();
    expect(sink.take()).toEqual([['silent', 'br0']]);
  });
});

describe('bounds', () => {
  it('maxMacsPerPort keeps the first MACs and counts refused MACs once each; kernel counts of a refused MAC still reach the bridge', () => {
    const { t, sink } = setup({ maxMacsPerPort: 2 });
    forwardingTap(t);
    t.frame(fwdEv(1100, { first: true, mac: MAC, kind: 'other' }));
    t.frame(fwdEv(1200, { first: true, mac: MAC2, kind: 'other' }));
    t.frame(fwdEv(1300, { first: true, mac: MAC3, kind: 'garp' }));
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['onTime', 'br0', 0.1],
      ['onTime', 'br0', 0.2], // nothing for the refused MAC
    ]);
    expect(t.stats.macsRefused).toBe(1);
    expect(t.macCount()).toBe(2);
    expect(t.portInfo(TAP)!.macs).toEqual([MAC, MAC2]);
    expect(verdictOf(t, MAC3)).toBeUndefined();

    t.frame(fwdEv(1400, { mac: MAC3, kind: 'garp' })); // the same MAC refused again: not counted again
    expect(t.stats.macsRefused).toBe(1);
    expect(t.portInfo(TAP)!.macs).toEqual([MAC, MAC2]);

    t.syncCounters([entry({ mac: MAC3, firstMs: 1300, lastMs: 1400, firstFwdMs: 1300, kinds: { garp: 2 } })]);
    expect(sink.take()).toEqual([['announcements', 'br0', 'garp', true, 2]]);
    expect(t.macCount()).toBe(2);
    expect(t.stats.macsRefused).toBe(1); // the map read refuses the same MAC: still one

    t.frame(fwdEv(1500, { mac: '52:54:00:aa:bb:04', first: true }));
    expect(t.stats.macsRefused).toBe(2);
    t.portAppeared(port({ ifindex: 8, name: 'tap8' }));
    t.frame(fwdEv(1600, { ifindex: 8, mac: MAC3, first: true }));
    t.frame(fwdEv(1700, { ifindex: 8, mac: MAC, first: true }));
    t.frame(fwdEv(1800, { ifindex: 8, mac: '52:54:00:aa:bb:05', first: true })); // refused on another port: counted there
    expect(t.stats.macsRefused).toBe(3);
  });

  it('refused MACs are remembered up to maxMacsPerPort per port; past that each refused frame counts (an upper bound)', () => {
    const { t } = setup({ maxMacsPerPort: 1 });
    forwardingTap(t);
    t.frame(fwdEv(1100, { first: true }));
    t.frame(fwdEv(1200, { mac: MAC2, first: true }));
    t.frame(fwdEv(1300, { mac: MAC2 }));
    expect(t.stats.macsRefused).toBe(1);
    t.frame(fwdEv(1400, { mac: MAC3, first: true }));
    t.frame(fwdEv(1500, { mac: MAC3 }));
    expect(t.stats.macsRefused).toBe(3);
    t.frame(fwdEv(1600, { mac: MAC2 })); // still remembered
    expect(t.stats.macsRefused).toBe(3);
  });

  it('maxPorts refuses further ports and counts them; events for them are ignored', () => {
    const { t } = setup({ maxPorts: 2 });
    t.portAppeared(port({ ifindex: 1, name: 'tap1' }));
    t.portAppeared(port({ ifindex: 2, name: 'tap2' }));
    t.portAppeared(port({ ifindex: 3, name: 'tap3' }));
    t.portAppeared(port({ ifindex: 1, name: 'tap1' })); // already known: neither added nor refused
    expect(t.stats.portsRefused).toBe(1);
    expect(t.portCount()).toBe(2);
    expect(t.portInfo(3)).toBeUndefined();
    expect(t.portView('tap3')).toBeUndefined();
    const facts = t.events(0, 100).events.length;
    t.frame(ev(100, { ifindex: 3, first: true }));
    t.syncCounters([entry({ ifindex: 3, firstMs: 100, kinds: { rarp: 1 } })]);
    expect(t.events(0, 100).events).toHaveLength(facts);
    expect(t.macCount()).toBe(0);

    t.portDeleted(2, ms(200));
    t.portAppeared(port({ ifindex: 3, name: 'tap3' }));
    expect(t.portCount()).toBe(2);
    expect(t.portInfo(3)!.name).toBe('tap3');
  });

  it('the events ring drops the oldest facts and counts them', () => {
    const { t } = setup({ maxEvents: 3 });
    t.portAppeared(port());
    for (const e of burst(100).slice(0, 2)) t.frame(e); // first_frame + 2 announcements
    t.frame(ev(400, { kind: 'garp' })); // 5 facts in all
    expect(t.eventsDropped).toBe(2);
    const page = t.events(0, 100);
    expect(page.events.map((f) => f.seq)).toEqual([3, 4, 5]);
    expect(page.dropped).toBe(2);
    expect(page.next).toBe(5);
  });

  it('the per-port timeline keeps the latest facts; its drops are not event-ring drops', () => {
    const { t } = setup({ timelinePerPort: 4 });
    t.portAppeared(port());
    for (const e of burst(100)) t.frame(e); // 1 + 1 + 5 = 7 facts
    const tl = t.portView('tap0')!.timeline;
    expect(tl.map((f) => f.seq)).toEqual([4, 5, 6, 7]);
    expect(t.eventsDropped).toBe(0);
    expect(t.events(0, 100).events).toHaveLength(7);
  });
});

describe('rename and delete', () => {
  it('rename keeps the entry, its MACs and verdicts under the new name', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port());
    for (const e of burst(100)) t.frame(e);
    t.portJoined(TAP, 'br0', ms(2000));
    t.portState(TAP, 'forwarding', ms(2000), [lateBurstEntry()]);
    sink.take();
    t.portRenamed(TAP, 'vm1-eth0', ms(2500));
    t.portRenamed(TAP, 'vm1-eth0', ms(2600)); // same name: no fact

    clock.at(3000);
    expect(t.portView('tap0')).toBeUndefined();
    const v = t.portView('vm1-eth0')!;
    expect(v).toMatchObject({ name: 'vm1-eth0', ifindex: TAP, bridge: 'br0', verdict: 'late' });
    expect(v.macs.map((m) => [m.mac, m.verdict])).toEqual([[MAC, 'late']]);
    expect(v.timeline.at(-1)).toMatchObject({ type: 'renamed', port: 'vm1-eth0', detail: 'from tap0', monoNs: String(ms(2500)) });
    expect(v.timeline[0].port).toBe('tap0'); // history keeps the name it had
    expect(t.portInfo(TAP)).toEqual({ name: 'vm1-eth0', bridge: 'br0', guest: true, state: 'forwarding', macs: [MAC] });
    expect(verdictOf(t)).toBe('late');

    t.syncCounters([lateBurstEntry()]); // snapshots are keyed by ifindex: a rename changes nothing
    t.syncCounters([lateBurstEntry()]);
    expect(sink.take()).toEqual([
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);
  });

  it('delete removes the port, its MACs and snapshots; pending counts of a port that never joined go to bridge ""', () => {
    const { t, sink } = setup();
    const OTHER = 70; // an ifindex whose decimal starts like TAP's
    t.portAppeared(port());
    t.portAppeared(port({ ifindex: OTHER, name: 'tap70', bridge: 'br0', state: 'forwarding', initial: true }));
    for (const e of burst(100)) t.frame(e);
    const e70 = entry({ ifindex: OTHER, firstMs: 50, lastMs: 60, firstFwdMs: 50, kinds: { garp: 1 } });
    t.syncCounters([lateBurstEntry(), e70]);
    expect(sink.take()).toEqual([['announcements', 'br0', 'garp', true, 1]]); // tap0's counts wait for a bridge

    t.portDeleted(TAP, ms(3000));
    expect(sink.take()).toEqual([
      ['framesBeforeForwarding', '', 'rarp', 5],
      ['announcements', '', 'rarp', false, 5],
    ]);
    expect(t.portCount()).toBe(1);
    expect(t.macCount()).toBe(1); // tap70's MAC, known from the map read
    expect(t.portInfo(TAP)).toBeUndefined();
    expect(t.portView('tap0')).toBeUndefined();
    expect(verdictOf(t)).toBeUndefined();
    expect(t.events(0, 100).events.at(-1)).toMatchObject({ type: 'deleted', port: 'tap0' });

    // events and map entries for the deleted port are ignored
    const facts = t.events(0, 100).events.length;
    t.frame(ev(3100));
    expect(t.events(0, 100).events).toHaveLength(facts);
    t.syncCounters([lateBurstEntry(), e70]);
    expect(sink.take()).toEqual([]); // tap70's snapshot survived tap0's delete
    t.portDeleted(TAP, ms(3200)); // twice: nothing
    expect(sink.take()).toEqual([]);

    // the ifindex comes back: its snapshot is gone, so the same kernel values count from zero
    t.portAppeared(port({ tsNs: ms(4000) }));
    t.portJoined(TAP, 'br1', ms(4000));
    t.syncCounters([lateBurstEntry(), e70]);
    expect(sink.take()).toEqual([
      ['portJoined', 'br1'],
      ['framesBeforeForwarding', 'br1', 'rarp', 5],
      ['announcements', 'br1', 'rarp', false, 5],
    ]);
  });

  it('a port that leaves its bridge: later counts wait for the next bridge', () => {
    const { t, sink } = setup();
    forwardingTap(t);
    t.frame(fwdEv(1100, { first: true }));
    t.syncCounters([entry({ firstMs: 1100, firstFwdMs: 1100, kinds: { rarp: 1 } })]);
    t.portLeft(TAP, ms(2000));
    expect(t.portInfo(TAP)).toMatchObject({ bridge: '', state: 'none' });
    t.syncCounters([entry({ firstMs: 1100, lastMs: 2500, firstFwdMs: 1100, lastUnfwdMs: 2500, kinds: { rarp: 2 }, unfwd: { rarp: 1 } })]);
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['onTime', 'br0', 0.1],
      ['announcements', 'br0', 'rarp', true, 1],
    ]);
    t.portJoined(TAP, 'br1', ms(3000));
    expect(sink.take()).toEqual([
      ['portJoined', 'br1'],
      ['framesBeforeForwarding', 'br1', 'rarp', 1],
      ['announcements', 'br1', 'rarp', false, 1],
    ]);
  });
});

describe('LRU-recreated map entries', () => {
  it('a different firstNs restarts the delta from zero: no negative and no lost counts', () => {
    const { t, sink } = setup();
    t.portAppeared(port());
    t.portJoined(TAP, 'br0', ms(10));
    t.syncCounters([lateBurstEntry()]);
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);

    // evicted, then recreated with smaller counts than the old entry
    const gen2 = entry({ firstMs: 5000, lastMs: 5000, lastUnfwdMs: 5000, kinds: { rarp: 1 }, unfwd: { rarp: 1 } });
    t.syncCounters([gen2]);
    expect(sink.take()).toEqual([
      ['framesBeforeForwarding', 'br0', 'rarp', 1],
      ['announcements', 'br0', 'rarp', false, 1],
    ]);
    const gen2b = entry({ firstMs: 5000, lastMs: 6000, lastUnfwdMs: 5000, firstFwdMs: 6000, kinds: { rarp: 3 }, unfwd: { rarp: 1 } });
    t.syncCounters([gen2b]);
    expect(sink.take()).toEqual([['announcements', 'br0', 'rarp', true, 2]]);
  });

  it('an entry missing from a sync (evicted) counts from zero when it comes back', () => {
    const { t, sink } = setup();
    forwardingTap(t);
    sink.take();
    const e = entry({ firstMs: 1100, firstFwdMs: 1100, kinds: { garp: 2 } });
    t.syncCounters([e]);
    t.syncCounters([]);
    t.syncCounters([entry({ firstMs: 4000, firstFwdMs: 4000, kinds: { garp: 1 } })]);
    expect(sink.take()).toEqual([
      ['announcements', 'br0', 'garp', true, 2],
      ['onTime', 'br0', 0.1], // the MAC is first known from the map read: judged once, from its entry
      ['announcements', 'br0', 'garp', true, 1],
    ]);
  });

  type Refirst = [string, 'late' | 'on_time'];
  it.each<Refirst>([
    ['a late MAC stays late', 'late'],
    ['an on-time MAC is not observed twice', 'on_time'],
  ])('a second first-frame event from a recreated entry does not judge the MAC again: %s', (_name, was) => {
    const { t, sink } = setup();
    t.portAppeared(port());
    if (was === 'late') t.frame(ev(100, { first: true }));
    t.portJoined(TAP, 'br0', ms(1000));
    t.portState(TAP, 'forwarding', ms(1000));
    if (was === 'on_time') t.frame(fwdEv(1100, { first: true }));
    expect(verdictOf(t)).toBe(was);
    sink.take();

    t.frame(fwdEv(9000, { first: true, kind: 'other' })); // the kernel's entry was evicted and recreated
    expect(verdictOf(t)).toBe(was);
    expect(sink.take()).toEqual([]);
    expect(t.portView('tap0')!.timeline.filter((f) => f.type === 'verdict')).toHaveLength(1);
  });
});

describe('ring buffer read after the netlink transition it precedes', () => {
  // The ring is polled on a timer and netlink has its own socket: events stamped before the
  // forwarding transition can be consumed after it.
  it('with the map entries at forwarding: judged once, counts not doubled, no late count at the next cycle', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port());
    t.portJoined(TAP, 'br0', ms(1000));
    t.portState(TAP, 'forwarding', ms(1000), [lateBurstEntry()]);
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['lateAttach', 'br0', 0.9],
    ]);
    for (const e of burst(100)) t.frame(e); // consumed late
    t.syncCounters([lateBurstEntry()]);
    expect(sink.take()).toEqual([
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);
    clock.at(2000);
    expect(t.portView('tap0')!.macs[0]).toMatchObject({ verdict: 'late', announcements: 5, framesBeforeForwarding: 5, attachDelaySeconds: 0.9 });

    t.portState(TAP, 'blocking', ms(5000));
    t.portState(TAP, 'forwarding', ms(7000), [lateBurstEntry()]);
    expect(sink.take()).toEqual([]);
  });

  it('map reads interleaved with the events they already counted: each frame counted once in the view', () => {
    const { t, clock } = setup();
    t.portAppeared(port());
    const [a, b, c, d, e] = burst(100);
    t.frame(a);
    t.frame(b);
    // the map is read after the third frame, before its event is consumed
    t.syncCounters([entry({ firstMs: 100, lastMs: 300, lastUnfwdMs: 300, kinds: { rarp: 3 }, unfwd: { rarp: 3 } })]);
    t.frame(c);
    t.frame(d);
    t.frame(e);
    clock.at(1000);
    expect(t.portView('tap0')!.macs[0]).toMatchObject({ announcements: 5, framesBeforeForwarding: 5 });
  });

  it('without map entries at forwarding: the late events still judge that transition, once', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port());
    t.portJoined(TAP, 'br0', ms(1000));
    t.portState(TAP, 'forwarding', ms(1000));
    sink.take();
    for (const e of burst(100)) t.frame(e);
    expect(verdictOf(t)).toBe('late');
    expect(sink.take()).toEqual([['lateAttach', 'br0', 0.9]]);
    clock.at(2000);
    expect(t.portView('tap0')!.macs[0]).toMatchObject({ attachDelaySeconds: 0.9, announcements: 5 });

    t.portState(TAP, 'blocking', ms(5000));
    t.portState(TAP, 'forwarding', ms(7000));
    expect(sink.take()).toEqual([]);
  });
});

describe('events(since, limit)', () => {
  function sevenFacts() {
    const h = setup();
    h.t.portAppeared(port());
    for (const e of burst(100)) h.t.frame(e); // seq 1..7
    h.clock.at(1000);
    return h;
  }

  it('pages with cursors, limit and next', () => {
    const { t } = sevenFacts();
    const pages: number[][] = [];
    let since = 0;
    for (;;) {
      const p = t.events(since, 3);
      if (p.events.length === 0) {
        expect(p.next).toBe(since);
        break;
      }
      pages.push(p.events.map((f) => f.seq));
      expect(p.next).toBe(p.events.at(-1)!.seq);
      expect(p.dropped).toBe(0);
      since = p.next;
    }
    expect(pages).toEqual([
      [1, 2, 3],
      [4, 5, 6],
      [7],
    ]);
  });

  type PageCase = [string, number, number, number[], number];
  const cases: PageCase[] = [
    ['from the start', 0, 100, [1, 2, 3, 4, 5, 6, 7], 7],
    ['a negative cursor is the start', -5, 2, [1, 2], 2],
    ['after a cursor', 5, 100, [6, 7], 7],
    ['at the head', 7, 100, [], 7],
    // a cursor past the head is from an earlier run (seq restarts at 1): resume at the oldest kept
    ['past the head (an earlier run) restarts at the oldest kept', 42, 100, [1, 2, 3, 4, 5, 6, 7], 7],
    ['past the head, paged', 8, 3, [1, 2, 3], 3],
    ['limit 0', 3, 0, [], 3],
    ['limit 1', 3, 1, [4], 4],
  ];
  it.each(cases)('%s: events(%i, %i)', (_name, since, limit, seqs, next) => {
    const { t } = sevenFacts();
    const p = t.events(since, limit);
    expect(p.events.map((f) => f.seq)).toEqual(seqs);
    expect(p.next).toBe(next);
  });

  it('shows facts with wall and monotonic times, without the ifindex', () => {
    const { t } = sevenFacts();
    const [a, b] = t.events(0, 2).events;
    expect(a).toEqual({ seq: 1, at: iso(0), monoNs: '0', port: 'tap0', type: 'port_created', state: 'none' });
    expect(b).toEqual({ seq: 2, at: iso(100), monoNs: String(ms(100)), port: 'tap0', type: 'first_frame', mac: MAC, kind: 'rarp', vlan: 0, delivered: false });
    expect('ifindex' in a).toBe(false);
  });

  it('a cursor from an earlier run never sticks: the next page moves on with this run', () => {
    const h = setup({ maxEvents: 4 });
    expect(h.t.events(42, 10)).toEqual({ events: [], next: 0, dropped: 0 }); // nothing yet in this run
    h.t.portAppeared(port());
    for (const e of burst(100)) h.t.frame(e); // seq 1..7, 4 kept
    const p = h.t.events(42, 10);
    expect(p.events.map((f) => f.seq)).toEqual([4, 5, 6, 7]);
    expect(p.next).toBe(7);
    expect(h.t.events(p.next, 10)).toEqual({ events: [], next: 7, dropped: 3 });
  });

  it('finds the cursor in a large ring that has wrapped', () => {
    const h = setup({ maxEvents: 1000 });
    h.t.portAppeared(port());
    for (let i = 0; i < 2500; i++) h.t.frame(ev(10 + i, { kind: 'garp' })); // 1 + 2500 facts
    expect(h.t.eventsDropped).toBe(1501);
    for (const since of [0, 1501, 1502, 1777, 2499, 2500, 2501]) {
      const p = h.t.events(since, 3);
      const from = Math.max(since, 1501) + 1;
      const want = [from, from + 1, from + 2].filter((n) => n <= 2501);
      expect(p.events.map((f) => f.seq), `since ${since}`).toEqual(want);
      expect(p.next).toBe(want.length ? want.at(-1) : since);
    }
  });

  it('a cursor older than the ring resumes at the oldest fact kept', () => {
    const h = setup({ maxEvents: 4 });
    h.t.portAppeared(port());
    for (const e of burst(100)) h.t.frame(e);
    const p = h.t.events(1, 2);
    expect(p.events.map((f) => f.seq)).toEqual([4, 5]);
    expect(p.dropped).toBe(3);
    expect(p.next).toBe(5);
  });
});

describe('other port facts', () => {
  it('carrier changes and rarpSent are facts; a repeated carrier state is none', () => {
    const { t, clock } = setup();
    forwardingTap(t);
    t.frame(fwdEv(1100, { first: true }));
    t.portCarrier(TAP, false, ms(1200));
    t.portCarrier(TAP, false, ms(1250));
    t.portCarrier(TAP, true, ms(1300));
    t.rarpSent(TAP, MAC, ms(1400), 'manual');
    t.rarpSent(TAP, '02:00:00:00:00:09', ms(1500), 'manual'); // a MAC never seen: a fact, no count
    clock.at(2000);
    const v = t.portView('tap0')!;
    expect(v.timeline.slice(-4).map(brief)).toEqual([
      ['carrier', 1200, 'down'],
      ['carrier', 1300, 'up'],
      ['rarp_sent', 1400, 'manual'],
      ['rarp_sent', 1500, 'manual'],
    ]);
    expect(v.carrier).toBe(true);
    expect(v.macs.map((m) => [m.mac, m.rarpSent])).toEqual([[MAC, 1]]);
  });

  it('facts about unknown ports are ignored', () => {
    const { t, sink } = setup();
    t.portJoined(99, 'br0', ms(1));
    t.portLeft(99, ms(1));
    t.portState(99, 'forwarding', ms(1), [lateBurstEntry()]);
    t.portCarrier(99, true, ms(1));
    t.portRenamed(99, 'x', ms(1));
    t.portDeleted(99, ms(1));
    t.rarpSent(99, MAC, ms(1), 'x');
    t.syncCounters([entry({ ifindex: 99, firstMs: 1, kinds: { rarp: 1 } })]);
    expect(t.events(0, 100).events).toEqual([]);
    expect(sink.take()).toEqual([]);
    expect(t.portCount()).toBe(0);
  });
});

describe('uplinks (guest=false)', () => {
  const UP = 9;
  it('keep their port facts but no MACs, no frame facts and no guest counts', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port({ ifindex: UP, name: 'up0', kind: 'veth', guest: false, tsNs: ms(0) }));
    t.portAppeared(port({ tsNs: ms(0) })); // a guest tap beside it
    t.portJoined(UP, 'br0', ms(10));
    // switches' and other hosts' frames, before and after forwarding
    t.frame(ev(5, { ifindex: UP, first: true }));
    t.portState(UP, 'forwarding', ms(10), [entry({ ifindex: UP, firstMs: 5, lastUnfwdMs: 5, kinds: { rarp: 1 }, unfwd: { rarp: 1 } })]);
    t.frame(fwdEv(20, { ifindex: UP, mac: MAC2, first: true, kind: 'garp' }));
    t.frame(fwdEv(30, { ifindex: UP, mac: MAC3, first: true, kind: 'other' }));
    t.portJoined(TAP, 'br0', ms(40));
    t.portState(TAP, 'forwarding', ms(40));
    t.syncCounters([
      entry({ ifindex: UP, firstMs: 5, lastMs: 5, lastUnfwdMs: 5, kinds: { rarp: 1 }, unfwd: { rarp: 1 } }),
      entry({ ifindex: UP, mac: MAC2, firstMs: 20, firstFwdMs: 20, kinds: { garp: 1 } }),
      entry({ ifindex: UP, mac: MAC3, firstMs: 30, firstFwdMs: 30, kinds: { other: 1 } }),
      entry({ firstMs: 50, firstFwdMs: 50, kinds: { garp: 2 } }), // the guest's
    ]);
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['portJoined', 'br0'],
      ['announcements', 'br0', 'garp', true, 2],
      ['onTime', 'br0', 0.01],
    ]);
    expect(t.portInfo(UP)!.macs).toEqual([]);
    expect(t.macCount()).toBe(1);
    clock.at(30_000);
    t.tick(); // no MAC on the uplink to be silent
    expect(sink.take()).toEqual([]);
    const v = t.portView('up0')!;
    expect(v.macs).toEqual([]);
    expect(v.verdict).toBe('pending');
    expect(v.timeline.map(brief)).toEqual([
      ['port_created', 0],
      ['joined', 10, 'br0'],
      ['state', 10, 'forwarding', 'br0', 'from none'],
    ]);
    expect(t.events(0, 100).events.filter((f) => f.port === 'up0').map((f) => f.type)).toEqual(['port_created', 'joined', 'state']);
  });

  it('an uplink in no bridge holds no pending counts for its bridge to come', () => {
    const { t, sink } = setup();
    t.portAppeared(port({ ifindex: UP, name: 'up0', kind: 'veth', guest: false }));
    t.syncCounters([entry({ ifindex: UP, firstMs: 5, lastUnfwdMs: 5, kinds: { rarp: 3 }, unfwd: { rarp: 3 } })]);
    t.portJoined(UP, 'br0', ms(10));
    t.portDeleted(UP, ms(20));
    expect(sink.take()).toEqual([['portJoined', 'br0']]);
  });
});

describe('first_frame_delay when netlink is behind the kernel', () => {
  // The kernel flags a frame forwarding from its own port state; netlink reports that state
  // afterwards, and the daemon drains the ring before applying each netlink fact: the first
  // forwarded frame is often applied before the tracker knows the port is forwarding.
  type Case = [string, number, number];
  it.each<Case>([
    ['netlink stamped after the frame: delay 0', 1300, 0],
    ['netlink stamped before the frame', 1200, 0.05],
  ])('on_time at the frame, delay observed once at the forwarding state: %s', (_name, fwdMs, want) => {
    const { t, sink, clock } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    t.portJoined(TAP, 'br0', ms(1000));
    t.portState(TAP, 'learning', ms(1000));
    t.frame(fwdEv(1250, { first: true, kind: 'other' }));
    expect(verdictOf(t)).toBe('on_time');
    expect(sink.take()).toEqual([['portJoined', 'br0']]);

    t.portState(TAP, 'forwarding', ms(fwdMs));
    expect(sink.take()).toEqual([['onTime', 'br0', want]]);
    clock.at(2000);
    expect(t.portView('tap0')!.macs[0]).toMatchObject({ verdict: 'on_time', firstFrameDelaySeconds: want, attachDelaySeconds: null });

    t.portState(TAP, 'blocking', ms(3000));
    t.portState(TAP, 'forwarding', ms(4000));
    t.frame(fwdEv(4100, { first: true, kind: 'other' })); // a recreated kernel entry
    expect(sink.take()).toEqual([]);
  });

  it('a remembered first frame is forgotten when the port leaves its bridge', () => {
    const { t, sink } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    t.portJoined(TAP, 'br0', ms(1000));
    t.frame(fwdEv(1250, { first: true, kind: 'other' })); // netlink never told br0's forwarding
    t.portLeft(TAP, ms(2000));
    t.portJoined(TAP, 'br1', ms(3000));
    t.portState(TAP, 'forwarding', ms(3000));
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['portJoined', 'br1'],
    ]);
  });

  it('only for a port seen coming up, and only first frames of this cycle', () => {
    const { t, sink } = setup();
    // found at start: no delay is known
    t.portAppeared(port({ initial: true, bridge: 'br0', state: 'learning', tsNs: ms(0) }));
    t.frame(fwdEv(100, { first: true, kind: 'other' }));
    t.portState(TAP, 'forwarding', ms(200));
    // a live port: a forwarded first frame older than the port's last forwarding period
    t.portAppeared(port({ ifindex: 8, name: 'tap8', tsNs: ms(0) }));
    t.portJoined(8, 'br0', ms(10));
    t.portState(8, 'forwarding', ms(10));
    t.portState(8, 'blocking', ms(500));
    t.frame(fwdEv(400, { ifindex: 8, first: true, kind: 'other' })); // read late
    t.portState(8, 'forwarding', ms(900));
    expect(sink.take()).toEqual([['portJoined', 'br0']]);
    expect(verdictOf(t, MAC, 8)).toBe('on_time');
  });
});

describe('a MAC first known from a map read (its first-frame event was lost)', () => {
  it('first frame forwarded: on_time, delay observed, counts absorbed', () => {
    const { t, sink, clock } = setup();
    forwardingTap(t, 1000);
    sink.take();
    t.syncCounters([entry({ firstMs: 1100, lastMs: 1200, firstFwdMs: 1100, kinds: { other: 1, garp: 1 }, vlan: 5 })]);
    expect(sink.take()).toEqual([
      ['announcements', 'br0', 'garp', true, 1],
      ['onTime', 'br0', 0.1],
    ]);
    clock.at(2000);
    expect(t.portView('tap0')!.macs).toEqual([
      {
        mac: MAC,
        verdict: 'on_time',
        vlan: 5,
        firstFrameAt: iso(1100),
        announcements: 1,
        framesBeforeForwarding: 0,
        attachDelaySeconds: null,
        firstFrameDelaySeconds: 0.1,
        rarpSent: 0,
      },
    ]);
    t.syncCounters([entry({ firstMs: 1100, lastMs: 1200, firstFwdMs: 1100, kinds: { other: 1, garp: 1 } })]);
    expect(sink.take()).toEqual([]);
  });

  it('first frame not forwarded, port not forwarding yet: late at the forwarding transition, even without entries then', () => {
    const { t, sink } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    t.portJoined(TAP, 'br0', ms(10));
    t.syncCounters([lateBurstEntry()]);
    expect(verdictOf(t)).toBe('pending');
    expect(sink.take()).toEqual([
      ['portJoined', 'br0'],
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
    ]);
    t.portState(TAP, 'forwarding', ms(2000)); // the map read at the transition failed
    expect(verdictOf(t)).toBe('late');
    expect(sink.take()).toEqual([['lateAttach', 'br0', 1.9]]);
  });

  it('frames before the current forwarding start: late right away at that transition, once', () => {
    const { t, sink, clock } = setup();
    forwardingTap(t, 1000);
    sink.take();
    t.syncCounters([lateBurstEntry()]);
    expect(verdictOf(t)).toBe('late');
    expect(sink.take()).toEqual([
      ['framesBeforeForwarding', 'br0', 'rarp', 5],
      ['announcements', 'br0', 'rarp', false, 5],
      ['lateAttach', 'br0', 0.9],
    ]);
    clock.at(2000);
    expect(t.portView('tap0')!.macs[0]).toMatchObject({ verdict: 'late', attachDelaySeconds: 0.9, framesBeforeForwarding: 5, announcements: 5 });
    for (const e of burst(100)) t.frame(e); // the events, read even later
    t.portState(TAP, 'blocking', ms(5000));
    t.portState(TAP, 'forwarding', ms(7000), [lateBurstEntry()]);
    expect(sink.take()).toEqual([]);
  });

  it('unforwarded frames after the forwarding start (netlink behind): judged at the next forwarding transition', () => {
    const { t, sink } = setup();
    forwardingTap(t, 1000);
    sink.take();
    t.syncCounters([entry({ firstMs: 1500, lastMs: 1500, lastUnfwdMs: 1500, kinds: { rarp: 1 }, unfwd: { rarp: 1 } })]);
    expect(verdictOf(t)).toBe('pending');
    t.portState(TAP, 'blocking', ms(1600));
    t.portState(TAP, 'forwarding', ms(3000));
    expect(verdictOf(t)).toBe('late');
    expect(sink.take().filter((c) => c[0] === 'lateAttach')).toEqual([['lateAttach', 'br0', 1.5]]);
  });
});

describe('Ring', () => {
  it('keeps the latest items in order and counts the dropped', () => {
    const r = new Ring<number>(3);
    expect(r.toArray()).toEqual([]);
    for (let i = 1; i <= 8; i++) r.push(i);
    expect(r.toArray()).toEqual([6, 7, 8]);
    expect(r.length).toBe(3);
    expect(r.dropped).toBe(5);
    expect(r.slice(1)).toEqual([7, 8]);
    expect(r.slice(1, 2)).toEqual([7]);
    expect(r.slice(2, 99)).toEqual([8]);
    const empty = new Ring<number>(0);
    empty.push(1);
    expect([empty.toArray(), empty.dropped]).toEqual([[], 1]);
  });

  it('push into a full ring moves nothing (no Array shift)', () => {
    const r = new Ring<number>(1000);
    for (let i = 0; i < 1000; i++) r.push(i);
    const shift = Array.prototype.shift;
    let shifts = 0;
    Array.prototype.shift = function <T>(this: T[]): T | undefined {
      shifts++;
      return shift.call(this) as T | undefined;
    };
    try {
      for (let i = 0; i < 100; i++) r.push(i);
    } finally {
      Array.prototype.shift = shift;
    }
    expect(shifts).toBe(0);
    expect(r.dropped).toBe(100);
  });

  it('finds the first item of a sorted key by binary search', () => {
    const r = new Ring<number>(1000);
    for (let i = 1; i <= 1500; i++) r.push(i); // 501..1500 kept, wrapped
    let calls = 0;
    const at = (n: number) =>
      r.partitionPoint((x) => {
        calls++;
        return x > n;
      });
    expect([0, 500, 501, 1000, 1499, 1500, 2000].map(at)).toEqual([0, 0, 1, 500, 999, 1000, 1000]);
    expect(calls).toBeLessThanOrEqual(7 * 11);
  });
});

describe('a guest whose bridge port never comes to forward', () => {
  it('is late in the API after --silent-after, without a late_attach count until it forwards; a tap in no bridge stays pending', async () => {
    const { Tracker } = await import('../../src/tracker/timeline.js');
    let now = 1_000_000_000n;
    const calls: unknown[][] = [];
    const sink = new Proxy({}, { get: (_t, name) => (...a: unknown[]) => calls.push([name, ...a]) }) as never;
    const t = new Tracker({ clock: { monoNs: () => now, wallMs: () => Number(now / 1_000_000n) }, sink, silentAfterMs: 2000 });
    t.portAppeared({ ifindex: 5, name: 'tap5', kind: 'tun', guest: true, bridge: '', state: 'none', carrier: true, tsNs: now, initial: false });
    t.portAppeared({ ifindex: 6, name: 'tap6', kind: 'tun', guest: true, bridge: '', state: 'none', carrier: true, tsNs: now, initial: false });
    t.frame({ tsNs: now + 1000n, ifindex: 5, mac: '52:54:00:00:00:05', kind: 'rarp', first: true, forwarding: false, bridgePort: false, vlan: 0, portState: 0xff, len: 60 });
    t.frame({ tsNs: now + 1000n, ifindex: 6, mac: '52:54:00:00:00:06', kind: 'rarp', first: true, forwarding: false, bridgePort: false, vlan: 0, portState: 0xff, len: 60 });
    t.portJoined(5, 'br0', now + 2000n);
    t.portState(5, 'blocking', now + 3000n);
    now += 1_000_000_000n;
    t.tick();
    expect(t.portView('tap5')!.macs[0].verdict).toBe('pending');
    now += 1_500_000_000n;
    t.tick();
    expect(t.portView('tap5')!.macs[0].verdict).toBe('late');
    expect(t.portView('tap6')!.macs[0].verdict).toBe('pending'); // in no bridge: OVS or routed
    expect(calls.filter((c) => c[0] === 'lateAttach')).toEqual([]);
    t.portState(5, 'forwarding', now + 1n);
    expect(calls.filter((c) => c[0] === 'lateAttach')).toEqual([['lateAttach', 'br0', expect.closeTo(2.5, 3)]]);
  });
});
