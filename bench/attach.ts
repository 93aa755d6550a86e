// Attach without stalling the host: what the daemon's attaching costs other rtnetlink users
// (taps created by another process, as libvirt/nova do), per-device attach cost tcx vs clsact,
// and the 1,000-port figures (all attached, stop, RSS, /metrics). The real daemon runs in a
// netns of our own; `node dist/bench/attach.js [--quick]` prints the figures standalone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfCollection } from '../src/bpf/loader.js';
import { inNetns } from '../src/sys/netns.js';
import { Daemon, ifindexes, median, Netns, sleep, TapBurst } from './attach-rig.js';
import type { Figure } from './harness.js';


const r2 = (x: number) => Math.round(x * 100) / 100;
const spread = (xs: number[]) => `${r2(Math.min(...xs))}–${r2(Math.max(...xs))}`;
const INFO = 'compare';

/** n taps made by the other process, timed there; with a daemon, until it attached them all. */
async function burst(ns: Netns, taps: TapBurst, n: number, d?: Daemon): Promise<{ create: number; attached?: number; del: number }> {
  const base = d ? await d.gauge('bpf_programs_attached') : 0;
  const c = await taps.create(n, 'tapq');
  const attached = d ? await d.untilAttached(`tapq${n - 1}`, base + n, c.startNs) : undefined;
  const del = (await taps.close()).ms;
  if (d) await d.until('bpf_programs_attached', (v) => v === base, process.hrtime.bigint());
  await sleep(200); // let deferred frees (RCU callbacks) of this run finish before the next
  return { create: c.ms, attached, del };
}

/** Without and with the daemon, alternating, one fresh daemon per "with" run. */
export async function rtnlRatio(ns: Netns, taps: TapBurst, mode: string[], pairs: number, n: number): Promise<Figure[]> {
  const isDefault = mode.length === 0;
  // the floor any rtnetlink listener sets (the kernel builds each notification for it, and
  // wakes it): `ip monitor link` instead of bridgewatch, measured for the default mode only
  const arms = isDefault ? ['without', 'with', 'monitor'] : ['without', 'with'];
  const t: Record<string, number[]> = { without: [], with: [], monitor: [] };
  const del: Record<string, number[]> = { without: [], with: [], monitor: [] };
  const attached: number[] = [];
  await burst(ns, taps, n); // warm-up: module and slab caches
  for (let i = 0; i < pairs; i++) {
    for (let k = 0; k < arms.length; k++) {
      const which = arms[(i + k) % arms.length]; // each arm in each position in turn
      let r;
      if (which === 'with') {
        const d = await Daemon.start(ns, mode);
        r = await burst(ns, taps, n, d);
        await d.stop();
        attached.push(r.attached!);
      } else if (which === 'monitor') {
        const stop = await ns.monitor();
        r = await burst(ns, taps, n);
        await stop();
      } else r = await burst(ns, taps, n);
      t[which].push(r.create);
      del[which].push(r.del);
    }
  }
  const without = t.without;
  const withD = t.with;
  const delWithout = del.without;
  const delWith = del.with;
  const name = mode.length ? mode.join(' ') : 'default mode';
  const ratio = median(withD) / median(without);
  const delRatio = median(delWith) / median(delWithout);
  const tag = isDefault ? 'default' : mode.at(-1)!;
  const floor = isDefault ? `; \`ip monitor link\` listening instead: ${r2(median(t.monitor) / median(without))}× (${r2(median(t.monitor))} ms)` : '';
  return [
    {
      id: `attach.rtnl.create${n}.${tag}`,
      label: `${n} taps created by another process, with / without bridgewatch (${name})`,
      value: r2(ratio),
      unit: '×',
      target: isDefault ? '≤ 1.5×' : INFO,
      met: isDefault ? ratio <= 1.5 : true,
      samples: withD.map((w, k) => r2(w / without[k])),
      detail: `without ${r2(median(without))} ms (${spread(without)}), with ${r2(median(withD))} ms (${spread(withD)}), ${pairs} alternating rounds${floor}; all attached ${r2(median(attached))} ms after the first tap`,
    },
    {
      id: `attach.rtnl.delete${n}.${tag}`,
      label: `the same ${n} taps deleted (fds closed), with / without bridgewatch (${name})`,
      value: r2(delRatio),
      unit: '×',
      target: INFO,
      met: true,
      samples: delWith.map((w, k) => r2(w / delWithout[k])),
      detail: `without ${r2(median(delWithout))} ms (${spread(delWithout)}), with ${r2(median(delWith))} ms (${spread(delWith)})`,
    },
  ];
}

