// Identity from KubeVirt: virt-launcher processes in /proc (the host's, so the pod needs
// hostPID) name their VMI in their arguments, and the network namespace they live in is the
// VMI pod's: every guest port in that namespace (tap0, ...) is the VMI's. A namespace two VMIs
// claim, or the host's own, maps to none.
//
// /proc is read incrementally: a new pid is read once, and again while young (a container's
// process is `runc init` until it execs the launcher); launchers are re-read every scan; a full
// pass every few scans catches reused pids. Reads are asynchronous: reading a process's cmdline
// takes its mm lock, and a process stuck in the kernel must stall one worker, not the daemon.
import { open, readdir, readFile, readlink } from 'node:fs/promises';
import { nsInode, parseLauncherCmdline, type LauncherArgs } from './kubevirt-cmdline.js';
import { isGone, WarnOnce, type IdentityLookup, type SourceDeps } from './source.js';
import type { VmIdentity } from './types.js';

/** a process is re-read this long after we first saw it */
const YOUNG_MS = 60_000;
const CMDLINE_MAX = 64 << 10;

interface Launcher extends LauncherArgs {
  pid: number;
  netns?: number;
}
interface Proc {
  firstSeenMs: number;
  launcher?: Launcher;
  warned?: boolean;
}

export class KubevirtSource implements IdentityLookup {
  private readonly procs = new Map<number, Proc>();
  private netnsIndex = new Map<number, VmIdentity | null>();
  private readonly once: WarnOnce;
  private scanning = false;
  private stopped = false;
  private found = false;
  private scanned = false;
  /** the host's network namespace (kthreadd's, or init's): a launcher there is nobody's pod */
  private hostNetns: number | undefined;
  /** one read at a time (scan() does not overlap), so one buffer */
  private readonly buf = Buffer.alloc(CMDLINE_MAX);

  constructor(
    private readonly deps: SourceDeps,
    readonly procDir = '/proc',
    private readonly now: () => number = Date.now,
  ) {
    this.once = new WarnOnce(deps.log);
  }

  /** virt-launcher processes seen */
  get on(): boolean {
    return this.launchers().length > 0;
  }

  /** the VMIs found, one entry per launcher process */
  launchers(): Readonly<Launcher>[] {
    return [...this.procs.values()].flatMap((p) => (p.launcher ? [p.launcher] : []));
  }

  byNetns(inode: number): VmIdentity | undefined {
    return this.netnsIndex.get(inode) ?? undefined;
  }

  stop(): void {
    this.stopped = true;
  }

  async scan(full = false): Promise<void> {
    if (this.scanning || this.stopped) return;
    this.scanning = true;
    try {
      this.hostNetns ??= await this.hostNamespace();
      let names: string[];
      try {
        names = await readdir(this.procDir);
      } catch (e) {
        this.deps.error();
        this.once.warn('proc', { dir: this.procDir, err: (e as Error).message }, 'identity: cannot list processes');
        return;
      }
      this.once.clear('proc');
      const now = this.now();
      // processes already there at the first scan are taken as old: their age is unknown, and
      // reading them all again for a minute would cost six full passes
      const bornAt = this.procs.size === 0 && !this.scanned ? -Infinity : now;
      this.scanned = true;
      const seen = new Set<number>();
      for (const name of names) {
        if (!/^\d+$/.test(name)) continue;
        const pid = Number(name);
        seen.add(pid);
        let p = this.procs.get(pid);
        const fresh = !p;
        if (!p) this.procs.set(pid, (p = { firstSeenMs: bornAt }));
        if (fresh || full || p.launcher || now - p.firstSeenMs < YOUNG_MS) await this.inspect(pid, p);
        if (this.stopped) return;
      }
      for (const pid of [...this.procs.keys()]) if (!seen.has(pid)) this.procs.delete(pid);
      this.reindex();
    } finally {
      this.scanning = false;
    }
  }

  /**
   * Kernel threads live in the initial namespaces, and kthreadd (pid 2) can be looked at where
   * init cannot (a non-dumpable pid 1 refuses even root without CAP_SYS_PTRACE).
   */
  private async hostNamespace(): Promise<number> {
    const comm = await readFile(`${this.procDir}/2/comm`, 'utf8').catch(() => '');
    for (const pid of comm.trim() === 'kthreadd' ? [2, 1] : [1]) {
      const ino = nsInode(await readlink(`${this.procDir}/${pid}/ns/net`).catch(() => ''));
      if (ino !== undefined) return ino;
    }
    return 0;
  }

  private async inspect(pid: number, p: Proc): Promise<void> {
    let args: LauncherArgs | undefined;
    try {
      const len = await readHead(`${this.procDir}/${pid}/cmdline`, this.buf);
      args = parseLauncherCmdline(this.buf.subarray(0, len));
    } catch (e) {
      if (isGone(e)) this.procs.delete(pid); // exited while we looked: fine
      else this.unreadable(pid, p, 'cmdline', e);
      return;
    }
    if (!args) {
      p.launcher = undefined;
      return;
    }
    let netns: number | undefined;
    try {
      netns = nsInode(await readlink(`${this.procDir}/${pid}/ns/net`));
    } catch (e) {
      if (isGone(e)) return void this.procs.delete(pid);
      // a launcher run as non-root (KubeVirt's default) needs CAP_SYS_PTRACE to be looked at
      this.unreadable(pid, p, 'ns/net', e);
    }
    if (!this.found) this.deps.log.info({ pid, vmi: args.name, namespace: args.namespace }, 'identity: KubeVirt virt-launcher found');
    this.found = true;
    p.launcher = { ...args, pid, ...(netns !== undefined ? { netns } : {}) };
  }

  private unreadable(pid: number, p: Proc, what: string, e: unknown): void {
    if (p.warned) return;
    p.warned = true;
    this.deps.error();
    this.once.warn(what, { pid, file: `${this.procDir}/${pid}/${what}`, err: (e as Error).message }, `identity: cannot read a process's ${what} (further failures counted, not logged)`);
  }

  private reindex(): void {
    const index = new Map<number, VmIdentity | null>();
    for (const l of this.launchers()) {
      if (l.netns === undefined || l.netns === this.hostNetns) continue;
      const id: VmIdentity = { name: l.name, uuid: l.uid, namespace: l.namespace, source: 'kubevirt' };
      const had = index.get(l.netns);
      // virt-launcher-monitor and its virt-launcher name the same VMI; two VMIs, none
      index.set(l.netns, had === undefined || had?.uuid === l.uid ? id : null);
    }
    this.netnsIndex = index;
  }
}

/** Read the start of a file into buf; returns the length (procfs files report size 0: read to EOF). */
async function readHead(path: string, buf: Buffer): Promise<number> {
  const fh = await open(path, 'r');
  try {
    let len = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, len, buf.length - len, null);
      if (bytesRead === 0 || (len += bytesRead) >= buf.length) return len;
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}
