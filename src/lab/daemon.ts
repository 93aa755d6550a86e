// `bridgewatch run` inside host B's namespace, as the lab's system under test. It runs detached
// (own process group) with its pid in the lab state dir, so a Ctrl-C on the lab does not hit it
// before the lab has read its API, `--keep` can leave it serving, and `--down` can find it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { BridgewatchError } from '../errors.js';
import { PACKAGE_ROOT } from '../paths.js';

export const LAB_DIR = '/run/bridgewatch-lab';
export const DAEMON_PID = join(LAB_DIR, 'bridgewatch.pid');
export const DAEMON_LOG = join(LAB_DIR, 'bridgewatch.log');
export const LISTEN = '127.0.0.1:9725';

const run = promisify(execFile);

/** GET `path` from the daemon in `ns` (curl inside the namespace: the API never leaves it). */
export async function nsGet(ns: string, path: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  const url = `http://${LISTEN}${path}`;
  try {
    const { stdout } = await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-m', String(timeoutMs / 1000), '-w', '\n%{http_code}', url], { timeout: timeoutMs + 1000 });
    const nl = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(nl + 1)) || 0, body: stdout.slice(0, nl) };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof err.code === 'number') return { status: 0, body: '' }; // curl: connection refused, timeout
    throw new BridgewatchError('ENOTSUP', `get ${url} in ${ns}: ${err.stderr?.trim() || String(e)}`);
  }
}

export interface MacView {
  mac: string;
  verdict: string;
  announcements: number;
  framesBeforeForwarding: number;
  attachDelaySeconds: number | null;
  rarpSent: number;
}

interface PortView {
  name: string;
  bridge: string;
  state: string;
  verdict: string;
  macs: MacView[];
}

export class LabDaemon {
  private exited: Promise<number | null> | null = null;
  private child: ChildProcess | null = null;
  private pid = -1;
  private exitCode: number | null | undefined;

  constructor(readonly ns: string) {}

