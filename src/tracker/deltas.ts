// What the kernel's per-{port, MAC} counters gained since the last read: the deltas that feed
// the Prometheus counters. Entries are snapshotted by key; a recreated entry (new first_ns, after
// an LRU eviction) starts from zero, so a counter never goes backwards.
import { KINDS, type Kind, type MacEntry } from '../bpf/abi.js';

export type Delta = { how: 'before' | 'lost' | 'delivered'; kind: Kind; n: number };

interface Snapshot {
  gen: bigint; // the entry's first_ns
  kinds: number[];
  unfwd: number[];
  seen: number; // the keepOnly() round that last saw it
}

const NONE: Delta[] = [];

export class KernelDeltas {
  /** ifindex -> MAC -> counts at the last read: no key string built per entry per read */
  private readonly snapshots = new Map<number, Map<string, Snapshot>>();
  private round = 0;

  /** Frames before forwarding (all kinds), and announcements lost or delivered, since last time. */
  diff(e: MacEntry): Delta[] {
    let port = this.snapshots.get(e.ifindex);
    if (!port) this.snapshots.set(e.ifindex, (port = new Map()));
    let snap = port.get(e.mac);
    if (!snap || snap.gen !== e.firstNs) {
      snap = { gen: e.firstNs, kinds: KINDS.map(() => 0), unfwd: KINDS.map(() => 0), seen: this.round };
      port.set(e.mac, snap);
    }
    let out = NONE;
    for (let i = 0; i < KINDS.length; i++) {
      const kind: Kind = KINDS[i];
      const total = e.kinds[kind];
      const lost = e.unfwdKinds[kind];
      if (total === snap.kinds[i] && lost === snap.unfwd[i]) continue; // the usual case: nothing new
      const dLost = lost - snap.unfwd[i];
      const dDelivered = total - lost - (snap.kinds[i] - snap.unfwd[i]);
      if (out === NONE) out = [];
      if (dLost > 0) out.push({ how: 'before', kind, n: dLost });
      if (kind !== 'other') {
        if (dLost > 0) out.push({ how: 'lost', kind, n: dLost });
        if (dDelivered > 0) out.push({ how: 'delivered', kind, n: dDelivered });
      }
      snap.kinds[i] = total;
      snap.unfwd[i] = lost;
    }
    return out;
  }

  /** After a full read: forget entries the kernel no longer has (LRU-evicted). */
  keepOnly(entries: MacEntry[]): void {
    const round = ++this.round;
    for (const e of entries) {
      const snap = this.snapshots.get(e.ifindex)?.get(e.mac);
      if (snap) snap.seen = round;
    }
    // forEach, not for-of over entries: no [key, value] array per entry
    this.snapshots.forEach((port, ifindex) => {
      port.forEach((snap, mac) => snap.seen !== round && port.delete(mac));
      if (!port.size) this.snapshots.delete(ifindex);
    });
  }

  forgetPort(ifindex: number): void {
    this.snapshots.delete(ifindex);
  }
}
