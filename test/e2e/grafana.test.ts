// The product files around the daemon, checked with the real tools: alert rules and their unit
// tests (promtool), every PromQL expression of the dashboard and the rules (promtool parses them,
// and their metric and label names must be in the metric contract), the dashboard's structure,
// the Prometheus scrape config (promtool check config, and a real Prometheus for the relabeling),
// the systemd unit (systemd-analyze verify), the Kubernetes manifest and the Dockerfile.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { contractProblems, METRIC_CONTRACT, PROMETHEUS_SERIES, promqlSelectors } from '../helpers/metric-contract.js';
import { alertNamesOf, allPanels, dashboard, dashboardExprs, queryPanels, ruleExprs, substitute, variable, variableQuery, type Expr, type Json } from '../helpers/prom-exprs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const file = (p: string) => join(ROOT, p);
const read = (p: string) => readFileSync(file(p), 'utf8');

function which(tool: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}
function run(cmd: string, args: string[], cwd = ROOT) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
const PROMTOOL = which('promtool');
const NO_PROMTOOL = 'promtool not found (Debian package prometheus; scripts/setup.sh installs it)';

const work = mkdtempSync(join(tmpdir(), 'bridgewatch-grafana-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// ---- the dashboard's and the rules' expressions (test/helpers/prom-exprs.ts) ----------------
const alertNames = alertNamesOf('grafana/alerts.yml');

/** `promtool check rules` over one recording rule per expression */
function checkExprsWithPromtool(exprs: Expr[], name: string) {
  const rules = exprs.map((e, i) => `      - record: check:expr_${i}\n        expr: ${JSON.stringify(substitute(e.expr))}`);
  const path = join(work, `${name}.rules.yml`);
  writeFileSync(path, `groups:\n  - name: ${name}\n    rules:\n${rules.join('\n')}\n`);
  return run(PROMTOOL!, ['check', 'rules', path]);
}

describe('metric contract helpers', () => {
  it.each([
    ['sum by (instance, le) (rate(bridgewatch_attach_delay_seconds_bucket{instance=~".*"}[5m]))', [['bridgewatch_attach_delay_seconds_bucket', ['instance']]]],
    ['absent(up{job="bridgewatch"})', [['up', ['job']]]],
    ['a / ignoring(x) group_left(y) b{c!="d", e=~"f"} offset 5m', [['a', []], ['b', ['c', 'e']]]],
    ['sum(rate(x_total[1m])) by (le) > 0.9 and on () vector(1)', [['x_total', []]]],
    ['max by (m) (e / (f > 0)) > 1e-3', [['e', []], ['f', []]]],
    ['count without (a) (g) or on (b) max by (c) (h[5m])', [['g', []], ['h', []]]],
  ])('finds the selectors of %s', (expr, want) => {
    expect(promqlSelectors(expr).map((s) => [s.metric, s.labels])).toEqual(want);
  });

  it('rejects names and labels outside the contract', () => {
    expect(contractProblems('rate(bridgewatch_late_attach_total{bridge="br0"}[5m])')).toEqual([]);
    expect(contractProblems('rate(bridgewatch_late_attaches_total[5m])')).toHaveLength(1);
    expect(contractProblems('bridgewatch_ready{port="tap0"}')).toHaveLength(1);
    expect(contractProblems('up == 0')).toHaveLength(1);
    expect(contractProblems('up == 0', PROMETHEUS_SERIES)).toEqual([]);
  });

  it('names every metric once, with the prefix and a unit or _total where the conventions want one', () => {
    const names = METRIC_CONTRACT.map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    for (const m of METRIC_CONTRACT) {
      expect(m.name).toMatch(/^bridgewatch_[a-z0-9_]+$/);
      expect(m.name.endsWith('_total')).toBe(m.type === 'counter');
      if (m.type === 'histogram') expect(m.name).toMatch(/_seconds$/);
    }
  });
});

describe('alert rules (grafana/alerts.yml)', () => {
  it('pass promtool check rules', (ctx) => {
    if (!PROMTOOL) ctx.skip(NO_PROMTOOL);
    const r = run(PROMTOOL!, ['check', 'rules', 'grafana/alerts.yml']);
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
    // the text-level reading of the rules below finds every rule promtool found
    expect(r.out).toContain(`SUCCESS: ${ruleExprs('grafana/alerts.yml').length} rules found`);
  });

  it('pass their unit tests (promtool test rules grafana/alerts.test.yml)', (ctx) => {
    if (!PROMTOOL) ctx.skip(NO_PROMTOOL);
    const r = run(PROMTOOL!, ['test', 'rules', 'alerts.test.yml'], file('grafana'));
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });

  it('have a unit test where each alert fires and one where it does not', () => {
    const tests = read('grafana/alerts.test.yml');
    const cases = [...tests.matchAll(/alertname: (\S+)\n\s+exp_alerts:( \[\])?/g)].map((m) => ({ name: m[1], fires: !m[2] }));
    expect(alertNames.length).toBeGreaterThanOrEqual(10);
    for (const name of alertNames) {
      expect(cases.some((c) => c.name === name && c.fires), `${name} firing`).toBe(true);
      expect(cases.some((c) => c.name === name && !c.fires), `${name} not firing`).toBe(true);
    }
    for (const c of cases) expect(alertNames, `test of unknown alert ${c.name}`).toContain(c.name);
  });

  it('follow the mixin conventions: Bridgewatch* names, a severity, summary, description and runbook', () => {
    const blocks = read('grafana/alerts.yml').split(/^\s*- alert: /m).slice(1);
    expect(blocks).toHaveLength(alertNames.length);
    for (const b of blocks) {
      const name = b.split('\n')[0];
      expect(name).toMatch(/^Bridgewatch[A-Z][A-Za-z]+$/);
      expect(b, name).toMatch(/\n\s+severity: (critical|warning|info)\n/);
      for (const a of ['summary', 'description', 'runbook']) expect(b, `${name} ${a}`).toMatch(new RegExp(`\\n\\s+${a}: `));
    }
  });

  it('use only contract metrics (and Prometheus\'s up) with labels those metrics have', () => {
    const problems = ruleExprs('grafana/alerts.yml').flatMap((e) => contractProblems(e.expr, PROMETHEUS_SERIES));
    expect(problems).toEqual([]);
  });
});

describe('dashboard (grafana/bridgewatch.json)', () => {
  it('is an importable dashboard with a Prometheus datasource variable', () => {
    expect(dashboard.uid).toBe('bridgewatch');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.schemaVersion).toBeLessThanOrEqual(41);
    expect(dashboard.id).toBeNull();
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ type: 'datasource', pluginId: 'prometheus' }));
    expect(variable('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
  });

  it('has instance and bridge variables from label_values, bridge following instance', () => {
    for (const name of ['instance', 'bridge']) {
      const v = variable(name);
      expect(v, name).toMatchObject({ type: 'query', includeAll: true, multi: true, datasource: { type: 'prometheus', uid: '${datasource}' } });
      expect(variableQuery(v)).toMatch(new RegExp(`^label_values\\(.+, ${name}\\)$`));
    }
    expect(variableQuery(variable('bridge'))).toContain('$instance');
  });

  it('gives every panel the datasource variable and at least one target, in a 24-column grid without overlaps', () => {
    expect(queryPanels.length).toBeGreaterThanOrEqual(15);
    const ids = allPanels().map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of allPanels()) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, `panel ${p.id} width`).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
        expect(cells.has(`${i},${j}`), `panel ${p.id} "${p.title}" overlaps at ${i},${j}`).toBe(false);
        cells.add(`${i},${j}`);
      }
    }
    for (const p of queryPanels) {
      const where = `panel ${p.id} "${p.title}"`;
      expect(p.datasource, where).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, where).toBeGreaterThanOrEqual(1);
      expect(new Set(p.targets.map((t: Json) => t.refId)).size, where).toBe(p.targets.length);
      for (const t of p.targets) {
        expect(t.datasource, where).toEqual(p.datasource);
        expect(t.expr, where).toMatch(/\S/);
      }
    }
  });

  it('filters every query by $instance and takes rate windows from Grafana, never hard-coded', () => {
    for (const { where, expr } of dashboardExprs().filter((e) => !e.where.startsWith('variable'))) {
      expect(expr, where).toContain('instance=~"$instance"');
      expect(expr, where).not.toMatch(/\[\d+[smhdwy]\]/);
    }
    const ranged = dashboardExprs().filter((e) => /\b(rate|increase)\(/.test(e.expr));
    expect(ranged.some((e) => e.expr.includes('[$__rate_interval]'))).toBe(true);
  });

  it('draws the delay and convergence heatmaps from the histogram buckets', () => {
    const heatmaps = queryPanels.filter((p) => p.type === 'heatmap');
    const metrics = heatmaps.flatMap((p) => p.targets.map((t: Json) => promqlSelectors(substitute(t.expr))[0].metric));
    expect(metrics.sort()).toEqual(['bridgewatch_attach_delay_seconds_bucket', 'bridgewatch_convergence_seconds_bucket', 'bridgewatch_first_frame_delay_seconds_bucket']);
    for (const p of heatmaps) {
      expect(p.options.calculate).toBe(false);
      for (const t of p.targets) expect(t).toMatchObject({ format: 'heatmap', legendFormat: '{{le}}' });
      for (const t of p.targets) expect(t.expr).toMatch(/^sum by \(le\) \(/);
    }
  });

  it('shows every contract metric somewhere', () => {
    const used = new Set(dashboardExprs().flatMap((e) => promqlSelectors(substitute(e.expr)).map((s) => s.metric)));
    const missing = METRIC_CONTRACT.filter((m) => ![m.name, `${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`].some((n) => used.has(n)));
    expect(missing.map((m) => m.name)).toEqual([]);
  });

  it('uses only contract metrics, with labels those metrics have', () => {
    const problems = dashboardExprs().flatMap((e) => contractProblems(substitute(e.expr)).map((p) => `${e.where}: ${p}`));
    expect(problems).toEqual([]);
  });
});

