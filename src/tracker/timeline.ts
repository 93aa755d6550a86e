// Per-port and per-MAC state machine fed by netlink facts and kernel events. Pure: no I/O, an
// injected clock, bounded memory (refusals and drops are counted, never silent).
// Only guest ports (`guest`) have MACs and feed the guest metrics: an uplink carries the frames
// of every other host, which are no guest's; it keeps its port facts (created, joined, state...).
import { ANNOUNCE_KINDS, type BpfEvent, type Kind, type MacEntry } from '../bpf/abi.js';
import { Ring } from './ring.js';
import type { MacTrack, PortTrack } from './model.js';
import { KernelDeltas } from './deltas.js';
import { factView, portView } from './views.js';
import { firstFrameVerdict, isSilent, type Verdict } from './verdict.js';
import {
  systemClock,
  type Clock,
  type Fact,
  type FactView,
  type PortInput,
  type PortState,
  type PortView,
  type TrackerSink,
} from './types.js';

export interface TrackerOptions {
  clock?: Clock;
  sink?: TrackerSink;
  silentAfterMs?: number;
  maxPorts?: number;
  maxMacsPerPort?: number;
  timelinePerPort?: number;
  maxEvents?: number;
  /** every fact, as it is made (consumers that follow the timeline: convergence) */
  facts?: (f: Fact) => void;
}


export class Tracker {
  /**
   * portsRefused: ports past maxPorts. macsRefused: MACs refused on a port that already has
   * maxMacsPerPort, each counted once per port; a port remembers that many refused MACs, past
   * which each refusal of another one (a frame or a map read) counts again: an upper bound
   * under a MAC flood, with memory still bounded.
   */
  readonly stats = { portsRefused: 0, macsRefused: 0 };
  private readonly clock: Clock;
  private readonly sink: TrackerSink | undefined;
  private readonly silentAfterNs: bigint;
  private readonly maxPorts: number;
  private readonly maxMacs: number;
  private readonly timelineLen: number;
  private readonly ports = new Map<number, PortTrack>();
  private readonly deltas = new KernelDeltas();
  private readonly log: Ring<Fact>;
  private readonly onFact: ((f: Fact) => void) | undefined;
  private seq = 0;

  constructor(o: TrackerOptions = {}) {
    this.clock = o.clock ?? systemClock;
    this.sink = o.sink;
    this.silentAfterNs = BigInt(Math.round((o.silentAfterMs ?? 10_000) * 1e6));
    this.maxPorts = o.maxPorts ?? 4096;
    this.maxMacs = o.maxMacsPerPort ?? 64;
    this.timelineLen = o.timelinePerPort ?? 64;
    this.log = new Ring<Fact>(o.maxEvents ?? 4096);
    this.onFact = o.facts;
  }

  get eventsDropped(): number {
    return this.log.dropped;
  }

  // ---- netlink facts ----

  portAppeared(p: PortInput): void {
    if (this.ports.has(p.ifindex)) return;
    if (this.ports.size >= this.maxPorts) {
      this.stats.portsRefused++;
      return;
    }
    const { tsNs, initial, ...rest } = p;
    const port: PortTrack = {
      ...rest,
      live: !initial,
      createdNs: tsNs,
      cycleStartNs: tsNs,
      forwardingSinceNs: p.state === 'forwarding' ? tsNs : undefined,
      macs: new Map(),
      refused: new Set(),
      timeline: new Ring(this.timelineLen),
      pending: new Map(),
      lateAtNs: undefined,
    };
    this.ports.set(p.ifindex, port);
    this.fact(port, tsNs, { type: initial ? 'port_found' : 'port_created', bridge: p.bridge || undefined, state: p.state });
  }

  portJoined(ifindex: number, bridge: string, tsNs: bigint): void {
    const port = this.ports.get(ifindex);
    if (!port || port.bridge === bridge) return;
    port.bridge = bridge;
    this.sink?.portJoined(bridge);
    this.fact(port, tsNs, { type: 'joined', bridge });
    this.flushPending(port);
  }

  portLeft(ifindex: number, tsNs: bigint): void {
    const port = this.ports.get(ifindex);
    if (!port || !port.bridge) return;
    this.fact(port, tsNs, { type: 'left', bridge: port.bridge });
    for (const m of port.macs.values()) m.onTimeNs = undefined; // forwarded in the bridge it left
    port.bridge = '';
    this.setState(port, 'none', tsNs, []);
  }

