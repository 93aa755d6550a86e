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

/** The last decoded value of one {port, MAC} entry, and the bytes it was decoded from. */
interface Decoded {
  slot: number; // where its bytes are in KernelTables.raw
  entry: MacEntry;
  scan: number;
}

const CHUNK = 1024;
const fieldOf = (l: typeof KEY, name: string) => l.fields.find((x) => x.name === name)!.offset;
const KEY_IFINDEX = fieldOf(KEY, 'ifindex');
const KEY_MAC = fieldOf(KEY, 'mac');

export class KernelTables {
  private batch = true;
  private countsAtScan = new Map<number, number>();
  /**
   * Full reads come every scrape, and most entries have not changed since the last one: an
   * entry whose bytes are the same is the same MacEntry object, not ten new objects, five
   * BigInts and a MAC string each time (at 10,000 MACs that garbage, promoted because a read
   * is one synchronous burst, was most of the daemon's heap). ifindex -> MAC (48-bit number).
   */
  private decoded = new Map<number, Map<number, Decoded>>();
  private scans = 0;
  /** the bytes of every decoded entry, one slot each: one Buffer, not one per entry */
  private raw = Buffer.alloc(0);
  private freeSlots: number[] = [];
  private slots = 0;
  // the batch read's buffers, reused: a full read allocates nothing for the kernel's bytes
  private batchBufs: { keys: Buffer; vals: Buffer; token: Buffer; next: Buffer } | undefined;

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
    if (settled.size)
      for (let i = 0; i < out.length; i++) {
        const e = out[i];
        const n = settled.get(settledKey(e.ifindex, e.mac, e.firstNs)) ?? 0;
        if (!n) continue;
        // a copy: the decoded entry is kept for the next read and must stay the kernel's bytes
        out[i] = { ...e, kinds: { ...e.kinds } };
        addSettled(out[i], n);
      }
    return out;
  }

  private macsBatched(): MacEntry[] {
    const l = libbpf();
    const b = (this.batchBufs ??= {
      keys: Buffer.alloc(KEY.size * CHUNK),
      vals: Buffer.alloc(MAC_STATS.size * CHUNK),
      token: Buffer.alloc(8), // hash maps: a bucket cursor
      next: Buffer.alloc(8),
    });
    const scan = ++this.scans;
    const out: MacEntry[] = [];
    let first = true;
    const count = [CHUNK];
    for (;;) {
      count[0] = CHUNK;
      const rc = l.map_lookup_batch(this.fds.macs, first ? null : b.token, b.next, b.keys, b.vals, count, null) as number;
      if (rc < 0 && rc !== -2 /* ENOENT: the last chunk */) {
        if (rc === -22 || rc === -95 || rc === -524) throw new BridgewatchError('ENOTSUP', 'batch lookup of map bw_port_macs: not supported');
        throw sys('batch lookup of map bw_port_macs', -rc);
      }
      for (let i = 0; i < count[0]; i++) out.push(this.entryAt(b.keys, i * KEY.size, b.vals, i * MAC_STATS.size, scan));
      if (rc === -2) break;
      b.next.copy(b.token);
      first = false;
    }
    // forget what the kernel no longer has (evicted, deleted)
    this.decoded.forEach((port, ifindex) => {
      port.forEach((d, mac) => {
        if (d.scan === scan) return; // forEach: no [key, value] array per entry
        port.delete(mac);
        this.freeSlots.push(d.slot);
      });
      if (!port.size) this.decoded.delete(ifindex);
    });
    return out;
  }

  /** The entry at these offsets: the one decoded last time if its bytes are unchanged. */
  private entryAt(keys: Buffer, keyAt: number, vals: Buffer, valAt: number, scan: number): MacEntry {
    const ifindex = keys.readUInt32LE(keyAt + KEY_IFINDEX);
    const mac = keys.readUIntBE(keyAt + KEY_MAC, 6);
    let port = this.decoded.get(ifindex);
    let d = port?.get(mac);
    const size = MAC_STATS.size;
    if (d && vals.compare(this.raw, d.slot * size, d.slot * size + size, valAt, valAt + size) === 0) {
      d.scan = scan;
      return d.entry;
    }
    const entry = decodeEntry(keys, keyAt, vals, valAt);
    if (d) {
      d.entry = entry;
      d.scan = scan;
    } else {
      if (!port) this.decoded.set(ifindex, (port = new Map()));
      port.set(mac, (d = { slot: this.slot(), entry, scan }));
    }
    vals.copy(this.raw, d.slot * size, valAt, valAt + size);
    return entry;
  }

  private slot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    if ((this.slots + 1) * MAC_STATS.size > this.raw.length) {
      const grown = Buffer.alloc(Math.max(CHUNK, this.slots * 2) * MAC_STATS.size);
      this.raw.copy(grown);
      this.raw = grown;
    }
    return this.slots++;
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
    const key = Buffer.alloc(4);
    let prev: Buffer | null = null;
    while ((l.map_get_next_key(this.fds.portCount, prev, next) as number) === 0) {
      next.copy(key);
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
