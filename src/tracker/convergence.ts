// Did the network come back? Per guest arrival on this host (a migration's destination, or a
// boot): from its first frame to the first unicast frame the fabric delivers to it through an
// uplink. Fed the tracker's facts (one way: it never calls back) and the uplink programs'
// events; pure: an injected clock and an injected watch list (the kernel's bw_await).
import { Ring } from './ring.js';
import type { Clock, Fact } from './types.js';

/** The kernel side: which MACs the uplink programs look for, and what they saw. */
export interface FabricWatchList {
  add(mac: string): boolean; // false: full
  /** also when only the kernel armed it (it arms every new guest MAC at its first frame) */
  remove(mac: string): void;
  /** drop the kernel's armings nobody adopted */
  sweep(): void;
  get(mac: string): { outNs: bigint; inNs: bigint; outIfindex: number; inIfindex: number } | undefined;
}

export type ConvergenceState =
  | 'awaiting' // watched, no unicast from the fabric yet
  | 'converged'
  | 'unconverged' // its frames went out of an uplink --converge-timeout ago, nothing came back
  | 'quiet' // forwarding for --converge-timeout without a frame out of an uplink: not judged
  | 'gone' // its port was deleted, or it left this host, before converging
  | 'not_watched'; // the watch list was full

export interface Arrival {
  seq: number;
  ifindex: number;
  port: string;
  bridge: string;
  mac: string;
  state: ConvergenceState;
  firstFrameNs: bigint;
  firstAnnouncementNs?: bigint;
  joinedNs?: bigint;
  forwardingNs?: bigint;
  firstRarpNs?: bigint;
  outNs?: bigint;
  outUplink?: number;
  inNs?: bigint;
  inUplink?: number;
  endNs?: bigint;
  detail?: string;
}

/** Where convergence results go (the metrics module). */
export interface ConvergenceSink {
  converged(bridge: string, seconds: number): void;
  ended(bridge: string, result: 'quiet' | 'gone' | 'not_watched'): void;
}

export interface ConvergenceOptions {
  clock: Clock;
  watch: FabricWatchList;
  sink?: ConvergenceSink;
  timeoutMs: number;
  /** arrivals kept for the API, finished ones dropped oldest first */
  history?: number;
}

/** MACs remembered per port as having arrived there (a kernel entry recreated after LRU eviction is none) */
const ARRIVED_PER_PORT = 256;

interface PortFacts {
  name: string;
  bridge: string;
  live: boolean; // seen created: its guests' first frames are arrivals
  arrived: Set<string>;
  joinedNs?: bigint;
  forwardingNs?: bigint;
}

const ACTIVE: ReadonlySet<ConvergenceState> = new Set(['awaiting', 'unconverged']);

export class ConvergenceTracker {
  private readonly ports = new Map<number, PortFacts>();
  /** watched arrivals by MAC (the kernel's key) */
  private readonly active = new Map<string, Arrival>();
  private readonly log: Ring<Arrival>;
  private readonly timeoutNs: bigint;
  private seq = 0;

  constructor(private readonly o: ConvergenceOptions) {
    this.timeoutNs = BigInt(Math.round(o.timeoutMs * 1e6));
    this.log = new Ring<Arrival>(o.history ?? 1024);
  }

  /** The tracker's facts, in order. */
  fact(f: Fact): void {
    switch (f.type) {
      case 'port_created':
      case 'port_found':
        this.ports.set(f.ifindex, { name: f.port, bridge: f.bridge ?? '', live: f.type === 'port_created', arrived: new Set() });
        return;
      case 'renamed': {
        const p = this.ports.get(f.ifindex);
        if (p) p.name = f.port;
        for (const a of this.on(f.ifindex)) a.port = f.port;
        return;
      }
      case 'joined': {
        const p = this.ports.get(f.ifindex);
        if (!p) return;
        p.bridge = f.bridge ?? '';
        p.joinedNs = f.tsNs;
        p.forwardingNs = undefined;
        for (const a of this.on(f.ifindex)) {
          a.bridge = p.bridge;
          a.joinedNs ??= f.tsNs;
        }
        // refused before the port had a bridge to count them on (a late port: rare, and bounded by the log)
        for (const a of this.log.toArray())
          if (a.ifindex === f.ifindex && a.state === 'not_watched' && !a.bridge) {
            a.bridge = p.bridge;
            this.o.sink?.ended(a.bridge, 'not_watched');
          }
        return;
      }
      case 'left': {
        const p = this.ports.get(f.ifindex);
        if (p) p.forwardingNs = undefined;
        return;
      }
      case 'state': {
        const p = this.ports.get(f.ifindex);
        if (!p) return;
        p.forwardingNs = f.state === 'forwarding' ? f.tsNs : undefined;
        if (f.state === 'forwarding') for (const a of this.on(f.ifindex)) a.forwardingNs ??= f.tsNs;
        return;
      }
      case 'first_frame':
        if (f.mac) this.arrived(f.ifindex, f.mac, f.tsNs);
        return;
      case 'announcement': {
        const a = f.mac ? this.active.get(f.mac) : undefined;
        if (a && a.ifindex === f.ifindex) a.firstAnnouncementNs ??= f.tsNs;
        return;
      }
      case 'rarp_sent': {
        const a = f.mac ? this.active.get(f.mac) : undefined;
        if (a && a.ifindex === f.ifindex) a.firstRarpNs ??= f.tsNs;
        return;
      }
      case 'deleted':
        for (const a of this.on(f.ifindex)) this.end(a, 'gone', f.tsNs, 'port deleted');
        this.ports.delete(f.ifindex);
        return;
      default:
    }
  }

