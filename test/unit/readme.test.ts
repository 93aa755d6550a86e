// The README's references are checked against the code, so they cannot drift.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { OPTIONS, optionNames } from '../../src/config.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { emptySource } from '../helpers/metrics-source.js';

const readme = readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8');
const rows = readme.split('\n').filter((l) => l.startsWith('| `--'));

describe('README configuration table', () => {
  it.each(OPTIONS.map((o) => [o.flag, o]))('documents --%s with its env name and default', (_flag, o) => {
    const n = optionNames(o);
    const row = rows.find((r) => r.startsWith(`| \`${n.flag}\` |`));
    expect(row, `README row for ${n.flag}`).toBeDefined();
    expect(row).toContain(`\`${n.env}\``);
    const def = Array.isArray(o.default) ? o.default.join(',') : String(o.default);
    // | flag | environment | default | meaning |: the default cell is the default, or empty
    expect(row!.split('|')[3].trim()).toBe(def ? `\`${def}\`` : '');
  });

  it('has no row for an option the code does not have', () => {
    const flags = new Set(OPTIONS.map((o) => `--${o.flag}`));
    for (const r of rows) expect(flags.has(/^\| `(--[\w-]+)`/.exec(r)![1])).toBe(true);
  });
});

describe('README metrics table', () => {
  it('names every metric the daemon registers: its own without the prefix, process_* in full, nodejs_* as a family', () => {
    const reg = new Registry();
    new Metrics(reg, emptySource, { version: 't', kernel: 't', mode: 'ebpf' });
    const names = reg.getMetricsAsArray().map((m) => m.name);
    const own = names.filter((n) => n.startsWith('bridgewatch_'));
    const proc = names.filter((n) => n.startsWith('process_'));
    expect(own.length).toBeGreaterThan(20);
    expect(proc).toEqual(expect.arrayContaining(['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'process_start_time_seconds']));
    expect(names.filter((n) => !/^(bridgewatch|process|nodejs)_/.test(n))).toEqual([]);
    for (const n of own) expect(readme, `README mentions ${n}`).toContain(`\`${n.slice('bridgewatch_'.length)}\``);
    for (const n of proc) expect(readme, `README mentions ${n}`).toContain(`\`${n}\``);
    expect(names).toContain('nodejs_heap_size_used_bytes');
    expect(readme).toContain('| `nodejs_*` |');
  });

  it('names every alert in grafana/alerts.yml', () => {
    const alerts = [...readFileSync(join(PACKAGE_ROOT, 'grafana/alerts.yml'), 'utf8').matchAll(/alert:\s*(\w+)/g)].map((m) => m[1]);
    expect(alerts.length).toBeGreaterThan(5);
    for (const a of alerts) expect(readme).toContain(`\`${a}\``);
  });
});
