// Reading and trimming the kernel's tables: the {port, MAC} LRU map (with the frames the settled
// path counted in its per-CPU slots added in), the per-port MAC counts and the per-CPU counters.
// Reads are batched where the kernel allows (one syscall per 1024 entries).
import { BridgewatchError, errnoError } from '../errors.js';
import { strerror } from '../sys/libc.js';
import {
  decodeEntry,
  decodeMacStats,
  decodeSettled,
  encodeKey,
  KEY,
  MAC_STATS,
  macFromString,
  macToString,
  SETTLED,
  SETTLED_BITS,
  settledSlot,
  STATS,
  type MacEntry,
  type MacStats,
  type SettledSlot,
  type StatName,
} from './abi.js';
import { libbpf } from './libbpf.js';

const sys = (what: string, e: number) => errnoError(what, e, strerror);

export interface TableFds {
  macs: number;
  stats: number;
  portCount: number;
  /** bw_settled: per-CPU slots of the settled path */
  settled: number;
}

export class KernelTables {
  private batch = true;
  private countsAtScan = new Map<number, number>();

  constructor(
    private readonly fds: TableFds,
    private readonly ncpu: number,
  ) {}

  /**
   * Every {port, MAC} entry in the kernel: batched (one syscall per 1024), else key by key, with
   * the frames the settled path counted per CPU added in.
   */
  macs(): MacEntry[] {
    this.countsAtScan = this.portCounts(); // for syncPortCounts: what the scan cannot have seen
    let out: MacEntry[] | undefined;
    if (this.batch) {
      try {
        out = this.macsBatched();
      } catch (e) {
        if ((e as BridgewatchError).code !== 'ENOTSUP') throw e;
        this.batch = false; // kernel without batch ops on this map type
      }
    }
    out ??= this.macsByKey();
    // slots after entries: a slot flushed in between is missed once, never counted twice
    const settled = this.settledFrames();
    if (settled.size) for (const e of out) addSettled(e, settled.get(settledKey(e.ifindex, e.mac, e.firstNs)) ?? 0);
    return out;
  }