  /**
   * Port state change; `entries` are the kernel's entries for this port, read at this moment,
   * so the verdict at the forwarding transition is exact even if events were rate-limited.
   */
  portState(ifindex: number, state: PortState, tsNs: bigint, entries: MacEntry[] = []): void {
    const port = this.ports.get(ifindex);
    if (port) this.setState(port, state, tsNs, entries);
  }

  portCarrier(ifindex: number, up: boolean, tsNs: bigint): void {
    const port = this.ports.get(ifindex);
    if (!port || port.carrier === up) return;
    port.carrier = up;
    this.fact(port, tsNs, { type: 'carrier', detail: up ? 'up' : 'down' });
  }

  portRenamed(ifindex: number, name: string, tsNs: bigint): void {
    const port = this.ports.get(ifindex);
    if (!port || port.name === name) return;
    const old = port.name;
    port.name = name;
    this.fact(port, tsNs, { type: 'renamed', detail: `from ${old}` });
  }

  portDeleted(ifindex: number, tsNs: bigint): void {
    const port = this.ports.get(ifindex);
    if (!port) return;
    this.flushPending(port, true);
    this.fact(port, tsNs, { type: 'deleted' });
    this.ports.delete(ifindex);
    this.deltas.forgetPort(ifindex);
  }

  // ---- kernel facts ----

  frame(ev: BpfEvent): void {
    const port = this.ports.get(ev.ifindex);
    if (!port?.guest) return; // an unwatched port, or an uplink: no guest's frame
    const known = port.macs.has(ev.mac);
    const m = this.macTrack(port, ev.mac, ev.tsNs, ev.vlan);
    if (!m) return;
    m.vlan = ev.vlan;
    // the ring is polled, netlink and map reads are not: an event may come after a map read
    // that already counted its frame, or after the forwarding transition that followed it
    const counted = ev.tsNs <= m.countedNs;
    if (!ev.forwarding) {
      if (!counted) m.unfwdFrames++; // corrected by the kernel count at the next sync
      this.unforwarded(port, m, ev.tsNs);
    }
    if (ev.first) {
      this.fact(port, ev.tsNs, { type: 'first_frame', mac: ev.mac, kind: ev.kind, vlan: ev.vlan, delivered: ev.forwarding });
      // judged once per MAC: a second "first" is a kernel entry recreated after LRU eviction;
      // an unforwarded first frame was handled above
      if (!known && ev.forwarding) this.judgeFirst(port, m, true, ev.tsNs);
    }
    if (ev.kind !== 'other') {
      if (!counted) m.announcements++;
      this.fact(port, ev.tsNs, { type: 'announcement', mac: ev.mac, kind: ev.kind, vlan: ev.vlan, delivered: ev.forwarding });
    }
  }

  /**
   * Counter deltas from the kernel map (all entries), attributed to each guest port's bridge.
   * A MAC the tracker does not know yet (its first-frame event was lost) is judged from its entry.
   */
  syncCounters(entries: MacEntry[]): void {
    const guests = entries.filter((e) => this.ports.get(e.ifindex)?.guest); // uplinks feed no guest metric
    for (const e of guests) {
      const port = this.ports.get(e.ifindex)!;
      const ds = this.deltas.diff(e); // usually empty: indexed, no iterator per entry
      for (let i = 0; i < ds.length; i++) this.count(port, `${ds[i].how}|${ds[i].kind}`, ds[i].n);
      let m = port.macs.get(e.mac);
      if (!m) {
        m = this.macTrack(port, e.mac, e.firstNs, e.vlan);
        if (m) this.firstFromMap(port, m, e);
      }
      if (m) this.absorb(m, e);
    }
    this.deltas.keepOnly(guests);
  }