  /** The guest MAC's bridge entry moved from its port to an uplink: it left this host. */
  left(mac: string, tsNs: bigint): void {
    const a = this.active.get(mac);
    if (a) this.end(a, 'gone', tsNs, 'left this host');
  }

  /** An uplink program's event: the guest's first frame out (`out`) or the fabric's first unicast to it (`in`). */
  uplink(dir: 'in' | 'out', mac: string, uplink: number, tsNs: bigint): void {
    const a = this.active.get(mac);
    if (!a) return;
    if (dir === 'out') {
      if (a.outNs === undefined || tsNs < a.outNs) [a.outNs, a.outUplink] = [tsNs, uplink];
      return;
    }
    if (a.inNs !== undefined && a.inNs <= tsNs) return;
    [a.inNs, a.inUplink] = [tsNs, uplink];
    this.converge(a);
  }

  /** Time-driven rules: unconverged, quiet; and what the kernel saw if its events were lost. */
  tick(): void {
    this.o.watch.sweep();
    const now = this.o.clock.monoNs();
    for (const a of [...this.active.values()]) {
      const k = this.o.watch.get(a.mac);
      if (k?.outNs && (a.outNs === undefined || k.outNs < a.outNs)) [a.outNs, a.outUplink] = [k.outNs, k.outIfindex];
      if (k?.inNs && a.inNs === undefined) {
        [a.inNs, a.inUplink] = [k.inNs, k.inIfindex];
        this.converge(a);
        continue;
      }
      if (a.outNs !== undefined) {
        if (a.state === 'awaiting' && now - a.outNs >= this.timeoutNs) a.state = 'unconverged'; // stays watched
        continue;
      }
      // nothing out yet: judged only once the port could forward for the whole timeout
      const p = this.ports.get(a.ifindex);
      const since = p?.forwardingNs ?? a.forwardingNs;
      const from = since !== undefined && since > a.firstFrameNs ? since : a.firstFrameNs;
      if (p?.forwardingNs !== undefined && now - from >= this.timeoutNs) this.end(a, 'quiet', now, 'no frame out of an uplink');
      else if (p?.forwardingNs === undefined && now - a.firstFrameNs >= this.timeoutNs * 10n) this.end(a, 'quiet', now, 'port never forwarded');
    }
  }

  /** Watched guests per bridge right now (gauges). */
  counts(): Map<string, { awaiting: number; unconverged: number }> {
    const out = new Map<string, { awaiting: number; unconverged: number }>();
    for (const a of this.active.values()) {
      if (!a.bridge) continue;
      const c = out.get(a.bridge) ?? { awaiting: 0, unconverged: 0 };
      if (a.state === 'unconverged') c.unconverged++;
      else c.awaiting++;
      out.set(a.bridge, c);
    }
    return out;
  }

  unconverged(): Arrival[] {
    return [...this.active.values()].filter((a) => a.state === 'unconverged');
  }

  /** Arrivals after cursor `since` (sequence numbers of this run), oldest first. */
  page(since: number, limit: number): { arrivals: Arrival[]; next: number; dropped: number } {
    const from = since > this.seq ? 0 : Math.max(since, 0);
    const start = this.log.partitionPoint((a) => a.seq > from);
    const out = this.log.slice(start, start + Math.max(limit, 0));
    return { arrivals: out, next: out.length ? out[out.length - 1].seq : from, dropped: this.log.dropped };
  }

  /** Stop watching everything (the daemon stops). */
  clear(): void {
    for (const mac of this.active.keys()) this.o.watch.remove(mac);
    this.active.clear();
  }

  // ---- internals ----

  private arrived(ifindex: number, mac: string, tsNs: bigint): void {
    const p = this.ports.get(ifindex);
    const old = this.active.get(mac);
    if (old?.ifindex === ifindex) return; // an LRU-recreated kernel entry, not a new arrival
    // there before us: its first frame here is not an arrival; nor a second "first" frame (the
    // kernel's entry was evicted and recreated). The kernel armed it anyway.
    if (!p?.live || p.arrived.has(mac) || p.arrived.size >= ARRIVED_PER_PORT) {
      if (!old) this.o.watch.remove(mac);
      return;
    }
    p.arrived.add(mac);
    if (old) this.end(old, 'gone', tsNs, `arrived again on ${p.name}`);
    const a: Arrival = {
      seq: ++this.seq,
      ifindex,
      port: p.name,
      bridge: p.bridge,
      mac,
      state: 'awaiting',
      firstFrameNs: tsNs,
      joinedNs: p.joinedNs,
      forwardingNs: p.forwardingNs,
    };
    this.log.push(a);
    if (!this.o.watch.add(mac)) {
      a.state = 'not_watched';
      a.detail = 'watch list full';
      if (a.bridge) this.o.sink?.ended(a.bridge, 'not_watched'); // else when it joins one
      return;
    }
    this.active.set(mac, a);
  }

  private converge(a: Arrival): void {
    a.state = 'converged';
    a.endNs = a.inNs;
    this.unwatch(a);
    const s = Number(a.inNs! - a.firstFrameNs) / 1e9;
    if (a.bridge) this.o.sink?.converged(a.bridge, Math.max(0, s));
  }

  private end(a: Arrival, state: 'quiet' | 'gone', tsNs: bigint, detail: string): void {
    a.state = state;
    a.endNs = tsNs;
    a.detail = detail;
    this.unwatch(a);
    if (a.bridge) this.o.sink?.ended(a.bridge, state);
  }

  private unwatch(a: Arrival): void {
    if (this.active.get(a.mac) !== a) return;
    this.active.delete(a.mac);
    this.o.watch.remove(a.mac);
  }

  private *on(ifindex: number): Generator<Arrival> {
    for (const a of this.active.values()) if (a.ifindex === ifindex && ACTIVE.has(a.state)) yield a;
  }
}
