// npm run bench --quick as a smoke test: every producer runs in its own namespaces, every figure
// comes out finite, and nothing is left behind. No timing is asserted: speed lives in the bench.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Results } from '../../bench/harness.js';
import { PRODUCERS } from '../../bench/producers.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { requires } from '../helpers/kernel.js';

const RUNNER = join(PACKAGE_ROOT, 'dist/bench/run.js');
const dir = mkdtempSync(join(tmpdir(), 'bwt-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// the figures of the modules this suite knows; other producers must show up under their prefix
const FIGURES = [
  ...['known_mac', 'vlan', 'rarp', 'unfwd', 'lo', 'new_mac', 'statemap.known_mac', 'noop'].map((x) => `testrun.${x}`),
  ...['nothing', 'noop', 'bridgewatch', 'ratio'].flatMap((x) => [`tap1.${x}`, `tap2.${x}`]),
  'tap1.prog_ns.noop',
  'tap1.prog_ns.bridgewatch',
  'tap1.prog_ns_over_noop',
  'scrape.10_ports',
  'scrape.1000_ports',
  'scrape.ratio',
  'mapscan.small',
  'mapscan.large',
  'mapscan.ratio',
  ...['p50', 'p99', 'max'].map((x) => `heal.first_rarp.${x}`),
  'rss.1000_ports',
  'rss.1000_ports.idle',
  'rss.metrics_1000_ports',
];

const namespaces = (): string[] => (existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith('bwbench-')) : []);

describe('npm run bench -- --quick', () => {
  it('writes results.json with every figure finite and leaves no namespace behind', async (ctx) => {
    requires(ctx, 'bpf', 'tun', 'bridge', 'bridgeBtf');
    expect(existsSync(RUNNER), `${RUNNER} missing: run npm run build`).toBe(true);
    const out = join(dir, 'results.json');
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string; pid: number }>((done) => {
      const child = execFile(process.execPath, [RUNNER, '--quick', '--out', out], { timeout: 170_000 }, (err, stdout, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, pid: child.pid! }),
      );
    });
    expect(run.code, run.stderr).toBe(0);
    const r = JSON.parse(readFileSync(out, 'utf8')) as Results;
    expect(r.quick).toBe(true);
    const ids = r.figures.map((f) => f.id);
    expect(ids).toEqual(expect.arrayContaining(FIGURES));
    for (const p of PRODUCERS) expect(ids.some((id) => id.startsWith(p.prefix)), `figures of ${p.prefix}*`).toBe(true);
    for (const f of r.figures) {
      expect(Number.isFinite(f.value), `${f.id} = ${f.value}`).toBe(true);
      expect(f.samples.length, f.id).toBeGreaterThanOrEqual(5);
      expect(f.samples.every(Number.isFinite), f.id).toBe(true);
      expect(typeof f.met).toBe('boolean');
      expect(f.unit && f.label).toBeTruthy();
    }
    for (const id of FIGURES) expect(run.stdout).toContain(id); // the printed table
    expect(namespaces().filter((n) => n.includes(`-${run.pid}-`))).toEqual([]);
  }, 180_000);
});
