import { describe, expect, it } from 'vitest';
import { KINDS, type BpfEvent, type Kind, type KindCounts, type MacEntry } from '../../src/bpf/abi.js';
import { Tracker, type TrackerOptions } from '../../src/tracker/timeline.js';
import type { Clock, FactView, PortInput, TrackerSink } from '../../src/tracker/types.js';

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
const ev = (atMs: number, o: Partial<BpfEvent> = {}): BpfEvent => ({
  tsNs: ms(atMs),
  ifindex: TAP,
  mac: MAC,
  kind: 'rarp',
  first: false,
  forwarding: false,
  bridgePort: false,
  vlan: 0,
  portState: 0xff,
  len: 60,
  ...o,
});
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

// ---- the product's main case ----

describe('late attach: the guest announces before its tap joins the bridge', () => {
  it('judges late at forwarding, with attach delay = forwarding - first frame, and the facts in order', () => {
    const { t, sink, clock } = setup();
    t.portAppeared(port({ tsNs: ms(0) }));
    for (const e of burst(100)) t.frame(e);
    expect(t.macVerdict(TAP, MAC)).toBe('pending'); // not judged until the port can forward
    expect(sink.take()).toEqual([]);

    t.portJoined(TAP, 'br0', ms(2000));
    t.portState(TAP, 'forwarding', ms(2000), [lateBurstEntry()]);

    expect(t.macVerdict(TAP, MAC)).toBe('late');
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

    expect(t.macVerdict(TAP, MAC)).toBe('on_time');
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

    expect(t.macVerdict(TAP, MAC)).toBe('on_time');
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

    expect(t.macVerdict(TAP, MAC)).toBe('late');
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
    expect(t.macVerdict(TAP, MAC)).toBe('on_time');
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
    expect(t.macVerdict(TAP, MAC)).toBe('late');
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
    expect(t.macVerdict(TAP, MAC)).toBe('late');
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
    const first = t.macVerdict(TAP, MAC);
    sink.take();

    clock.at(10_999); // 1 ms short of 10 s forwarding
    t.tick();
    expect(sink.take()).toEqual([]);
    expect(t.macVerdict(TAP, MAC)).toBe(first);

    clock.at(11_000);
    t.tick();
    clock.at(12_000);
    t.tick();
    clock.at(100_000);
    t.tick();
    expect(sink.take()).toEqual(want ? [['silent', 'br0']] : []);
    expect(t.macVerdict(TAP, MAC)).toBe(want ? 'silent' : first);
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
    expect(t.macVerdict(TAP, MAC)).toBe('late');
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
  it('maxMacsPerPort keeps the first MACs and counts refusals; kernel counts of a refused MAC still reach the bridge', () => {
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
    expect(t.macVerdict(TAP, MAC3)).toBeUndefined();
    expect(t.portsWithMac(MAC3)).toEqual([]);

    t.frame(fwdEv(1400, { mac: MAC3, kind: 'garp' })); // refused again: every refusal counts
    expect(t.stats.macsRefused).toBe(2);
    expect(t.portInfo(TAP)!.macs).toEqual([MAC, MAC2]);

    t.syncCounters([entry({ mac: MAC3, firstMs: 1300, lastMs: 1400, firstFwdMs: 1300, kinds: { garp: 2 } })]);
    expect(sink.take()).toEqual([['announcements', 'br0', 'garp', true, 2]]);
    expect(t.macCount()).toBe(2);
  });

  it('maxPorts refuses further ports and counts them; events for them are counted as unknown', () => {
    const { t } = setup({ maxPorts: 2 });
    t.portAppeared(port({ ifindex: 1, name: 'tap1' }));
    t.portAppeared(port({ ifindex: 2, name: 'tap2' }));
    t.portAppeared(port({ ifindex: 3, name: 'tap3' }));
    t.portAppeared(port({ ifindex: 1, name: 'tap1' })); // already known: neither added nor refused
    expect(t.stats.portsRefused).toBe(1);
    expect(t.portCount()).toBe(2);
    expect(t.portInfo(3)).toBeUndefined();
    expect(t.portView('tap3')).toBeUndefined();
    t.frame(ev(100, { ifindex: 3, first: true }));
    expect(t.stats.unknownPortEvents).toBe(1);

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
    expect(t.portsWithMac(MAC)).toEqual([TAP]);
    expect(t.macVerdict(TAP, MAC)).toBe('late');

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
    t.portAppeared(port({ ifindex: OTHER, name: 'tap70', bridge: 'br0', state: 'forwarding' }));
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
    expect(t.macCount()).toBe(0);
    expect(t.portInfo(TAP)).toBeUndefined();
    expect(t.portView('tap0')).toBeUndefined();
    expect(t.macVerdict(TAP, MAC)).toBeUndefined();
    expect(t.portsWithMac(MAC)).toEqual([]);
    expect(t.events(0, 100).events.at(-1)).toMatchObject({ type: 'deleted', port: 'tap0' });

    // events and map entries for the deleted port are ignored
    t.frame(ev(3100));
    expect(t.stats.unknownPortEvents).toBe(1);
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
    expect(t.macVerdict(TAP, MAC)).toBe(was);
    sink.take();

    t.frame(fwdEv(9000, { first: true, kind: 'other' })); // the kernel's entry was evicted and recreated
    expect(t.macVerdict(TAP, MAC)).toBe(was);
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
    expect(t.macVerdict(TAP, MAC)).toBe('late');
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
    ['past the head keeps the cursor', 42, 100, [], 42],
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
