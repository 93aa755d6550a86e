// The one harness every benchmark uses: variants measured interleaved (never one block after
// another), medians with their min–max spread, and one Figure record per number we report.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Figure {
  id: string;
  label: string;
  value: number;
  unit: string;
  /** what the value should be, e.g. '≤ 15' or '≥ 0.97'; '' when the figure is for information */
  target: string;
  met: boolean;
  samples: number[];
  detail?: string;
}

export interface BenchOptions {
  /** tiny counts: proves the harness runs, measures nothing worth quoting */
  quick: boolean;
}

/** A module that measures some figures. `prefix` names its ids, for --only. */
export interface Producer {
  prefix: string;
  run(o: BenchOptions): Promise<Figure[]>;
}

export const median = (xs: readonly number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Run every variant once per round, rotating which goes first, for `rounds` rounds; returns
 * each variant's samples. Interleaving spreads a noisy neighbour over all variants alike.
 */
export async function interleave(variants: readonly (() => number | Promise<number>)[], rounds: number): Promise<number[][]> {
  const out = variants.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++)
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length;
      out[i].push(await variants[i]());
    }
  return out;
}

/** A and B interleaved: their samples, round by round. */
export async function alternate(a: () => number | Promise<number>, b: () => number | Promise<number>, rounds: number): Promise<[number[], number[]]> {
  const [as, bs] = await interleave([a, b], rounds);
  return [as, bs];
}

/** Per-round differences b - a, or ratios b / a: paired, so drift between rounds cancels. */
export const deltas = (a: readonly number[], b: readonly number[]): number[] => b.map((x, i) => x - a[i]);
export const ratios = (a: readonly number[], b: readonly number[]): number[] => b.map((x, i) => x / a[i]);

export type Goal = { atMost: number } | { atLeast: number } | null;

/** A figure whose value is the median of `samples`, judged against `goal`. */
export function figure(id: string, label: string, unit: string, samples: number[], goal: Goal, detail?: string): Figure {
  const value = median(samples);
  const target = !goal ? '' : 'atMost' in goal ? `≤ ${goal.atMost}` : `≥ ${goal.atLeast}`;
  const met = !goal ? true : 'atMost' in goal ? value <= goal.atMost : value >= goal.atLeast;
  return { id, label, value, unit, target, met, samples, ...(detail ? { detail } : {}) };
}

const fmt = (x: number): string => (!Number.isFinite(x) ? String(x) : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(3));

/** The printed table: figure, value (spread), target, met. */
export function table(figures: readonly Figure[]): string {
  const rows = figures.map((f) => {
    const lo = Math.min(...f.samples);
    const hi = Math.max(...f.samples);
    return [f.id, `${fmt(f.value)} ${f.unit}`, f.samples.length > 1 ? `${fmt(lo)}–${fmt(hi)}` : '', f.target ? `${f.target} ${f.unit}` : '', f.target ? (f.met ? 'yes' : 'NO') : ''];
  });
  const head = ['figure', 'value', 'spread (min–max)', 'target', 'met'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

export interface Results {
  when: string;
  quick: boolean;
  kernel: string;
  cpus: number;
  figures: Figure[];
}

export function writeResults(path: string, r: Results): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(r, null, 2)}\n`);
}
