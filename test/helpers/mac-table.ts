// A libpcap-fallback MacTable with a clock of its own, for the unit test and its kernel twin.
import { STATE_NOT_BRIDGE_PORT, type BpfEvent } from '../../src/bpf/abi.js';
import type { Tunables } from '../../src/bpf/loader.js';
import { MacTable, type FrameMeta } from '../../src/capture/table.js';

const S = 1_000_000_000n;

/** A table and a clock; feed() records frames 1 µs apart unless told when. */
export function table(maxMacs = 16, tunables: Partial<Tunables> = {}) {
  const t = new MacTable({ maxMacs, tunables });
  let now = 1_000n * S;
  const events: BpfEvent[] = [];
  const feed = (frame: Buffer, m: Partial<FrameMeta> = {}) => {
    now = m.tsNs ?? now + 1000n;
    const ev = t.record(frame, { ifindex: 7, tsNs: now, state: STATE_NOT_BRIDGE_PORT, vlan: 0, len: frame.length, ...m });
    if (ev) events.push(ev);
    return ev;
  };
  return { t, feed, events, now: () => now };
}