describe('PromQL of the dashboard and the rules parses (promtool check rules)', () => {
  it('leaves no Grafana variable unreplaced', () => {
    for (const e of dashboardExprs()) expect(substitute(e.expr), e.where).not.toMatch(/\$/);
  });

  it('rejects a broken expression (the check is not vacuous)', (ctx) => {
    if (!PROMTOOL) ctx.skip(NO_PROMTOOL);
    const r = checkExprsWithPromtool([{ where: 'broken', expr: 'sum by (le) (rate(bridgewatch_ready[$__rate_interval])' }], 'broken');
    expect(r.status).not.toBe(0);
  });

  it('parses every dashboard expression', (ctx) => {
    if (!PROMTOOL) ctx.skip(NO_PROMTOOL);
    const exprs = dashboardExprs();
    const r = checkExprsWithPromtool(exprs, 'dashboard');
    expect(r.out, exprs.map((e, i) => `expr_${i}: ${e.where}`).join('\n')).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('parses every rule expression', (ctx) => {
    if (!PROMTOOL) ctx.skip(NO_PROMTOOL);
    const exprs = ruleExprs('grafana/alerts.yml');
    const r = checkExprsWithPromtool(exprs, 'alerts');
    expect(r.out).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.status).toBe(0);
  });
});

// ---- deployment ------------------------------------------------------------------------------
const scrape = read('deploy/prometheus/scrape.yml');
/** Debian's Prometheus is built without Kubernetes discovery: stand in static pods with its meta labels */
function withoutKubernetesSd(config: string, pods: string): string {
  const out = config.replace(/^(\s+)kubernetes_sd_configs:\n(?:\1 .*\n)+/m, (_m, indent) => `${indent}static_configs:\n${pods.replace(/^/gm, `${indent}  `)}\n`);
  expect(out).not.toContain('kubernetes_sd_configs');
  return out;
}
const PODS = `- targets: ["10.0.0.5"]
  labels: {__meta_kubernetes_pod_annotation_prometheus_io_scrape: "true", __meta_kubernetes_pod_annotation_prometheus_io_port: "9725", __meta_kubernetes_pod_node_name: node-a}
- targets: ["[fd00::7]:8080"]
  labels: {__meta_kubernetes_pod_annotation_prometheus_io_scrape: "true", __meta_kubernetes_pod_annotation_prometheus_io_port: "9725", __meta_kubernetes_pod_node_name: node-b}
- targets: ["10.0.0.6:9725"]
  labels: {__meta_kubernetes_pod_node_name: node-c}`;
const prometheusYml = (scrapeConfigs: string) =>
  `global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files:\n  - ${file('grafana/alerts.yml')}\n${scrapeConfigs}`;

describe('Prometheus scrape config (deploy/prometheus/scrape.yml)', () => {
  it('passes promtool check config inside a full prometheus.yml with the alert rules', (ctx) => {
    if (!PROMTOOL) ctx.skip(NO_PROMTOOL);
    const path = join(work, 'prometheus.yml');
    writeFileSync(path, prometheusYml(scrape));
    let r = run(PROMTOOL!, ['check', 'config', path]);
    if (r.status !== 0 && r.out.includes('field kubernetes_sd_configs not found')) {
      writeFileSync(path, prometheusYml(withoutKubernetesSd(scrape, PODS)));
      r = run(PROMTOOL!, ['check', 'config', path]);
    }
    expect(r.out).toContain('is valid prometheus config file syntax');
    expect(r.status, r.out).toBe(0);
  });

  it('makes instance the node name and job "bridgewatch" in a real Prometheus', async (ctx) => {
    const prometheus = which('prometheus');
    if (!prometheus) ctx.skip('prometheus not found (Debian package prometheus)');
    const port = await freePort();
    const path = join(work, 'relabel.yml');
    writeFileSync(path, prometheusYml(withoutKubernetesSd(scrape, PODS)).replace(/^rule_files:\n.*\n/m, ''));
    const child = spawn(prometheus!, [`--config.file=${path}`, `--storage.tsdb.path=${join(work, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    try {
      let targets: Json;
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 200));
        targets = await fetch(`http://127.0.0.1:${port}/api/v1/targets?state=any`).then((r) => r.json(), () => undefined);
        if (targets?.data?.activeTargets?.length === 4) break;
      }
      const active = targets.data.activeTargets.map((t: Json) => [t.labels.job, t.labels.instance, t.scrapeUrl]).sort();
      expect(active).toEqual([
        ['bridgewatch', 'hv1.example.net', 'http://hv1.example.net:9725/metrics'],
        ['bridgewatch', 'hv2.example.net', 'http://hv2.example.net:9725/metrics'],
        ['bridgewatch', 'node-a', 'http://10.0.0.5:9725/metrics'],
        ['bridgewatch', 'node-b', 'http://[fd00::7]:9725/metrics'],
      ]);
      // the pod without the prometheus.io/scrape annotation is dropped
      expect(targets.data.droppedTargets.map((t: Json) => t.discoveredLabels.__meta_kubernetes_pod_node_name)).toEqual(['node-c']);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    }).on('error', rej);
  });
}

describe('systemd unit (deploy/bridgewatch.service)', () => {
  const unit = read('deploy/bridgewatch.service');
  const active = unit.split('\n').filter((l) => !l.startsWith('#'));

  it('runs the daemon with the capabilities BPF and raw sockets need, and no more', () => {
    const want = [
      // the link `npm install -g --prefix /opt/bridgewatch` makes (test/e2e/package.test.ts runs it so)
      'ExecStart=/usr/bin/node /opt/bridgewatch/bin/bridgewatch run',
      'CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_RESOURCE',
      'AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_NET_RAW CAP_PERFMON CAP_SYS_RESOURCE',
      'ProtectSystem=strict', 'ReadWritePaths=/run/bridgewatch', 'RuntimeDirectory=bridgewatch', 'RuntimeDirectoryPreserve=restart',
      'ProtectHome=yes', 'NoNewPrivileges=yes', 'PrivateTmp=yes',
      'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_PACKET AF_INET AF_INET6',
      'SystemCallArchitectures=native', 'Restart=on-failure', 'EnvironmentFile=-/etc/default/bridgewatch',
    ];
    // identity reads libvirt's status files and lists processes (KubeVirt's launchers): neither hidden
    expect(active.some((l) => /^ProtectProc=(invisible|noaccess|ptraceable)/.test(l))).toBe(false);
    expect(active.some((l) => /^(InaccessiblePaths|TemporaryFileSystem)=.*\/run(\/libvirt)?( |$)/.test(l))).toBe(false);
    for (const l of want) expect(active).toContain(l);
    // V8's JIT needs writable+executable memory
    expect(active.some((l) => l.startsWith('MemoryDenyWriteExecute='))).toBe(false);
    // bpf(2) is outside @system-service: a filter without it would kill the daemon
    const filter = active.find((l) => l.startsWith('SystemCallFilter='));
    expect(filter?.split(/[= ]/)).toContain('bpf');
  });

  it('passes systemd-analyze verify', (ctx) => {
    const analyze = which('systemd-analyze');
    if (!analyze) ctx.skip('systemd-analyze not found (Debian package systemd)');
    // verify checks that ExecStart's binary exists: point it at this machine's node
    const dir = mkdtempSync(join(work, 'unit-'));
    writeFileSync(join(dir, 'bridgewatch.service'), unit.replace('/usr/bin/node ', `${process.execPath} `));
    const r = run(analyze!, ['verify', join(dir, 'bridgewatch.service')], dir);
    // unknown or misspelt directives are only warnings: none may appear
    expect(r.out.split('\n').filter((l) => l.includes('bridgewatch.service'))).toEqual([]);
    expect(r.status, r.out).toBe(0);
  });
});

describe('Kubernetes manifest (deploy/kubernetes/daemonset.yaml)', () => {
  const text = read('deploy/kubernetes/daemonset.yaml');

  it('declares the namespace, service account and a host-network DaemonSet with probes and scrape annotations', () => {
    for (const s of [
      'kind: Namespace', 'kind: ServiceAccount', 'kind: DaemonSet', 'namespace: bridgewatch', 'hostNetwork: true',
      'dnsPolicy: ClusterFirstWithHostNet', 'prometheus.io/scrape: "true"', 'prometheus.io/port: "9725"',
      'path: /readyz', 'path: /healthz', 'port: 9725', 'drop: ["ALL"]', 'add: ["BPF", "NET_ADMIN", "NET_RAW", "PERFMON", "SYS_RESOURCE"]',
      'path: /sys/fs/bpf', 'path: /run/bridgewatch', '- operator: Exists', 'serviceAccountName: bridgewatch',
    ]) expect(text).toContain(s);
    expect(text).not.toMatch(/\t/);
  });

  it('parses as YAML with the expected structure (when python3 has PyYAML)', (ctx) => {
    const r = spawnSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))', file('deploy/kubernetes/daemonset.yaml')], { encoding: 'utf8' });
    if (r.status !== 0) ctx.skip(`python3 with PyYAML not available: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`);
    const docs: Json[] = JSON.parse(r.stdout);
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'ServiceAccount', 'DaemonSet']);
    const ds = docs[2];
    const pod = ds.spec.template.spec;
    expect(ds.spec.template.metadata.labels).toMatchObject(ds.spec.selector.matchLabels);
    expect(pod).toMatchObject({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet', serviceAccountName: 'bridgewatch', tolerations: [{ operator: 'Exists' }] });
    const c = pod.containers[0];
    expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'NET_RAW', 'PERFMON', 'SYS_RESOURCE'] });
    expect(c.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 9725 });
    expect(c.livenessProbe.httpGet).toMatchObject({ path: '/healthz', port: 9725 });
    expect(c.resources.requests).toBeDefined();
    expect(c.resources.limits).toBeDefined();
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Json) => [m.name, m]));
    const volumes = Object.fromEntries(pod.volumes.map((v: Json) => [v.name, v]));
    for (const m of c.volumeMounts) expect(volumes[m.name], m.name).toBeDefined();
    // BTF comes with the container's own /sys: a hostPath for it would keep a kernel without BTF
    // from ever starting the pod (see the manifest), where the daemon falls back to libpcap
    expect(c.volumeMounts.filter((m: Json) => String(m.mountPath).startsWith('/sys/kernel'))).toEqual([]);
    expect(pod.volumes.filter((v: Json) => String(v.hostPath?.path ?? '').startsWith('/sys/kernel'))).toEqual([]);
    expect(volumes.bpffs.hostPath.path).toBe('/sys/fs/bpf');
    // crash-cleanup state on the host, as the unit and the Dockerfile keep it; an emptyDir goes with the pod
    expect(volumes.run).toEqual({ name: 'run', hostPath: { path: '/run/bridgewatch', type: 'DirectoryOrCreate' } });
    expect(mounts.run.mountPath).toBe('/run/bridgewatch');
    // identity: the host's processes (virt-launcher) and libvirt's status files, read only
    expect(pod.hostPID).toBe(true);
    expect(volumes.libvirt.hostPath.path).toBe('/run/libvirt');
    expect(mounts.libvirt).toMatchObject({ mountPath: '/run/libvirt', readOnly: true });
    expect(ds.spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9725' });
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const instructions = text.split('\n').filter((l) => /^[A-Z]+ /.test(l));

  it('builds in node:24-bookworm and runs on node:24-bookworm-slim (an LTS) with only the runtime libraries', () => {
    expect(instructions.filter((l) => l.startsWith('FROM '))).toEqual(['FROM node:24-bookworm AS builder', 'FROM node:24-bookworm-slim']);
    // the package's own floor stays lower than the image's Node
    expect(JSON.parse(read('package.json')).engines).toEqual({ node: '>=20' });
    // the docker run line mounts no /sys/kernel/btf: where it is missing Docker would fail creating it on sysfs
    expect(text).toMatch(/^#\s+-v \/sys\/fs\/bpf:\/sys\/fs\/bpf \\$/m);
    expect(text).not.toMatch(/^#\s+-v \/sys\/kernel\/btf/m);
    expect(text).toContain('npm ci');
    expect(text).toContain('bash bpf/build.sh');
    expect(text).toContain('npx tsc -p tsconfig.json');
    expect(text).toContain('npm prune --omit=dev');
    expect(text).toMatch(/install -y --no-install-recommends libbpf1 libpcap0\.8 iproute2 \\\n\s*&& rm -rf \/var\/lib\/apt\/lists\/\*/);
    expect(instructions).toContain('EXPOSE 9725');
    expect(instructions).toContain('ENTRYPOINT ["node", "/opt/bridgewatch/bin/bridgewatch.js"]');
    expect(instructions).toContain('CMD ["run"]');
    expect(text).toMatch(/HEALTHCHECK .*\\\n\s+CMD node -e .*\/healthz/);
    expect(text).toContain('LABEL org.opencontainers.image.title=');
    // what the runtime stage copies is what bin/bridgewatch.js and src/paths.ts load
    for (const p of ['package.json', 'node_modules/', 'dist/', 'bin/']) expect(text).toContain(`COPY --from=builder /opt/bridgewatch/${p}`);
  });

  it('copies into the build context only what the build needs', () => {
    const ignored = read('.dockerignore').split('\n').filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', 'dist', '.git']) expect(ignored).toContain(p);
    for (const p of ['src', 'bpf', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json']) expect(ignored).not.toContain(p);
  });
});