  /** Start and wait until /readyz says ready; on failure the process is gone and the log quoted. */
  async start(readyTimeoutMs = 20_000): Promise<void> {
    mkdirSync(LAB_DIR, { recursive: true });
    const log = openSync(DAEMON_LOG, 'w');
    const bin = join(PACKAGE_ROOT, 'bin', 'bridgewatch.js');
    const args = ['netns', 'exec', this.ns, process.execPath, bin, 'run', '--listen', LISTEN, '--state-dir', join(LAB_DIR, 'state')];
    // `ip netns exec` execs in place: the pid is the daemon's own
    const child = spawn('ip', args, { stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      });
      child.once('error', () => resolve(null));
    });
    this.pid = child.pid ?? -1;
    if (this.pid > 0) writeFileSync(DAEMON_PID, `${this.pid}\n`);
    const deadline = Date.now() + readyTimeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (this.exitCode !== undefined) throw new BridgewatchError('EKERNEL', `start bridgewatch in ${this.ns}: exited with code ${this.exitCode}: ${this.logTail()}`);
      const r = await nsGet(this.ns, '/readyz');
      if (r.status === 200) return;
      if (r.body) last = r.body;
      await sleep(200);
    }
    await this.stop();
    throw new BridgewatchError('EKERNEL', `start bridgewatch in ${this.ns}: not ready after ${readyTimeoutMs / 1000} s${last ? `: ${last}` : ''}; log: ${DAEMON_LOG}`);
  }

  /** The daemon's view of one guest MAC on port `port`, or null if it has none. */
  async macView(port: string, mac: string): Promise<MacView | null> {
    const r = await nsGet(this.ns, '/api/v1/ports');
    if (r.status !== 200) throw new BridgewatchError('EKERNEL', `get /api/v1/ports from bridgewatch: HTTP ${r.status || 'no answer'}`);
    const ports = (JSON.parse(r.body) as { ports: PortView[] }).ports;
    return ports.find((p) => p.name === port)?.macs.find((m) => m.mac === mac) ?? null;
  }

  /** The daemon's latest arrival of `mac` (GET /api/v1/migrations): its state and convergence. */
  async arrival(mac: string): Promise<{ state: string; convergenceSeconds: number | null } | null> {
    const r = await nsGet(this.ns, '/api/v1/migrations?limit=1000');
    if (r.status !== 200) throw new BridgewatchError('EKERNEL', `get /api/v1/migrations from bridgewatch: HTTP ${r.status || 'no answer'}`);
    const all = (JSON.parse(r.body) as { migrations: { mac: string; state: string; convergenceSeconds: number | null }[] }).migrations;
    const m = all.filter((x) => x.mac === mac).at(-1);
    return m ? { state: m.state, convergenceSeconds: m.convergenceSeconds } : null;
  }

  /** Every RARP it sent, for any guest and reason: the sum of bridgewatch_rarp_sent_total. */
  async rarpSentTotal(): Promise<number> {
    const r = await nsGet(this.ns, '/metrics');
    if (r.status !== 200) throw new BridgewatchError('EKERNEL', `get /metrics from bridgewatch: HTTP ${r.status || 'no answer'}`);
    let n = 0;
    for (const m of r.body.matchAll(/^bridgewatch_rarp_sent_total\{[^}]*\} (\S+)$/gm)) n += Number(m[1]);
    return n;
  }

  /** The guest gARP/NA frames it replayed: the sum of bridgewatch_announcements_replayed_total. */
  async replayedTotal(): Promise<number> {
    const r = await nsGet(this.ns, '/metrics');
    if (r.status !== 200) throw new BridgewatchError('EKERNEL', `get /metrics from bridgewatch: HTTP ${r.status || 'no answer'}`);
    let n = 0;
    for (const m of r.body.matchAll(/^bridgewatch_announcements_replayed_total\{[^}]*\} (\S+)$/gm)) n += Number(m[1]);
    return n;
  }

  /** Let it outlive the lab (`--keep`): `bridgewatch lab --down` ends it through the pid file. */
  release(): void {
    this.child?.unref();
    this.exited = null;
  }

  async stop(): Promise<void> {
    if (!this.exited) return;
    await stopPid(this.pid, this.exited);
    this.exited = null;
    rmSync(DAEMON_PID, { force: true });
  }

  logTail(lines = 5): string {
    try {
      return readFileSync(DAEMON_LOG, 'utf8').trim().split('\n').slice(-lines).join('\n') || '(empty log)';
    } catch {
      return '(no log)';
    }
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** SIGTERM (the daemon detaches its programs on the way out), SIGKILL after 6 s. */
async function stopPid(pid: number, exited?: Promise<unknown>): Promise<void> {
  if (pid <= 0 || !alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const gone = exited ?? (async () => {
    while (alive(pid)) await sleep(50);
  })();
  if ((await Promise.race([gone.then(() => 'gone'), sleep(6000).then(() => 'late')])) === 'late') {
    process.kill(pid, 'SIGKILL');
    await gone;
  }
}

/** The pid in the lab's pid file if it is a live lab daemon (a stale file must not kill whatever reused the pid). */
function labDaemonPid(): number | null {
  if (!existsSync(DAEMON_PID)) return null;
  const pid = Number(readFileSync(DAEMON_PID, 'utf8').trim());
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(LAB_DIR) ? pid : null;
  } catch {
    return null; // gone already
  }
}

/** The daemon a kept lab left running, stopped; true if there was one. */
export async function stopKeptDaemon(): Promise<boolean> {
  const pid = labDaemonPid();
  if (pid !== null) await stopPid(pid);
  rmSync(DAEMON_PID, { force: true });
  return pid !== null;
}

/** SIGKILL the lab daemon now, for a lab that must exit at once (a second Ctrl-C). */
export function killDaemonNow(): void {
  const pid = labDaemonPid();
  if (pid !== null) process.kill(pid, 'SIGKILL');
}
