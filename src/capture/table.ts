// tc_ingress of bpf/bridgewatch.bpf.c after the frame is read: the {port, MAC} table
// (bw_port_macs), the global counters (bw_stats) and the event limits, in user space for the
// libpcap fallback. Same fields, counters and rules; memory is bounded by maxMacs.
import {
  EV_BRIDGE_PORT,
  EV_FIRST,
  EV_FORWARDING,
  KINDS,
  macToString,
  STATE_NOT_BRIDGE_PORT,
  STATS,
  type BpfEvent,
  type KindCounts,
  type MacEntry,
  type MacStats,
  type StatName,
} from '../bpf/abi.js';
import { DEFAULT_TUNABLES, type Tunables } from '../observe-types.js';
import { BridgewatchError } from '../errors.js';
import { classify, KIND_OTHER } from './classify.js';

const BR_STATE_FORWARDING = 3;

/** What the kernel knows about a frame besides its bytes. */
export interface FrameMeta {
  ifindex: number;
  /** CLOCK_MONOTONIC ns */
  tsNs: bigint;
  /** BR_STATE_* or STATE_NOT_BRIDGE_PORT */
  state: number;
  /** VLAN id in skb metadata (the tag the kernel took off before TC), 0 = none */
  vlan: number;
  /** frame length as TC sees it */
  len: number;
}

interface Entry {
  ifindex: number;
  key: number;
  mac: string;
  firstNs: bigint;
  lastNs: bigint;
  firstFwdNs: bigint;
  lastUnfwdNs: bigint;
  lastAnnounceNs: bigint;
  frames: number;
  unfwdFrames: number;
  kinds: number[];
  unfwdKinds: number[];
  winStartNs: bigint;
  winEvents: number;
  vlan: number;
  firstState: number;
  /** used since the eviction hand last passed (the kernel LRU's reference bit) */
  ref: boolean;
}

/** A MAC as one exact number (48 bits fit a double), so lookups build no strings. */
export const macKey = (b: Uint8Array, off = 0): number =>
  b[off] * 2 ** 40 + b[off + 1] * 2 ** 32 + ((b[off + 2] << 24) >>> 0) + (b[off + 3] << 16) + (b[off + 4] << 8) + b[off + 5];

const counts = (a: number[]): KindCounts => Object.fromEntries(KINDS.map((k, i) => [k, a[i]])) as KindCounts;

export class MacTable {
  readonly maxMacs: number;
  /** bw_stats; drop_ringbuf is the owner's to count (its event queue, libpcap drops) */
  readonly counters = Object.fromEntries(STATS.map((s) => [s, 0])) as Record<StatName, number>;
  private readonly ports = new Map<number, Map<number, Entry>>();
  // insertion order is the eviction hand's path: a second-chance (CLOCK) LRU like the kernel's
  private readonly order = new Set<Entry>();
  private readonly windowNs: bigint;
  private readonly perMac: number;
  private readonly perWindow: number;
  private readonly perPort: number;
  private readonly limiter = { winStartNs: 0n, events: 0 };

  constructor(o: { maxMacs: number; tunables?: Partial<Tunables> }) {
    if (!Number.isInteger(o.maxMacs) || o.maxMacs < 1)
      throw new BridgewatchError('ECONFIG', `create mac table: maxMacs ${o.maxMacs} is not a positive integer`);
    const t = { ...DEFAULT_TUNABLES, ...o.tunables };
    this.maxMacs = o.maxMacs;
    this.windowNs = BigInt(Math.round(t.eventWindowMs * 1e6));
    this.perMac = t.eventsPerMac;
    // one reader thread: the kernel's per-CPU budget is the whole budget here
    this.perWindow = t.eventsPerCpu;
    this.perPort = t.macsPerPort;
  }

  get size(): number {
    return this.order.size;
  }

  /** Record one frame (bytes as TC sees them); returns the event to emit, if any. */
  record(data: Uint8Array, m: FrameMeta): BpfEvent | undefined {
    if (data.length < 14) return undefined; // TC never sees it either
    const c = this.counters;
    c.frames++;
    // group or zero source MAC: not a guest
    if (data[6] & 1 || !(data[6] | data[7] | data[8] | data[9] | data[10] | data[11])) {
      c.bad_source++;
      return undefined;
    }
    const { kind, vlan } = classify(data, m.vlan);
    const now = m.tsNs;
    const fwd = m.state === BR_STATE_FORWARDING;
    let flags = (fwd ? EV_FORWARDING : 0) | (m.state !== STATE_NOT_BRIDGE_PORT ? EV_BRIDGE_PORT : 0);
    const key = macKey(data, 6);
    let e = this.ports.get(m.ifindex)?.get(key);
    if (e) e.ref = true;
    else {
      if (this.perPort && (this.ports.get(m.ifindex)?.size ?? 0) >= this.perPort) {
        c.port_full++; // as the kernel: a MAC-flooding guest cannot push others out
        return undefined;
      }
      e = this.insert(m.ifindex, key, data.subarray(6, 12), now, m.state);
      c.new_macs++;
      flags |= EV_FIRST;
    }

