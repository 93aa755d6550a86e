// `bridgewatch run` as a real child process inside a test namespace (`ip netns exec`, so the
// whole process lives there), reached over HTTP from inside the same namespace with curl; plus
// the independent views of what it left on ports (BPF_PROG_QUERY for tcx, `tc` for clsact).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { BPF_TCX_INGRESS, libbpf, NativeMem, progQueryCount, progQueryOpts } from '../../src/bpf/libbpf.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { c } from '../../src/sys/libc.js';
import { parseExposition, type Sample } from './daemon-metrics.js';
import type { TestNetns } from './netns.js';
import { bpfFilters, hasClsact } from './tc.js';

export const BIN = join(PACKAGE_ROOT, 'bin/bridgewatch.js');
const CLI = join(PACKAGE_ROOT, 'dist/src/cli.js');

/** Why the built CLI cannot run, or '' (the e2e tests run what scripts/setup.sh built). */
export function cliMissing(): string {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, BPF)';
  if (!existsSync(CLI)) return `${CLI} missing: run bash scripts/setup.sh`;
  return '';
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface HttpReply {
  status: number;
  body: string;
  json: any;
}

function run(file: string, args: string[], timeoutMs = 20_000, env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, env: env ?? process.env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** `node bin/bridgewatch.js <args>` inside ns, to completion. */
export function cli(ns: TestNetns, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000) {
  return run('ip', ['netns', 'exec', ns.name, process.execPath, BIN, ...args], timeoutMs, { ...process.env, ...env });
}

/** An HTTP request from inside ns. */
export async function httpIn(ns: TestNetns, method: string, url: string, o: { body?: string; headers?: Record<string, string> } = {}): Promise<HttpReply> {
  const args = ['netns', 'exec', ns.name, 'curl', '-sS', '-m', '10', '-X', method, '-w', '\n%{http_code}'];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
  if (o.body !== undefined) args.push('--data-binary', o.body);
  args.push(url);
  const r = await run('ip', args);
  if (r.code !== 0) throw new Error(`curl ${method} ${url} in ${ns.name}: exit ${r.code}: ${r.stderr.trim()}`);
  const cut = r.stdout.lastIndexOf('\n');
  const body = r.stdout.slice(0, cut);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(r.stdout.slice(cut + 1)), body, json };
}

const live = new Set<DaemonProcess>();