/** Per-device attach and detach cost in this process, tcx vs clsact, alternating rounds. */
export function attachCost(ns: Netns, taps: TapBurst, n: number, rounds: number): Promise<Figure[]> {
  return (async () => {
    await taps.create(n, 'tapc');
    const idx = ifindexes(ns, Array.from({ length: n }, (_, i) => `tapc${i}`));
    const cost: Record<'tcx' | 'tc', { a: number[]; d: number[] }> = { tcx: { a: [], d: [] }, tc: { a: [], d: [] } };
    const state = mkdtempSync(join(tmpdir(), 'bw-bench-cost-'));
    inNetns(ns.name, () => {
      for (let r = 0; r < rounds; r++) {
        for (const mode of r % 2 ? (['tc', 'tcx'] as const) : (['tcx', 'tc'] as const)) {
          const bpf = BpfCollection.load({ mode, stateDir: state });
          try {
            let t0 = process.hrtime.bigint();
            idx.forEach((i) => bpf.attach(i));
            cost[mode].a.push(Number(process.hrtime.bigint() - t0) / 1e6 / n);
            t0 = process.hrtime.bigint();
            idx.forEach((i) => bpf.detach(i));
            cost[mode].d.push(Number(process.hrtime.bigint() - t0) / 1e6 / n);
          } finally {
            bpf.close();
          }
        }
      }
    });
    rmSync(state, { recursive: true, force: true });
    await taps.close();
    const fig = (mode: 'tcx' | 'tc', what: 'a' | 'd'): Figure => ({
      id: `attach.cost.${mode}.${what === 'a' ? 'attach' : 'detach'}`,
      label: `${what === 'a' ? 'attach' : 'detach'} per device, ${mode === 'tc' ? 'clsact filter (--attach tc)' : 'tcx link (--attach tcx)'}`,
      value: r2(median(cost[mode][what])),
      unit: 'ms',
      target: INFO,
      met: true,
      samples: cost[mode][what].map(r2),
      detail: `${n} taps, median of ${rounds} rounds (${spread(cost[mode][what])} ms)`,
    });
    return [fig('tcx', 'a'), fig('tc', 'a'), fig('tcx', 'd'), fig('tc', 'd')];
  })();
}

const fig = (id: string, label: string, xs: number[], unit: string, limit: number | undefined, detail: string): Figure => ({
  id,
  label,
  value: r2(median(xs)),
  unit,
  target: limit === undefined ? INFO : `≤ ${limit} ${unit}`,
  met: limit === undefined || median(xs) <= limit,
  samples: xs.map(r2),
  detail,
});

/**
 * 1,000 taps at once into a running daemon: all attached; /metrics (after warm-up scrapes, as
 * under a scraper) with no MACs yet; RSS and /metrics with 10 MACs per tap; stop.
 */
