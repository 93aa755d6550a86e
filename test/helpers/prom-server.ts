// Debian's `prometheus` as a real child process inside a test namespace (`ip netns exec`, so it
// listens on that namespace's loopback only), and its HTTP API read from inside the same
// namespace with curl: nothing is exposed to the root namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpIn, type Exit } from './daemon-process.js';
import type { TestNetns } from './netns.js';

type Json = any;

export interface PromOptions {
  /** a directory of the test's own: prometheus.yml and the TSDB go there */
  dir: string;
  /** host:port of the targets, all in job `job` */
  targets: string[];
  job?: string;
  /** absolute paths of rule files */
  ruleFiles?: string[];
  /** scrape and evaluation interval */
  interval?: string;
  port?: number;
  readyMs?: number;
}

/** A vector or matrix element of a query result. */
export interface PromSeries {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}

export interface PromReply {
  /** HTTP status */
  status: number;
  json: Json;
  body: string;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt: string;
  value: string;
}

const live = new Set<PrometheusProcess>();
const LOG_MAX = 256 << 10;

export function prometheusConfig(o: PromOptions): string {
  const interval = o.interval ?? '1s';
  const rules = (o.ruleFiles ?? []).map((f) => `  - ${JSON.stringify(f)}\n`).join('');
  return [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(rules ? ['rule_files:', rules.trimEnd()] : []),
    'scrape_configs:',
    `  - job_name: ${o.job ?? 'bridgewatch'}`,
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: [${o.targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n');
}

export class PrometheusProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  /** its log (stderr), the last LOG_MAX characters */
  log = '';
  private exit: Exit | undefined;

  private constructor(
    readonly ns: TestNetns,
    readonly o: PromOptions,
  ) {
    const port = o.port ?? 9090;
    this.url = `http://127.0.0.1:${port}`;
    const config = join(o.dir, 'prometheus.yml');
    const data = join(o.dir, 'data');
    mkdirSync(data, { recursive: true });
    writeFileSync(config, prometheusConfig(o));
    // ip netns exec execs prometheus: the child's pid is Prometheus's own
    this.child = spawn(
      'ip',
      [
        'netns', 'exec', ns.name, 'prometheus',
        `--config.file=${config}`,
        `--storage.tsdb.path=${data}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--web.enable-lifecycle',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: string) => {
      this.log = (this.log + d).slice(-LOG_MAX);
    };
    this.child.stdout!.setEncoding('utf8').on('data', keep);
    this.child.stderr!.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        resolve(this.exit);
      }),
    );
    live.add(this);
  }

  /** Start Prometheus in ns and wait until /-/ready says so. */
  static async start(ns: TestNetns, o: PromOptions): Promise<PrometheusProcess> {
    const p = new PrometheusProcess(ns, o);
    const end = Date.now() + (o.readyMs ?? 20_000);
    let last = '';
    while (Date.now() < end) {
      if (!p.running) throw new Error(`prometheus exited ${JSON.stringify(p.exit)} before ready:\n${p.log}`);
      try {
        const r = await httpIn(ns, 'GET', `${p.url}/-/ready`);
        if (r.status === 200) return p;
        last = `${r.status} ${r.body}`;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`prometheus not ready (last: ${last}):\n${p.log}`);
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** GET an API path with query parameters; the reply as Prometheus gave it. */
  async get(path: string, params: Record<string, string | number | string[]> = {}): Promise<PromReply> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
    const qs = q.toString();
    const r = await httpIn(this.ns, 'GET', `${this.url}${path}${qs ? `?${qs}` : ''}`);
    return { status: r.status, json: r.json, body: r.body };
  }

  /** An instant query (at `time`, unix seconds, or now). */
  query(expr: string, time?: number): Promise<PromReply> {
    return this.get('/api/v1/query', { query: expr, ...(time !== undefined && { time: time.toFixed(3) }) });
  }

  /** A range query, as a Grafana panel runs it. */
  queryRange(expr: string, start: number, end: number, step: string): Promise<PromReply> {
    return this.get('/api/v1/query_range', { query: expr, start: start.toFixed(3), end: end.toFixed(3), step });
  }

  /** The result of a successful query, or throw with what Prometheus said. */
  async result(expr: string, time?: number): Promise<PromSeries[]> {
    const r = await this.query(expr, time);
    if (r.status !== 200 || r.json?.status !== 'success') throw new Error(`query ${expr}: HTTP ${r.status} ${r.body}`);
    return r.json.data.result as PromSeries[];
  }

  /** Active (pending and firing) alerts. */
  async alerts(): Promise<PromAlert[]> {
    const r = await this.get('/api/v1/alerts');
    if (r.status !== 200 || r.json?.status !== 'success') throw new Error(`GET /api/v1/alerts: HTTP ${r.status} ${r.body}`);
    return r.json.data.alerts as PromAlert[];
  }

  /** SIGTERM (then SIGKILL after waitMs) and wait for the exit. */
  async stop(waitMs = 10_000): Promise<Exit> {
    if (!this.running) return this.exit!;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), waitMs);
    const exit = await this.exited;
    clearTimeout(t);
    return exit;
  }
}

/** Stop every Prometheus still running (afterAll, also after a failure). */
export async function stopAllPrometheus(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}
