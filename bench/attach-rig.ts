// The moving parts of bench/attach.ts: a netns of our own, the real daemon in it
// (`node bin/bridgewatch.js run`), the tap-making process (tap-burst.js), HTTP from inside the
// netns (this process's main thread enters it, so its sockets live there), and the kernel's
// view of what is attached.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { Agent, get as httpGet } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BPF_TCX_INGRESS, libbpf, progQueryCount, progQueryOpts } from '../src/bpf/libbpf.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { c } from '../src/sys/libc.js';
import { addNetns, delNetns, enterNetns, inNetns, ip } from '../src/sys/netns.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { maxBuffer: 256 << 20 }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout))),
  );
}

export class Netns {
  readonly name: string;
  private leave: (() => void) | undefined;
  // a scraper keeps its connection, as Prometheus does
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });

  /** Create the netns and move this process's main thread into it (until close()). */
  constructor(tag = 'attach') {
    this.name = `bwbench-${tag}-${process.pid}`;
    delNetns(this.name);
    addNetns(this.name);
    this.leave = enterNetns(this.name);
  }
  /** `ip -n <this netns> ...` */
  ip(...args: string[]): string {
    return ip(this.name, ...args);
  }

  close(): void {
    this.agent.destroy();
    this.leave?.();
    this.leave = undefined;
    delNetns(this.name);
  }

  /** GET from inside the netns; ms is request sent to last byte received. */
  get(url: string, timeoutMs = 20_000): Promise<{ status: number; body: string; ms: number }> {
    return new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = httpGet(url, { agent: this.agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: Number(process.hrtime.bigint() - t0) / 1e6 }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
    });
  }

  /** An `ip monitor link` listening in the netns; resolves, once it listens, to its stop. */
  async monitor(): Promise<() => Promise<void>> {
    const p = spawn('ip', ['-n', this.name, 'monitor', 'link'], { stdio: ['ignore', 'ignore', 'ignore'] });
    await sleep(200);
    return async () => {
      p.kill();
      await new Promise((r) => p.once('exit', r));
    };
  }

  /** Devices whose names start with prefix that still carry a program of ours (tcx link or clsact). */
  async programsLeft(prefix: string): Promise<{ tcx: number; clsact: number }> {
    const qdiscs = await run('tc', ['-n', this.name, '-j', 'qdisc', 'show']);
    const clsact = (JSON.parse(qdiscs || '[]') as { kind: string; dev: string }[]).filter((q) => q.kind === 'clsact' && q.dev.startsWith(prefix)).length;
    const links = JSON.parse(await run('ip', ['-n', this.name, '-j', 'link', 'show'])) as { ifindex: number; ifname: string }[];
    const tcx = inNetns(this.name, () =>
      links
        .filter((l) => l.ifname.startsWith(prefix))
        .reduce((n, l) => {
          const q = progQueryOpts();
          return n + ((libbpf().prog_query_opts(l.ifindex, BPF_TCX_INGRESS, q) as number) < 0 ? 0 : progQueryCount(q));
        }, 0),
    );
    return { tcx, clsact };
  }
}

/** One numeric sample of an exposition (no labels, or the first series). */
export function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

export class Daemon {
  readonly url: string;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  private readonly child: ChildProcess;
  private tail = '';