export class DaemonProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stdout = '';
  stderr = '';
  private exit: Exit | undefined;

  private constructor(
    readonly ns: TestNetns,
    readonly args: string[],
    env: NodeJS.ProcessEnv,
    port: number,
    prefix: string[] = [],
  ) {
    this.url = `http://127.0.0.1:${port}`;
    // ip netns exec execs node (through prefix, e.g. setpriv, which execs too): the child's pid
    // is the daemon's, so signals reach it directly
    this.child = spawn('ip', ['netns', 'exec', ns.name, ...prefix, process.execPath, BIN, 'run', '--listen', `127.0.0.1:${port}`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        resolve(this.exit);
      }),
    );
    live.add(this);
  }

  /** Start `bridgewatch run` in ns and wait until /readyz says ready. */
  static async start(ns: TestNetns, args: string[], o: { env?: NodeJS.ProcessEnv; port?: number; readyMs?: number; prefix?: string[] } = {}): Promise<DaemonProcess> {
    const d = new DaemonProcess(ns, args, o.env ?? {}, o.port ?? 9725, o.prefix);
    await d.waitReady(o.readyMs ?? 15_000);
    return d;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  async waitReady(ms: number): Promise<void> {
    const end = Date.now() + ms;
    let last = '';
    while (Date.now() < end) {
      if (!this.running) throw new Error(`bridgewatch exited ${JSON.stringify(this.exit)} before ready:\n${this.stderr}\n${this.stdout}`);
      try {
        const r = await this.get('/readyz');
        if (r.status === 200) return;
        last = `${r.status} ${r.body}`;
      } catch (e) {
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`bridgewatch not ready after ${ms} ms (last: ${last}):\n${this.stderr}\n${this.stdout}`);
  }

  get(path: string): Promise<HttpReply> {
    return httpIn(this.ns, 'GET', this.url + path);
  }

  post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpReply> {
    return httpIn(this.ns, 'POST', this.url + path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
  }

  async metricsText(): Promise<string> {
    const r = await this.get('/metrics');
    if (r.status !== 200) throw new Error(`GET /metrics: ${r.status} ${r.body}`);
    return r.body;
  }

  async metrics(): Promise<Sample[]> {
    return parseExposition(await this.metricsText());
  }

  /** The daemon's JSON log lines. */
  logs(): Record<string, unknown>[] {
    return this.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Send `signal` and wait for the exit; ms is how long the exit took. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', waitMs = 10_000): Promise<Exit & { ms: number }> {
    const t0 = Date.now();
    if (this.running) this.child.kill(signal);
    const timer = new Promise<never>((_, reject) => {
      const t = setTimeout(() => reject(new Error(`bridgewatch did not exit ${waitMs} ms after ${signal}`)), waitMs);
      void this.exited.then(() => clearTimeout(t));
    });
    const exit = await Promise.race([this.exited, timer]);
    return { ...exit, ms: Date.now() - t0 };
  }
}

/** SIGKILL every daemon still running (afterAll, also after a failure). */
export async function killAllDaemons(): Promise<void> {
  await Promise.all(
    [...live].map(async (d) => {
      d.child.kill('SIGKILL');
      await d.exited;
    }),
  );
}

/** Programs on dev's ingress counted by the kernel: tcx (BPF_PROG_QUERY), clsact BPF filters. */
const progInfo = (() => {
  const l = koffi.load('libbpf.so.1');
  return {
    fdById: l.func('int bpf_prog_get_fd_by_id(uint32_t id)'),
    info: l.func('int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *len)'),
  };
})();

/** Names of the tcx programs on dev's ingress (struct bpf_prog_info: name[16] at offset 64). */
export function tcxProgramNames(ns: TestNetns, dev: string): string[] {
  return ns.run(() => {
    const ifindex = c.if_nametoindex(dev) as number;
    if (!ifindex) throw new Error(`programs on ${dev} in ${ns.name}: no such device`);
    const ids = new NativeMem(4 * 64);
    try {
      const q = progQueryOpts();
      q.writeBigUInt64LE(ids.addr, 16);
      q.writeUInt32LE(64, 24);
      if ((libbpf().prog_query_opts(ifindex, BPF_TCX_INGRESS, q) as number) < 0) return [];
      const names: string[] = [];
      for (let i = 0; i < progQueryCount(q); i++) {
        const fd = progInfo.fdById(ids.buf.readUInt32LE(4 * i)) as number;
        if (fd < 0) continue; // unloaded meanwhile
        const info = Buffer.alloc(232);
        const len = [232];
        const rc = progInfo.info(fd, info, len) as number;
        c.close(fd);
        if (rc === 0) names.push(info.subarray(64, 80).toString('latin1').replace(/\0.*$/s, ''));
      }
      return names;
    } finally {
      ids.free();
    }
  });
}

/**
 * bridgewatch's guest-port program on dev's ingress: tcx links and clsact filters of tc_ingress
 * (the convergence programs of an uplink are uplinkProgramsOn's).
 */
export function programsOn(ns: TestNetns, dev: string): { tcx: number; tc: number; clsact: boolean } {
  const tcx = tcxProgramNames(ns, dev).filter((n) => n === 'tc_ingress').length;
  return { tcx, tc: bpfFilters(ns, dev).filter((f) => f.progName === 'tc_ingress').length, clsact: hasClsact(ns, dev) };
}

/** The convergence program on an uplink's ingress: tcx links and clsact filters of tc_uplink_in. */
export function uplinkProgramsOn(ns: TestNetns, dev: string): { tcx: number; tc: number } {
  return {
    tcx: tcxProgramNames(ns, dev).filter((n) => n === 'tc_uplink_in').length,
    tc: bpfFilters(ns, dev).filter((f) => f.progName === 'tc_uplink_in').length,
  };
}

/** Poll an async condition every 50 ms until it holds; throws with `what` and the last value. */
export async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000, pollMs = 50): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  let err: unknown;
  for (;;) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (e) {
      err = e;
    }
    if (Date.now() > end) throw new Error(`wait for ${what}: timed out after ${ms} ms; last: ${err ? String(err) : JSON.stringify(last)?.slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
