// The libpcap fallback's {port, MAC} table (src/capture/table.ts) against the BPF program on the
// same frames (BPF_PROG_TEST_RUN): entries, counters and events, times aside.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BpfEvent, MacEntry } from '../../src/bpf/abi.js';
import { EventReader } from '../../src/bpf/events.js';
import { BpfCollection } from '../../src/bpf/loader.js';
import { garp, na } from '../helpers/classifier-cases.js';
import { arp, ipv4Frame, legacyRarp, mac, qemuRarp, tagged } from '../helpers/frames.js';
import { missing, requires } from '../helpers/kernel.js';
import { table } from '../helpers/mac-table.js';
import { cleanupAll, tempStateDir } from '../helpers/netns.js';

const A = mac('52:54:00:00:00:0a');
const B = mac('52:54:00:00:00:0b');

describe('MacTable agrees with the kernel program on the same frames (BPF_PROG_TEST_RUN)', () => {
  let bpf: BpfCollection | undefined;
  const tunables = { eventsPerMac: 4, eventWindowMs: 60_000 };
  beforeAll(() => {
    if (!missing.bpf) bpf = BpfCollection.load({ stateDir: tempStateDir(), tunables });
  });
  afterAll(() => {
    bpf?.close();
    cleanupAll();
  });

  const timeless = (e: MacEntry) => ({
    ...e,
    firstNs: 0n,
    lastNs: 0n,
    firstFwdNs: e.firstFwdNs ? 1n : 0n,
    lastUnfwdNs: e.lastUnfwdNs === e.lastNs ? 1n : 2n,
    lastAnnounceNs: e.lastAnnounceNs === 0n ? 0n : e.lastAnnounceNs === e.lastNs ? 1n : 2n,
  });
  const byKey = (a: MacEntry, b: MacEntry) => (a.mac < b.mac ? -1 : 1);

  it('entries, counters and events match, times aside', async (ctx) => {
    requires(ctx, 'bpf');
    const kernelEvents: BpfEvent[] = [];
    const reader = new EventReader(bpf!.maps.events, { onEvent: (e) => kernelEvents.push(e), intervalMs: 3_600_000 });
    reader.start();
    const { t, feed, events } = table(1024, tunables);
    const seq = [
      ipv4Frame(A),
      ...Array.from({ length: 7 }, () => qemuRarp(A)),
      qemuRarp(mac('01:00:5e:00:00:01')),
      tagged(legacyRarp(B), { tpid: 0x88a8, vid: 300 }, { tpid: 0x8100, vid: 7 }),
      arp(B, 2, '198.51.100.1', '198.51.100.1'),
      na,
      garp.subarray(0, 30),
      ipv4Frame(B, 1514),
      qemuRarp(mac('00:00:00:00:00:00')),
      ...Array.from({ length: 5 }, () => tagged(garp, { tpid: 0x8100, vid: 12 })),
    ];
    try {
      for (const f of seq) {
        bpf!.testRun(f);
        feed(f);
      }
      reader.poll();
    } finally {
      reader.stop();
    }
    const user = t.entries().map((e) => ({ ...e, ifindex: 1 }));
    expect(user.map(timeless).sort(byKey)).toEqual(bpf!.macs().map(timeless).sort(byKey));
    expect(t.counters).toEqual(bpf!.stats());
    const strip = (e: BpfEvent) => ({ ...e, tsNs: 0n, ifindex: 0 });
    expect(events.map(strip)).toEqual(kernelEvents.map(strip));
    expect(events.length).toBeGreaterThan(8);
  });
});
