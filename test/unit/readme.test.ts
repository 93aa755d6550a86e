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
    if (def) expect(row).toContain(`\`${def}\``);
  });

  it('has no row for an option the code does not have', () => {
    const flags = new Set(OPTIONS.map((o) => `--${o.flag}`));
    for (const r of rows) expect(flags.has(/^\| `(--[\w-]+)`/.exec(r)![1])).toBe(true);
  });
});

describe('README metrics table', () => {
  it('names every metric the daemon registers', () => {
    const reg = new Registry();
    new Metrics(reg, emptySource, { version: 't', kernel: 't', mode: 'ebpf' });
    const names = reg.getMetricsAsArray().map((m) => m.name.replace(/^bridgewatch_/, ''));
    expect(names.length).toBeGreaterThan(20);
    for (const n of names) expect(readme, `README mentions ${n}`).toContain(`\`${n}\``);
  });

  it('names every alert in grafana/alerts.yml', () => {
    const alerts = [...readFileSync(join(PACKAGE_ROOT, 'grafana/alerts.yml'), 'utf8').matchAll(/alert:\s*(\w+)/g)].map((m) => m[1]);
    expect(alerts.length).toBeGreaterThan(5);
    for (const a of alerts) expect(readme).toContain(`\`${a}\``);
  });
});