  /** Periodic rules that depend on time passing (silent guests). */
  tick(): void {
    const now = this.clock.monoNs();
    for (const port of this.ports.values()) {
      for (const m of port.macs.values()) {
        // a bridge port that never comes to forward (STP blocking, a bridge left down): its guest
        // is late already; the late_attach count and its delay wait for forwarding. Taps in no
        // Linux bridge (OVS, routed) are not judged, nor ports that were there before us.
        const stuck = port.live && port.bridge !== '' && port.forwardingSinceNs === undefined;
        if (stuck && m.verdict === 'pending' && m.unfwdNs !== undefined && now - m.unfwdNs >= this.silentAfterNs)
          this.verdict(port, m, 'late', now);
        if (m.silentCounted) continue;
        const silent = isSilent({
          live: port.live,
          forwardingSinceNs: port.forwardingSinceNs,
          nowNs: now,
          silentAfterNs: this.silentAfterNs,
          announcements: m.announcements,
        });
        if (!silent) continue;
        m.silentCounted = true;
        this.sink?.silent(port.bridge);
        if (m.verdict !== 'late') this.verdict(port, m, 'silent', now);
      }
    }
  }

  rarpSent(ifindex: number, mac: string, tsNs: bigint, detail: string): void {
    const port = this.ports.get(ifindex);
    if (!port) return;
    const m = port.macs.get(mac);
    if (m) m.rarpSent++;
    this.fact(port, tsNs, { type: 'rarp_sent', mac, kind: 'rarp', detail });
  }

  /** One of the guest's own gARP/NA frames, lost on this port, was sent again out of an uplink. */
  announcementReplayed(ifindex: number, mac: string, tsNs: bigint, kind: Kind, detail: string): void {
    const port = this.ports.get(ifindex);
    if (port) this.fact(port, tsNs, { type: 'announcement_replayed', mac, kind, detail });
  }

  /** The local bridge's entry for the MAC was moved to this port (the heal's local half). */
  fdbRepaired(ifindex: number, mac: string, tsNs: bigint, detail: string): void {
    const port = this.ports.get(ifindex);
    if (port) this.fact(port, tsNs, { type: 'fdb_repaired', mac, detail });
  }

  /** The bridge now delivers a guest MAC to this port, coming from a port of the other kind. */
  fdbMoved(ifindex: number, mac: string, tsNs: bigint, detail: string): void {
    const port = this.ports.get(ifindex);
    if (port) this.fact(port, tsNs, { type: 'fdb_move', mac, detail });
  }

  // ---- views ----

  /** Light list for metrics: no timelines. */
  portList(): { ifindex: number; name: string; bridge: string; kind: string }[] {
    return [...this.ports.values()].map(({ ifindex, name, bridge, kind }) => ({ ifindex, name, bridge, kind }));
  }

  portCount(): number {
    return this.ports.size;
  }

  /** The guest MACs known on a port (from kernel events and map reads). */
  macsOf(ifindex: number): string[] {
    return [...(this.ports.get(ifindex)?.macs.keys() ?? [])];
  }

  macCount(): number {
    let n = 0;
    for (const p of this.ports.values()) n += p.macs.size;
    return n;
  }

  portInfo(ifindex: number): { name: string; bridge: string; guest: boolean; state: PortState; macs: string[] } | undefined {
    const p = this.ports.get(ifindex);
    return p && { name: p.name, bridge: p.bridge, guest: p.guest, state: p.state, macs: [...p.macs.keys()] };
  }

  portViews(): PortView[] {
    return [...this.ports.values()].map((p) => portView(p, this.clock));
  }

  portView(name: string): PortView | undefined {
    for (const p of this.ports.values()) if (p.name === name) return portView(p, this.clock);
    return undefined;
  }

  /**
   * Up to `limit` facts after cursor `since`, oldest first; `next` is the cursor to pass next
   * time (`since` itself when there is nothing new). A cursor older than the oldest fact kept
   * resumes at that fact (`dropped` says how many the bounded log lost). Cursors are sequence
   * numbers that restart at 1 with the process: a cursor past the newest fact comes from an
   * earlier run, so the page starts at the oldest fact kept and `next` is a cursor of this run.
   * (A stale cursor that this run has already passed cannot be told apart: facts up to it are
   * skipped.)
   */
  events(since: number, limit: number): { events: FactView[]; next: number; dropped: number } {
    const from = since > this.seq ? 0 : Math.max(since, 0);
    const start = this.log.partitionPoint((f) => f.seq > from); // facts are in seq order
    const out = this.log.slice(start, start + Math.max(limit, 0));
    return { events: out.map((f) => factView(f, this.clock)), next: out.length ? out[out.length - 1].seq : from, dropped: this.log.dropped };
  }

  // ---- internals ----

