// What the kernel's per-{port, MAC} counters gained since the last read: the deltas that feed
// the Prometheus counters. Entries are snapshotted by key; a recreated entry (new first_ns, after
// an LRU eviction) starts from zero, so a counter never goes backwards.
import { KINDS, type Kind, type MacEntry } from '../bpf/abi.js';

export type Delta = { how: 'before' | 'lost' | 'delivered'; kind: Kind; n: number };

interface Snapshot {
  gen: bigint; // the entry's first_ns
  kinds: number[];
  unfwd: number[];
}

const zeros = (): number[] => KINDS.map(() => 0);
const keyOf = (ifindex: number, mac: string) => `${ifindex}|${mac}`;

export class KernelDeltas {
  private readonly snapshots = new Map<string, Snapshot>();

  /** Frames before forwarding (all kinds), and announcements lost or delivered, since last time. */
  diff(e: MacEntry): Delta[] {
    const key = keyOf(e.ifindex, e.mac);
    let snap = this.snapshots.get(key);
    if (!snap || snap.gen !== e.firstNs) snap = { gen: e.firstNs, kinds: zeros(), unfwd: zeros() };
    const out: Delta[] = [];
    KINDS.forEach((kind, i) => {
      const total = e.kinds[kind];
      const lost = e.unfwdKinds[kind];
      const dLost = lost - snap.unfwd[i];
      const dDelivered = total - lost - (snap.kinds[i] - snap.unfwd[i]);
      if (dLost > 0) out.push({ how: 'before', kind, n: dLost });
      if (kind !== 'other') {
        if (dLost > 0) out.push({ how: 'lost', kind, n: dLost });
        if (dDelivered > 0) out.push({ how: 'delivered', kind, n: dDelivered });
      }
      snap.kinds[i] = total;
      snap.unfwd[i] = lost;
    });
    this.snapshots.set(key, snap);
    return out;
  }

  /** After a full read: forget entries the kernel no longer has (LRU-evicted). */
  keepOnly(entries: MacEntry[]): void {
    const seen = new Set(entries.map((e) => keyOf(e.ifindex, e.mac)));
    for (const key of this.snapshots.keys()) if (!seen.has(key)) this.snapshots.delete(key);
  }

  forgetPort(ifindex: number): void {
    for (const key of this.snapshots.keys()) if (key.startsWith(`${ifindex}|`)) this.snapshots.delete(key);
  }
}
