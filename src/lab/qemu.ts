// Drive real QEMU processes for the lab and the tests: a diskless TCG guest with one NIC (virtio-net
// or e1000) on a tap in a given network namespace, controlled over QMP on a unix socket. Migration
// runs over a unix socket too: path sockets are not scoped to a network namespace, so a source in
// one namespace and a destination in another reach each other without any IP plumbing.
//
// Without `boot` there is no guest OS: QEMU itself sends the post-migration RARP burst
// (net/announce.c) from the destination. With `boot`, QEMU boots a kernel and initramfs directly
// (the lab's Linux guest, scripts/guest-image.sh). TCG only: nested KVM hangs on these machines.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ANNOUNCE_DEFAULTS, validateAnnounceParameters, type AnnounceParameters } from '../announce/schedule.js';
import { BridgewatchError } from '../errors.js';
import { QmpClient } from './qmp.js';
export { QmpClient, type QmpEvent } from './qmp.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** Absolute path of an executable found in PATH, or null. */
export function findExecutable(name: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

export interface QemuOptions {
  /** For messages: `source`, `destination`, `host-b`… */
  name: string;
  /** Network namespace QEMU runs in (where its tap lives); null for the caller's. */
  netns: string | null;
  /** Tap device name. If it exists (persistent, `ip tuntap add`), QEMU attaches to it as it is;
   *  otherwise QEMU creates it, administratively down, and deletes it on exit. */
  tap: string;
  /** The guest NIC's MAC, e.g. 52:54:00:12:34:56. */
  mac: string;
  /** Path of the QMP unix socket QEMU listens on. */
  qmpSocket: string;
  /** Destination only: `unix:/path` to wait for an incoming migration on. */
  incoming?: string;
  /** Start with the vCPUs stopped (-S). */
  paused?: boolean;
  /** Guest RAM in MiB; 64 by default (a TCG migration of it takes well under a second). */
  memoryMb?: number;
  /** The guest NIC's QEMU device model; virtio-net-pci by default. */
  nic?: QemuNic;
  /** Boot this kernel and initramfs (`-kernel -initrd -append`); a destination needs the same. */
  boot?: KernelBoot;
  /** Write the guest's serial console (ttyS0) to this file. */
  serialLog?: string;
  binary?: string;
  extraArgs?: readonly string[];
  /** How long to wait for QMP to answer; 15 s by default. */
  startTimeoutMs?: number;
}

export type QemuNic = 'virtio-net-pci' | 'e1000';

export interface KernelBoot {
  kernel: string;
  initrd: string;
  append: string;
}

/** QEMU's argv (without the binary) for these options. Pure. */
export function qemuArgs(o: QemuOptions): string[] {
  const args = [
    '-name', o.name,
    '-machine', 'q35,accel=tcg',
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-m', String(o.memoryMb ?? 64),
    '-netdev', `tap,id=n0,ifname=${o.tap},script=no,downscript=no`,
    // romfile= (empty): no iPXE option ROM, so the firmware never PXE-boots and the only frames on
    // the tap are QEMU's own announcements.
    '-device', `${o.nic ?? 'virtio-net-pci'},netdev=n0,mac=${o.mac},romfile=`,
    '-qmp', `unix:${o.qmpSocket},server=on,wait=off`,
  ];
  if (o.boot) args.push('-kernel', o.boot.kernel, '-initrd', o.boot.initrd, '-append', o.boot.append, '-no-reboot');
  if (o.serialLog) args.push('-serial', `file:${o.serialLog}`);
  if (o.paused) args.push('-S');
  if (o.incoming) args.push('-incoming', o.incoming);
  return args.concat(o.extraArgs ?? []);
}

export interface MigrationInfo {
  status: string;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
  [k: string]: unknown;
}

export interface AnnounceSelfOptions extends Partial<AnnounceParameters> {
  /** QEMU NIC (netdev peer) names to limit the announcement to (QEMU >= 4.1). */
  interfaces?: string[];
  /** Named timer, so several announce-self schedules can run at once (QEMU >= 4.1). */
  id?: string;
}

const live = new Set<Qemu>();

/** One QEMU process. Every instance is reaped by stop() (or stopAllQemu()), whatever happened. */
export class Qemu {
  readonly qmp: QmpClient;
  /** Resolves when the process has exited and been reaped. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private stderr = '';

  private constructor(
    readonly options: QemuOptions,
    private readonly child: ChildProcess,
  ) {
    this.qmp = new QmpClient(options.qmpSocket, options.name);
    this.exited = new Promise((resolve) => {
      const done = (code: number | null, signal: NodeJS.Signals | null) => {
        if (this.exitInfo) return;
        this.exitInfo = { code, signal };
        live.delete(this);
        this.qmp.close();
        resolve(this.exitInfo);
      };
      child.once('exit', done);
      // a spawn that failed outright (no pid) never emits 'exit'
      child.once('error', () => child.pid === undefined && done(null, null));
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-4096)));
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  /** How it ended, for messages: `exit code 1`, `signal SIGKILL`, or `running`. */
  get exitText(): string {
    const e = this.exitInfo;
    return !e ? 'running' : e.signal ? `signal ${e.signal}` : `exit code ${e.code}`;
  }

  /** QEMU's stderr so far (last 4 KiB), for messages. */
  get log(): string {
    return this.stderr.trim();
  }

  /**
   * Spawn QEMU (through `ip netns exec` when a namespace is given, which execs in place, so the
   * child pid is QEMU's) and connect QMP. With util-linux setpriv available the process also gets
   * PDEATHSIG=KILL, so it cannot outlive a crashed Node. On any failure the process is killed and
   * reaped before the error is thrown.
   */
  static async start(options: QemuOptions): Promise<Qemu> {
    const binary = options.binary ?? QEMU_BINARY;
    const resolved = binary.includes('/') ? binary : findExecutable(binary);
    if (!resolved) throw new BridgewatchError('ENOTSUP', `start qemu ${options.name}: ${binary} not found in PATH (scripts/setup.sh --with-qemu installs it)`);
    const setpriv = findExecutable('setpriv');
    const argv = [...(setpriv ? [setpriv, '--pdeathsig', 'KILL', '--'] : []), resolved, ...qemuArgs(options)];
    const full = options.netns ? ['ip', 'netns', 'exec', options.netns, ...argv] : argv;
    const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    const q = new Qemu(options, child);
    live.add(q);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    try {
      await q.connectQmp(options.startTimeoutMs ?? 15_000, spawnError);
      return q;
    } catch (e) {
      await q.kill();
      const why = q.log ? `: ${q.log}` : '';
      throw new BridgewatchError('EKERNEL', `start qemu ${options.name}: ${(e as Error).message}${why}`);
    }
  }

  private async connectQmp(timeoutMs: number, spawnError: Promise<Error>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let failure: Error | null = null;
    void spawnError.then((e) => (failure = e));
    for (;;) {
      if (failure) throw failure;
      if (!this.running) throw new Error(`exited (code ${this.exitInfo?.code}, signal ${this.exitInfo?.signal}) before QMP answered`);
      try {
        await this.qmp.connect(Math.max(1000, deadline - Date.now()));
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw e;
      }
      if (Date.now() > deadline) throw new Error(`QMP socket ${this.options.qmpSocket} not answering after ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** `query-status`: running, paused, inmigrate, postmigrate… */
  async status(): Promise<string> {
    return (await this.qmp.execute<{ status: string }>('query-status')).status;
  }

  async waitForStatus(status: string, timeoutMs = 10_000, pollMs = 10): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while ((last = await this.status()) !== status) {
      if (Date.now() > deadline) throw new BridgewatchError('EKERNEL', `qemu ${this.options.name}: status ${last}, not ${status}, after ${timeoutMs} ms`);
      await sleep(pollMs);
    }
  }

  /** QEMU's version as `major.minor.micro` (from the QMP greeting). */
  get version(): string {
    const v = (this.qmp.greeting?.QMP as { version?: { qemu?: { major: number; minor: number; micro: number } } } | undefined)?.version?.qemu;
    return v ? `${v.major}.${v.minor}.${v.micro}` : 'unknown';
  }

  /**
   * Migrate this (source) QEMU to `uri` (`unix:/path`, where the destination was started with
   * `incoming`) and poll `query-migrate` until it completes; throws with QEMU's error-desc if it
   * fails. The destination sends its first RARP as soon as it has loaded the state, which can be
   * before this resolves.
   */
  async migrate(uri: string, timeoutMs = 30_000, pollMs = 10): Promise<MigrationInfo> {
    await this.qmp.execute('migrate', { uri });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.qmp.execute<MigrationInfo>('query-migrate');
      if (info.status === 'completed') return info;
      if (info.status === 'failed' || info.status === 'cancelled')
        throw new BridgewatchError('EKERNEL', `migrate qemu ${this.options.name} to ${uri}: ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
      if (Date.now() > deadline) throw new BridgewatchError('EKERNEL', `migrate qemu ${this.options.name} to ${uri}: still ${info.status} after ${timeoutMs} ms`);
      await sleep(pollMs);
    }
  }

  /** QMP `announce-self` (QEMU >= 4.0): the post-migration burst again, on demand. */
  async announceSelf(o: AnnounceSelfOptions = {}): Promise<void> {
    const { interfaces, id, ...rest } = o;
    const p = validateAnnounceParameters({ ...ANNOUNCE_DEFAULTS, ...rest }, '');
    await this.qmp.execute('announce-self', { ...p, ...(interfaces ? { interfaces } : {}), ...(id !== undefined ? { id } : {}) });
  }

  /** Ask QEMU to quit over QMP; SIGKILL if it is not gone within `timeoutMs`. Always reaps. */
  async stop(timeoutMs = 3000): Promise<void> {
    if (!this.running) return;
    await this.qmp.execute('quit', undefined, timeoutMs).catch(() => undefined);
    const t = sleep(timeoutMs).then(() => 'timeout' as const);
    if ((await Promise.race([this.exited, t])) === 'timeout') await this.kill();
  }

  /** SIGKILL and wait until reaped. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Kill and reap every QEMU this process started and has not stopped yet (afterAll, signals). */
export async function stopAllQemu(): Promise<void> {
  await Promise.all([...live].map((q) => q.kill()));
}
