// User-space costs per /metrics scrape: tracker sync + exposition for few vs many ports, and
// reading the {port, MAC} map (one scan per scrape) for a small vs a full map.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { MacEntry } from '../src/bpf/abi.js';
import { BpfCollection } from '../src/bpf/loader.js';
import { Metrics } from '../src/metrics/metrics.js';
import { Tracker } from '../src/tracker/timeline.js';
import { alternate, figure, ratios, type BenchOptions, type Figure, type Producer } from './harness.js';
import { ipv4Frame } from './testrun.js';

export const scrapeProducer: Producer = { prefix: 'scrape.', run: (o) => scrapeFigures(o) };
export const mapScanProducer: Producer = { prefix: 'mapscan.', run: (o) => mapScanFigures(o) };

/** A metrics registry over a tracker with `ports` guest ports; returns ms per scrape. */
async function scraper(ports: number, scrapes: number): Promise<() => Promise<number>> {
  const tracker = new Tracker({ maxPorts: ports + 1 });
  const entries: MacEntry[] = [];
  for (let i = 1; i <= ports; i++) {
    tracker.portAppeared({ ifindex: i, name: `tap${i}`, kind: 'tun', guest: true, bridge: 'br0', state: 'forwarding', carrier: true, tsNs: 1n, initial: true });
    const mac = `52:54:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
    const kinds = { other: i, rarp: 5, garp: 0, na: 0, legacy: 0 };
    const none = { other: 0, rarp: 0, garp: 0, na: 0, legacy: 0 };
    entries.push({ ifindex: i, mac, firstNs: 1n, lastNs: 2n, firstFwdNs: 1n, lastUnfwdNs: 0n, lastAnnounceNs: 0n, frames: i + 5, unfwdFrames: 0, kinds, unfwdKinds: none, vlan: 0, firstState: 3 });
  }
  const m = new Metrics(
    new Registry(),
    {
      refresh: () => tracker.syncCounters(entries),
      ports: () => tracker.portList(),
      bridges: () => [{ name: 'br0', stpEnabled: false, forwardDelaySec: 0 }],
      macCount: () => tracker.macCount(),
      maps: () => [{ name: 'bw_port_macs', entries: entries.length, max: 16384 }],
      programsAttached: () => ports,
      bpfEventsDropped: () => 0,
      ready: () => true,
      refused: () => ({ ports: 0, macs: 0, timeline: 0 }),
    },
    { version: 'bench', kernel: 'bench', mode: 'ebpf' },
  );
  m.bridgeSeen('br0');
  await m.scrape();
  return async () => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < scrapes; i++) await m.scrape();
    return Number(process.hrtime.bigint() - t0) / 1e6 / scrapes;
  };
}

export async function scrapeFigures(o: BenchOptions): Promise<Figure[]> {
  const rounds = o.quick ? 5 : 9;
  const scrapes = o.quick ? 2 : 20;
  const [few, many] = await alternate(await scraper(10, scrapes), await scraper(1000, scrapes), rounds);
  const detail = `mean of ${scrapes} scrapes per sample, ${rounds} rounds`;
  return [
    figure('scrape.10_ports', 'one /metrics scrape (tracker sync + exposition), 10 ports', 'ms', few, null, detail),
    figure('scrape.1000_ports', 'one /metrics scrape, 1000 ports', 'ms', many, null, detail),
    figure('scrape.ratio', 'scrape cost, 1000 / 10 ports (100× the ports)', '×', ratios(few, many), null, 'paired per round'),
  ];
}

export async function mapScanFigures(o: BenchOptions): Promise<Figure[]> {
  const rounds = o.quick ? 5 : 7;
  const sizes = o.quick ? [64, 512] : [1024, 16_000];
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-'));
  const maps = sizes.map((n) => {
    const bpf = BpfCollection.load({ stateDir: dir, maxMacs: 16_384 });
    const f = ipv4Frame(Buffer.from([0x52, 0x54, 0, 0, 0, 0]));
    for (let i = 0; i < n; i++) {
      f.writeUInt16BE(i, 10); // distinct source MACs 52:54:00:00:xx:xx
      bpf.testRun(f);
    }
    return bpf;
  });
  try {
    const scan = (i: number) => () => {
      const t0 = process.hrtime.bigint();
      const got = maps[i].macs().length;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (got !== sizes[i]) throw new Error(`map scan: expected ${sizes[i]} entries, read ${got}`);
      return ms;
    };
    const [small, large] = await alternate(scan(0), scan(1), rounds);
    return [
      figure('mapscan.small', `reading the {port, MAC} map (one scan per scrape), ${sizes[0]} entries`, 'ms', small, null),
      figure('mapscan.large', `reading the {port, MAC} map, ${sizes[1]} entries`, 'ms', large, null),
      figure('mapscan.ratio', `map scan, ${sizes[1]} / ${sizes[0]} entries`, '×', ratios(small, large), null, 'paired per round'),
    ];
  } finally {
    for (const b of maps) b.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