    e.lastNs = now;
    e.frames++;
    e.kinds[kind]++;
    if (!fwd) {
      e.lastUnfwdNs = now;
      e.unfwdFrames++;
      e.unfwdKinds[kind]++;
    } else if (!e.firstFwdNs) {
      e.firstFwdNs = now;
    }
    e.vlan = vlan;
    if (kind !== KIND_OTHER) e.lastAnnounceNs = now;

    if (!(flags & EV_FIRST) && kind === KIND_OTHER) return undefined;
    if (!this.admit(e, now)) return undefined;
    return {
      tsNs: now,
      ifindex: m.ifindex,
      mac: e.mac,
      kind: KINDS[kind],
      first: (flags & EV_FIRST) !== 0,
      forwarding: fwd,
      bridgePort: (flags & EV_BRIDGE_PORT) !== 0,
      vlan,
      portState: m.state,
      len: m.len,
    };
  }

  get(ifindex: number, mac: Uint8Array): MacStats | undefined {
    const e = this.ports.get(ifindex)?.get(macKey(mac));
    return e && stats(e);
  }

  entries(): MacEntry[] {
    return [...this.order].map((e) => ({ ifindex: e.ifindex, mac: e.mac, ...stats(e) }));
  }

  /** Delete a port's entries (device gone); returns how many. */
  deletePort(ifindex: number): number {
    const port = this.ports.get(ifindex);
    if (!port) return 0;
    for (const e of port.values()) this.order.delete(e);
    this.ports.delete(ifindex);
    return port.size;
  }

  /** emit()'s limits: per {port, MAC} window first (spent even if the global one refuses). */
  private admit(e: Entry, now: bigint): boolean {
    if (now - e.winStartNs >= this.windowNs) {
      e.winStartNs = now;
      e.winEvents = 0;
    }
    if (e.winEvents >= this.perMac) {
      this.counters.drop_rate_mac++;
      return false;
    }
    e.winEvents++;
    const l = this.limiter;
    if (now - l.winStartNs >= this.windowNs) {
      l.winStartNs = now;
      l.events = 0;
    }
    if (l.events >= this.perWindow) {
      this.counters.drop_rate_all++;
      return false;
    }
    l.events++;
    return true;
  }

  private insert(ifindex: number, key: number, mac: Uint8Array, now: bigint, state: number): Entry {
    if (this.order.size >= this.maxMacs) this.evict();
    const e: Entry = {
      ifindex,
      key,
      mac: macToString(mac),
      firstNs: now,
      lastNs: now,
      firstFwdNs: 0n,
      lastUnfwdNs: 0n,
      lastAnnounceNs: 0n,
      frames: 0,
      unfwdFrames: 0,
      kinds: KINDS.map(() => 0),
      unfwdKinds: KINDS.map(() => 0),
      winStartNs: 0n,
      winEvents: 0,
      vlan: 0,
      firstState: state,
      ref: false,
    };
    let port = this.ports.get(ifindex);
    if (!port) this.ports.set(ifindex, (port = new Map()));
    port.set(key, e);
    this.order.add(e);
    return e;
  }

  /** Drop the least recently used entry: referenced ones get a second chance at the tail. */
  private evict(): void {
    for (;;) {
      const e = this.order.values().next().value as Entry;
      this.order.delete(e);
      if (e.ref) {
        e.ref = false;
        this.order.add(e);
        continue;
      }
      const port = this.ports.get(e.ifindex)!;
      port.delete(e.key);
      if (!port.size) this.ports.delete(e.ifindex);
      return;
    }
  }
}

function stats(e: Entry): MacStats {
  return {
    firstNs: e.firstNs,
    lastNs: e.lastNs,
    firstFwdNs: e.firstFwdNs,
    lastUnfwdNs: e.lastUnfwdNs,
    lastAnnounceNs: e.lastAnnounceNs,
    frames: e.frames,
    unfwdFrames: e.unfwdFrames,
    kinds: counts(e.kinds),
    unfwdKinds: counts(e.unfwdKinds),
    vlan: e.vlan,
    firstState: e.firstState,
  };
}