  constructor(
    readonly ns: Netns,
    args: string[],
    env: NodeJS.ProcessEnv = {},
    port = 19725,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    const state = mkdtempSync(join(tmpdir(), 'bw-bench-state-'));
    const bin = join(PACKAGE_ROOT, 'bin/bridgewatch.js');
    // ip netns exec execs node: the child's pid is the daemon's (signals, /proc/<pid>/status)
    this.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, bin, 'run', '--listen', `127.0.0.1:${port}`, '--state-dir', state, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    // drained like journald would; the tail explains a failure
    const keep = (d: Buffer) => (this.tail = (this.tail + d.toString()).slice(-4000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        rmSync(state, { recursive: true, force: true });
        resolve({ code, signal });
      }),
    );
  }

  static async start(ns: Netns, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
    const d = new Daemon(ns, args, env);
    const end = Date.now() + 20_000;
    let exited = false;
    void d.exited.then(() => (exited = true));
    while (Date.now() < end && !exited) {
      const r = await ns.get(`${d.url}/readyz`).catch(() => undefined);
      if (r?.status === 200) return d;
      await sleep(50);
    }
    d.kill();
    throw new Error(`bridgewatch not ready: ${d.tail}`);
  }

  get pid(): number {
    return this.child.pid!;
  }

  async metrics(): Promise<{ text: string; ms: number }> {
    const r = await this.ns.get(`${this.url}/metrics`);
    if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}: ${r.body.slice(0, 200)}`);
    return { text: r.body, ms: r.ms };
  }

  async gauge(name: string): Promise<number> {
    return metric((await this.metrics()).text, `bridgewatch_${name}`) ?? NaN;
  }

  /** Poll a gauge every intervalMs until ok; resolves with the ms since `since` (CLOCK_MONOTONIC ns). */
  async until(name: string, ok: (v: number) => boolean, since: bigint, o: { intervalMs?: number; timeoutMs?: number } = {}): Promise<number> {
    const end = Date.now() + (o.timeoutMs ?? 60_000);
    for (;;) {
      const v = await this.gauge(name);
      if (ok(v)) return Number(process.hrtime.bigint() - since) / 1e6;
      if (Date.now() > end) throw new Error(`wait for ${name}: still ${v} after ${o.timeoutMs ?? 60_000} ms`);
      await sleep(o.intervalMs ?? 100);
    }
  }

  /**
   * ms from `since` until the daemon has attached n programs, polling cheaply: a port enters the
   * tracker just after its attach, and ports are handled in order, so the last one's API entry
   * comes first (every intervalMs); then /metrics confirms the count.
   */
  async untilAttached(lastPort: string, n: number, since: bigint, intervalMs = 10): Promise<number> {
    const end = Date.now() + 60_000;
    while ((await this.ns.get(`${this.url}/api/v1/ports/${lastPort}`)).status !== 200) {
      if (Date.now() > end) throw new Error(`wait for ${lastPort}: not watched after 60 s`);
      await sleep(intervalMs);
    }
    const ms = Number(process.hrtime.bigint() - since) / 1e6;
    await this.until('bpf_programs_attached', (v) => v >= n, since);
    return ms;
  }

  rssMb(): number {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) / 1024 : NaN;
  }

  /** SIGTERM; resolves with ms from the signal to the exit. */
  async stop(): Promise<{ ms: number; code: number | null; tail: string }> {
    const t0 = process.hrtime.bigint();
    this.child.kill('SIGTERM');
    const timeout = setTimeout(() => this.kill(), 20_000);
    const e = await this.exited;
    clearTimeout(timeout);
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, code: e.code, tail: e.code === 0 ? '' : this.tail };
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** The tap-making process (bench/tap-burst.ts), one JSON command at a time. */
export class TapBurst {
  private readonly child: ChildProcess;
  private readonly replies: ((line: string) => void)[] = [];

  constructor(ns: Netns) {
    this.child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, join(PACKAGE_ROOT, 'dist/bench/tap-burst.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => this.replies.shift()?.(l));
  }

  private ask<T>(cmd: object): Promise<T> {
    return new Promise((resolve, reject) => {
      this.replies.push((line) => {
        const r = JSON.parse(line) as T & { error?: string };
        if (r.error) reject(new Error(`tap-burst: ${r.error}`));
        else resolve(r);
      });
      this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    });
  }

  async create(n: number, prefix: string): Promise<{ startNs: bigint; ms: number }> {
    const r = await this.ask<{ startNs: string; ms: number }>({ cmd: 'create', n, prefix });
    return { startNs: BigInt(r.startNs), ms: r.ms };
  }
  frames(macsPerTap: number): Promise<{ frames: number }> {
    return this.ask({ cmd: 'frames', macsPerTap });
  }
  close(): Promise<{ ms: number }> {
    return this.ask({ cmd: 'close' });
  }
  end(): void {
    this.child.stdin!.end();
  }
}

/** ifindexes of netns devices named prefix* (for in-process attach measurements). */
export function ifindexes(ns: Netns, names: string[]): number[] {
  return inNetns(ns.name, () => names.map((n) => c.if_nametoindex(n) as number));
}