export async function thousand(ns: Netns, taps: TapBurst, runs: number, mode: string[] = []): Promise<Figure[]> {
  const N = 1000;
  const MACS = 10;
  const s = { attached: [] as number[], create: [] as number[], rss: [] as number[], scrape0: [] as number[], scrape: [] as number[], stop: [] as number[] };
  let left = '';
  let resyncs = 0;
  const alone = (await taps.create(N, 'tapk')).ms / 1000; // the other process with no daemon about
  await taps.close();
  for (let run = 0; run < runs; run++) {
    const d = await Daemon.start(ns, mode);
    try {
      const c = await taps.create(N, 'tapk');
      s.create.push(c.ms / 1000);
      s.attached.push((await d.untilAttached(`tapk${N - 1}`, N, c.startNs)) / 1000);
      const k = await ns.programsLeft('tapk');
      if (k.tcx + k.clsact < N) left += `run ${run}: only ${k.tcx + k.clsact} of ${N} taps have a program in the kernel; `;
      const scrape = async (n: number) => {
        for (let i = 0; i < 3; i++) await d.metrics(); // warm: a scraper comes back every 15 s
        const ms = [];
        for (let i = 0; i < n; i++) ms.push((await d.metrics()).ms);
        return median(ms);
      };
      s.scrape0.push(await scrape(7));
      await taps.frames(MACS);
      await d.until('guest_macs_tracked', (v) => v >= N * MACS, process.hrtime.bigint(), { intervalMs: 500 });
      s.scrape.push(await scrape(7));
      s.rss.push(d.rssMb());
      resyncs += await d.gauge('netlink_resyncs_total');
      const st = await d.stop();
      s.stop.push(st.ms / 1000);
      if (st.code !== 0) left += `run ${run}: exit ${st.code}: ${st.tail.trim().split('\n').at(-1)}; `;
      const after = await ns.programsLeft('tapk');
      if (after.tcx || after.clsact) left += `run ${run}: after stop ${after.tcx} tcx links and ${after.clsact} clsact qdiscs left; `;
    } finally {
      d.kill();
      await taps.close();
    }
  }
  const tag = mode.length ? `.${mode.at(-1)}` : '';
  const name = mode.length ? ` (${mode.join(' ')})` : '';
  const limit = (x: number) => (mode.length ? undefined : x); // targets are for the default mode
  const stop = fig(`attach.stop${N}${tag}`, `SIGTERM → exit with ${N} ports attached, nothing left${name}`, s.stop, 's', limit(2), left || 'kernel checked after exit: no tcx link, no clsact qdisc left');
  if (left) stop.met = false;
  const out = [
    fig(`attach.all${N}${tag}`, `${N} taps created at once → all have a program${name}`, s.attached, 's', limit(1),
      `from the first tap created until the last one is watched (polled every 10 ms) and bpf_programs_attached = ${N}: ${r2(median(s.attached) - median(s.create))} s after the last tap; the other process took ${r2(median(s.create))} s to create them (${r2(alone)} s with no daemon); ${runs} run(s), ${resyncs} rtnetlink resyncs; ${left || 'the kernel agrees'}`),
    stop,
  ];
  if (mode.length) return out;
  return [
    ...out,
    fig(`attach.rss${N}`, `daemon RSS with ${N} ports and ${N * MACS} MACs`, s.rss, 'MB', 100, 'VmRSS after the scrapes below'),
    fig(`attach.metrics${N}`, `GET /metrics at ${N} ports`, s.scrape0, 'ms', 20, 'keep-alive connection from inside the netns, median of 7 after 3 warm-up scrapes'),
    fig(`attach.metrics${N}.macs`, `GET /metrics at ${N} ports and ${N * MACS} MACs`, s.scrape, 'ms', undefined, 'the same; the full {port, MAC} map read and tracker sync per scrape dominate'),
  ];
}

export async function attachFigures(o: { quick: boolean }): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error('bench attach: needs root (netns, BPF)');
  const ns = new Netns();
  const taps = new TapBurst(ns);
  try {
    const out: Figure[] = [];
    out.push(...(await rtnlRatio(ns, taps, [], o.quick ? 5 : 7, 200)));
    out.push(...(await rtnlRatio(ns, taps, ['--attach', 'tcx'], o.quick ? 3 : 5, 200)));
    out.push(...(await attachCost(ns, taps, o.quick ? 50 : 100, 5)));
    out.push(...(await thousand(ns, taps, o.quick ? 1 : 3)));
    if (!o.quick) out.push(...(await thousand(ns, taps, 1, ['--attach', 'tcx'])));
    return out;
  } finally {
    taps.end();
    await sleep(100);
    ns.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const figures = await attachFigures({ quick: process.argv.includes('--quick') });
  for (const f of figures)
    console.log(`${f.met ? 'ok  ' : 'MISS'} ${f.label}: ${f.value} ${f.unit} (target ${f.target})${f.detail ? `\n       ${f.detail}` : ''}`);
  process.exit(figures.every((f) => f.met) ? 0 : 1);
}