  private macsBatched(): MacEntry[] {
    const l = libbpf();
    const chunk = 1024;
    const keys = Buffer.alloc(KEY.size * chunk);
    const vals = Buffer.alloc(MAC_STATS.size * chunk);
    const out: MacEntry[] = [];
    let token: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(8); // hash maps: a bucket cursor
      const count = [chunk];
      const rc = l.map_lookup_batch(this.fds.macs, token, next, keys, vals, count, null) as number;
      if (rc < 0 && rc !== -2 /* ENOENT: the last chunk */) {
        if (rc === -22 || rc === -95 || rc === -524) throw new BridgewatchError('ENOTSUP', 'batch lookup of map bw_port_macs: not supported');
        throw sys('batch lookup of map bw_port_macs', -rc);
      }
      for (let i = 0; i < count[0]; i++) out.push(decodeEntry(keys, i * KEY.size, vals, i * MAC_STATS.size));
      if (rc === -2) return out;
      token = next;
    }
  }

  private macsByKey(): MacEntry[] {
    const l = libbpf();
    const out: MacEntry[] = [];
    const key = Buffer.alloc(KEY.size);
    const next = Buffer.alloc(KEY.size);
    const val = Buffer.alloc(MAC_STATS.size);
    let prev: Buffer | null = null;
    while ((l.map_get_next_key(this.fds.macs, prev, next) as number) === 0) {
      next.copy(key);
      prev = key;
      if ((l.map_lookup_elem(this.fds.macs, key, val) as number) === 0) out.push(decodeEntry(key, 0, val, 0));
    }
    return out;
  }

  /** One entry; withSettled false skips the settled slots (every CPU's, 24 KiB a read). */
  mac(ifindex: number, mac: Uint8Array, withSettled = true): MacStats | undefined {
    const val = Buffer.alloc(MAC_STATS.size);
    if ((libbpf().map_lookup_elem(this.fds.macs, encodeKey(ifindex, mac), val) as number) !== 0) return undefined;
    const e = decodeMacStats(val);
    if (!withSettled) return e;
    const want = settledKey(ifindex, macToString(mac), e.firstNs);
    let n = 0;
    for (const s of this.settledSlots(settledSlot(ifindex, mac))) if (settledKey(s.ifindex, s.mac, s.firstNs) === want) n += s.frames;
    addSettled(e, n);
    return e;
  }

  /** Frames counted by the settled path, summed over CPUs, by {port, MAC, entry}. */
  private settledFrames(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.settledSlots()) {
      const k = settledKey(s.ifindex, s.mac, s.firstNs);
      out.set(k, (out.get(k) ?? 0) + s.frames);
    }
    return out;
  }

  /** Used slots of bw_settled on every CPU (its one entry holds one CPU's slots); all, or slot `only`. */
  private settledSlots(only?: number): SettledSlot[] {
    const n = 1 << SETTLED_BITS;
    const val = Buffer.alloc(SETTLED.size * n * this.ncpu);
    if ((libbpf().map_lookup_elem(this.fds.settled, Buffer.alloc(4), val) as number) !== 0) return [];
    const out: SettledSlot[] = [];
    for (let cpu = 0; cpu < this.ncpu; cpu++)
      for (let i = only ?? 0; i < (only === undefined ? n : only + 1); i++) {
        const at = (cpu * n + i) * SETTLED.size;
        if (val.readUInt32LE(at + SETTLED_AT.ifindex) && val.readBigUInt64LE(at + SETTLED_AT.frames)) out.push(decodeSettled(val, at));
      }
    return out;
  }

  /**
   * Make the per-port MAC counts match the entries (LRU evictions never decrement them), so a
   * port that churns MACs slowly is not refused forever.
   */
  syncPortCounts(entries: MacEntry[]): void {
    const l = libbpf();
    const counts = new Map<number, number>();
    for (const e of entries) counts.set(e.ifindex, (counts.get(e.ifindex) ?? 0) + 1);
    const val = Buffer.alloc(4);
    for (const [ifindex, now] of this.portCounts()) {
      // inserts since the scan raised the count: keep them, drop only what evictions removed
      const grown = now - (this.countsAtScan.get(ifindex) ?? now);
      const want = Math.min(now, (counts.get(ifindex) ?? 0) + Math.max(grown, 0));
      if (want >= now) continue;
      const key = Buffer.alloc(4);
      key.writeUInt32LE(ifindex);
      val.writeUInt32LE(want);
      l.map_update_elem(this.fds.portCount, key, val, 2n /* BPF_EXIST: never resurrect a deleted port */);
    }
  }

  /** Per-port MAC counts as the kernel holds them now. */
  private portCounts(): Map<number, number> {
    const l = libbpf();
    const out = new Map<number, number>();
    const val = Buffer.alloc(4);
    const next = Buffer.alloc(4);
    let prev: Buffer | null = null;
    while ((l.map_get_next_key(this.fds.portCount, prev, next) as number) === 0) {
      const key = Buffer.from(next);
      prev = key;
      if ((l.map_lookup_elem(this.fds.portCount, key, val) as number) === 0) out.set(key.readUInt32LE(), val.readUInt32LE());
    }
    return out;
  }

  /** Delete a port's entries (device gone); returns how many. `entries`: a fresh macs(), if at hand. */
  deletePort(ifindex: number, entries?: MacEntry[]): number {
    const l = libbpf();
    const key = Buffer.alloc(4);
    key.writeUInt32LE(ifindex);
    l.map_delete_elem(this.fds.portCount, key);
    let n = 0;
    for (const e of entries ?? this.macs()) {
      if (e.ifindex !== ifindex) continue;
      if ((l.map_delete_elem(this.fds.macs, encodeKey(ifindex, macFromString(e.mac))) as number) === 0) n++;
    }
    return n;
  }

  /** Global counters, summed over CPUs; `frames` includes the settled ones. */
  stats(): Record<StatName, number> {
    const l = libbpf();
    const key = Buffer.alloc(4);
    const val = Buffer.alloc(8 * this.ncpu);
    const out = {} as Record<StatName, number>;
    STATS.forEach((name, i) => {
      key.writeUInt32LE(i);
      let sum = 0n;
      if ((l.map_lookup_elem(this.fds.stats, key, val) as number) === 0)
        for (let cpu = 0; cpu < this.ncpu; cpu++) sum += val.readBigUInt64LE(8 * cpu);
      out[name] = Number(sum);
    });
    out.frames += out.settled; // the settled path counts only its own
    return out;
  }
}

const settledKey = (ifindex: number, mac: string, firstNs: bigint) => `${ifindex}|${mac}|${firstNs}`;
const fieldAt = (name: string) => SETTLED.fields.find((f) => f.name === name)!.offset;
const SETTLED_AT = { ifindex: fieldAt('ifindex'), frames: fieldAt('frames') };

function addSettled(e: MacStats, n: number): void {
  if (!n) return;
  e.kinds.other += n;
  e.frames += n;
}