  private setState(port: PortTrack, state: PortState, tsNs: bigint, entries: MacEntry[]): void {
    if (port.state === state) return;
    const was = port.state;
    port.state = state;
    this.fact(port, tsNs, { type: 'state', state, bridge: port.bridge || undefined, detail: `from ${was}` });
    if (state !== 'forwarding') {
      if (was === 'forwarding') port.cycleStartNs = tsNs;
      port.forwardingSinceNs = undefined;
      return;
    }
    port.forwardingSinceNs = tsNs;
    // first frames forwarded before this transition was applied (see judgeFirst)
    for (const m of port.macs.values()) {
      if (m.onTimeNs === undefined) continue;
      this.onTime(port, m, m.onTimeNs - tsNs);
      m.onTimeNs = undefined;
    }
    this.reconcile(port, entries);
    // late: frames this cycle that the port could not forward
    let delay: number | undefined; // of the earliest such frame
    for (const m of port.macs.values()) {
      if (m.unfwdNs === undefined) continue;
      const d = this.late(port, m, m.unfwdNs, tsNs);
      m.unfwdNs = undefined;
      if (delay === undefined || d > delay) delay = d;
    }
    if (delay !== undefined) this.lateAttach(port, tsNs, delay);
  }

  /**
   * A frame the port could not forward: judged at the next forwarding transition, or, when its
   * event is read after the transition that followed it, at that transition now (once).
   */
  private unforwarded(port: PortTrack, m: MacTrack, tsNs: bigint): void {
    const fwd = port.forwardingSinceNs;
    if (fwd === undefined || tsNs >= fwd) {
      m.unfwdNs ??= tsNs;
      return;
    }
    if (tsNs < port.cycleStartNs || m.lateAtNs === fwd) return; // an older cycle, or judged
    this.lateAttach(port, fwd, this.late(port, m, tsNs, fwd));
  }

  /** Judge a MAC late at forwarding transition `atNs`; returns its attach delay in seconds. */
  private late(port: PortTrack, m: MacTrack, sinceNs: bigint, atNs: bigint): number {
    m.attachDelaySec = Number(atNs - sinceNs) / 1e9;
    m.lateAtNs = atNs;
    this.verdict(port, m, 'late', atNs);
    this.sink?.macLate?.(port.ifindex, m.mac, atNs);
    return m.attachDelaySec;
  }

  /** One late attach per port per forwarding transition. */
  private lateAttach(port: PortTrack, atNs: bigint, delaySec: number): void {
    if (port.lateAtNs === atNs) return;
    port.lateAtNs = atNs;
    this.sink?.lateAttach(port.bridge, delaySec); // a guest port: only those have MACs to judge
  }

  /** Bring in what the kernel map knows that events did not tell (rate limits, drops). */
  private reconcile(port: PortTrack, entries: MacEntry[]): void {
    if (!port.guest) return;
    for (const e of entries) {
      if (e.ifindex !== port.ifindex) continue;
      const known = port.macs.has(e.mac);
      const m = this.macTrack(port, e.mac, e.firstNs, e.vlan);
      if (!m) continue;
      if (!known) this.judgeFirst(port, m, e.firstFwdNs !== 0n && e.firstFwdNs === e.firstNs, e.firstNs);
      this.absorb(m, e);
      if (m.unfwdNs === undefined && e.unfwdFrames > 0 && e.lastUnfwdNs >= port.cycleStartNs)
        m.unfwdNs = e.firstNs > port.cycleStartNs ? e.firstNs : port.cycleStartNs;
    }
  }

  /**
   * A MAC first known from a map read (its first-frame event was lost to a rate limit or a full
   * ring): judged as its first frame would have been. Forwarded (the kernel's first forwarded
   * frame is its first frame): on time. Otherwise its first and latest unforwarded frames are
   * taken like unforwarded events read now: judged late at the next forwarding transition, or
   * at once if they precede the forwarding transition the tracker has already applied.
   */
  private firstFromMap(port: PortTrack, m: MacTrack, e: MacEntry): void {
    if (e.firstFwdNs !== 0n && e.firstFwdNs === e.firstNs) {
      this.judgeFirst(port, m, true, e.firstNs);
      return;
    }
    this.unforwarded(port, m, e.firstNs);
    if (e.lastUnfwdNs > e.firstNs) this.unforwarded(port, m, e.lastUnfwdNs);
  }

