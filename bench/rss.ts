// The daemon's memory and scrape cost at scale: the real daemon (`node bin/bridgewatch.js run`)
// in a netns of our own, 1,000 taps made at once by another process (bench/tap-burst.ts), then
// 10 guest MACs per tap. Per run: /metrics at 1,000 ports (after warm-up scrapes, as under a
// scraper), the same with 10,000 MACs, and VmRSS after each of those last scrapes. Runs
// alternate between the daemon as shipped and the daemon with V8's default heap sizing
// (BRIDGEWATCH_V8_DEFAULTS=1: bin/bridgewatch.js then sets no V8 flag), so the figure says what
// those settings are worth on this machine at this moment.
import { readFileSync } from 'node:fs';
import { Daemon, Netns, sleep, TapBurst } from './attach-rig.js';
import { figure, type BenchOptions, type Figure, type Producer } from './harness.js';

interface Run {
  scrape0: number[]; // ms per scrape, ports and no MACs
  scrape: number[]; // ms per scrape, with the MACs
  rss: number[]; // MB, after each timed scrape with the MACs
  idle: number[]; // MB, 10-14 s after the last scrape (as between two scrapes 15 s apart)
}

const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

async function run(ns: Netns, taps: TapBurst, ports: number, macs: number, idleMs: number, env: NodeJS.ProcessEnv): Promise<Run> {
  const d = await Daemon.start(ns, [], env);
  const r: Run = { scrape0: [], scrape: [], rss: [], idle: [] };
  try {
    const c = await taps.create(ports, 'tapm');
    await d.untilAttached(`tapm${ports - 1}`, ports, c.startNs);
    const scrapes = async (into: number[], rss?: number[]) => {
      for (let i = 0; i < 3; i++) await d.metrics(); // warm: a scraper comes back every 15 s
      for (let i = 0; i < 7; i++) {
        into.push((await d.metrics()).ms);
        rss?.push(rssMb(d.pid));
      }
    };
    await scrapes(r.scrape0);
    await taps.frames(macs);
    await d.until('guest_macs_tracked', (v) => v >= ports * macs, process.hrtime.bigint(), { intervalMs: 500 });
    await scrapes(r.scrape, r.rss);
    // V8's memory reducer runs once the process has been quiet for ~8 s: what the daemon holds
    // between two scrapes of a Prometheus that comes every 15 s
    await sleep(idleMs);
    for (let i = 0; i < 5; i++) {
      r.idle.push(rssMb(d.pid));
      await sleep(idleMs / 10);
    }
    const st = await d.stop();
    if (st.code !== 0) throw new Error(`bench rss: daemon exited ${st.code}: ${st.tail.trim().split('\n').at(-1)}`);
    return r;
  } finally {
    d.kill();
    await taps.close();
  }
}

export async function rssFigures(o: BenchOptions): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error('bench rss: needs root (netns, BPF)');
  const PORTS = o.quick ? 100 : 1000; // quick: proves the figure works, measures nothing
  const MACS = 10;
  const runs = o.quick ? 1 : 3;
  const ns = new Netns('rss');
  const taps = new TapBurst(ns);
  const variants: [string, NodeJS.ProcessEnv][] = [
    ['shipped', {}],
    ['v8defaults', { BRIDGEWATCH_V8_DEFAULTS: '1' }],
  ];
  const got = new Map<string, Run[]>(variants.map(([n]) => [n, []]));
  try {
    for (let i = 0; i < runs; i++)
      for (let k = 0; k < variants.length; k++) {
        const [name, env] = variants[(i + k) % variants.length]; // each first in turn
        got.get(name)!.push(await run(ns, taps, PORTS, MACS, o.quick ? 1000 : 10_000, env));
        await sleep(200);
      }
  } finally {
    taps.end();
    await sleep(100);
    ns.close();
  }
  const all = (name: string, key: keyof Run) => got.get(name)!.flatMap((r) => r[key]);
  const r2 = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);
  const per = `${runs} run(s) of a fresh daemon, alternating with the V8-defaults variant`;
  const out: Figure[] = [];
  for (const [name] of variants) {
    const tag = name === 'shipped' ? '' : `@${name}`;
    const label = name === 'shipped' ? '' : ' (V8 default heap sizing)';
    out.push(
      figure(`rss.1000_ports${tag}`, `daemon RSS with ${PORTS} ports and ${PORTS * MACS} MACs${label}`, 'MB', r2(all(name, 'rss')), tag ? null : { atMost: 100 }, `VmRSS after each of 7 scrapes (3 warm-up first); ${per}`),
      figure(`rss.1000_ports.idle${tag}`, `the same, 10–14 s after the last scrape${label}`, 'MB', r2(all(name, 'idle')), null, `VmRSS 5 times, 1 s apart, from 10 s after the scrapes (V8's memory reducer has run); ${per}`),
      figure(`rss.metrics_1000_ports${tag}`, `GET /metrics at ${PORTS} ports${label}`, 'ms', r2(all(name, 'scrape0')), tag ? null : { atMost: 20 }, `keep-alive connection from inside the netns, 7 scrapes after 3 warm-up ones; ${per}`),
      figure(`rss.metrics_1000_ports_macs${tag}`, `GET /metrics at ${PORTS} ports and ${PORTS * MACS} MACs${label}`, 'ms', r2(all(name, 'scrape')), null, `the full {port, MAC} map read and tracker sync per scrape; ${per}`),
    );
  }
  return out;
}

export const rssProducer: Producer = { prefix: 'rss.', run: (o) => rssFigures(o) };