  /** Exact kernel counts win over what events suggested. */
  private absorb(m: MacTrack, e: MacEntry): void {
    m.unfwdFrames = e.unfwdFrames;
    if (e.lastNs > m.countedNs) m.countedNs = e.lastNs;
    let n = 0; // a loop, not reduce(): this runs for every entry of every full read
    for (let i = 0; i < ANNOUNCE_KINDS.length; i++) n += e.kinds[ANNOUNCE_KINDS[i]];
    m.announcements = Math.max(m.announcements, n);
  }

  private macTrack(port: PortTrack, mac: string, tsNs: bigint, vlan: number): MacTrack | undefined {
    let m = port.macs.get(mac);
    if (m) return m;
    if (!port.guest) return undefined; // an uplink's MACs are other hosts'
    if (port.macs.size >= this.maxMacs) {
      // keep the first MACs: a flooding guest cannot push out its own
      if (!port.refused.has(mac)) {
        if (port.refused.size < this.maxMacs) port.refused.add(mac);
        this.stats.macsRefused++;
      }
      return undefined;
    }
    m = {
      mac,
      firstNs: tsNs,
      vlan,
      verdict: 'pending',
      announcements: 0,
      unfwdFrames: 0,
      unfwdNs: undefined,
      lateAtNs: undefined,
      onTimeNs: undefined,
      countedNs: 0n,
      attachDelaySec: null,
      firstFrameDelaySec: null,
      silentCounted: false,
      rarpSent: 0,
    };
    port.macs.set(mac, m);
    return m;
  }

  /**
   * Judge a MAC by its first frame. On time: its first-frame delay (port forwarding to first
   * frame) is observed for a port seen coming up; a port found at start has no known
   * transition. The kernel flags each frame with its port state at that instant, and netlink
   * reports a transition only after the kernel made it (the daemon even applies the ring's
   * events before each netlink fact): a forwarded first frame often comes while the tracker
   * still has the port not forwarding. It is remembered and observed when the forwarding state
   * is applied, as max(0, frame - transition); a forwarded first frame of this cycle stamped
   * before the transition the tracker applied is likewise a delay of 0.
   */
  private judgeFirst(port: PortTrack, m: MacTrack, forwarding: boolean, tsNs: bigint): void {
    const v = firstFrameVerdict(forwarding);
    if (v !== 'on_time') {
      m.unfwdNs ??= tsNs; // judged late when the port reaches forwarding
      return;
    }
    this.verdict(port, m, v, tsNs);
    if (!port.live || tsNs < port.cycleStartNs) return; // found at start, or an older forwarding period
    if (port.forwardingSinceNs === undefined) m.onTimeNs = tsNs;
    else this.onTime(port, m, tsNs - port.forwardingSinceNs);
  }

  /** Observe a first-frame delay, negative (frame before the transition netlink told) as 0. */
  private onTime(port: PortTrack, m: MacTrack, delayNs: bigint): void {
    m.firstFrameDelaySec = Number(delayNs > 0n ? delayNs : 0n) / 1e9;
    this.sink?.onTime(port.bridge, m.firstFrameDelaySec);
  }

  private verdict(port: PortTrack, m: MacTrack, v: Verdict, tsNs: bigint): void {
    if (m.verdict === v) return;
    m.verdict = v;
    this.fact(port, tsNs, { type: 'verdict', mac: m.mac, verdict: v });
  }

  private count(port: PortTrack, what: string, n: number): void {
    if (!port.bridge) {
      port.pending.set(what, (port.pending.get(what) ?? 0) + n);
      return;
    }
    this.emitCount(port.bridge, what, n);
  }

  private flushPending(port: PortTrack, deleting = false): void {
    if (!port.bridge && !deleting) return;
    for (const [what, n] of port.pending) this.emitCount(port.bridge, what, n);
    port.pending.clear();
  }

  private emitCount(bridge: string, what: string, n: number): void {
    const [how, kind] = what.split('|') as [string, Kind];
    if (how === 'before') this.sink?.framesBeforeForwarding(bridge, kind, n);
    else this.sink?.announcements(bridge, kind, how === 'delivered', n);
  }

  private fact(port: PortTrack, tsNs: bigint, f: Omit<Fact, 'seq' | 'tsNs' | 'ifindex' | 'port'>): void {
    const fact: Fact = { seq: ++this.seq, tsNs, ifindex: port.ifindex, port: port.name, ...f };
    port.timeline.push(fact);
    this.log.push(fact);
    this.onFact?.(fact);
  }

}
