// Which VM a guest port belongs to. The sources (an operator's file, libvirt's status files,
// KubeVirt's launchers) are refreshed on change and on a timer, in the background; of() is a few
// map reads and never waits. Precedence: the file, then libvirt, then KubeVirt; a port's name
// before its MACs, and its network namespace last.
import { readlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { FileSource } from './file.js';
import { nsInode } from './kubevirt-cmdline.js';
import { KubevirtSource } from './kubevirt.js';
import { LibvirtSource } from './libvirt.js';
import type { IdentityLookup, SourceDeps } from './source.js';
import { IDENTITY_SOURCES, type IdentityErrors, type IdentitySource, type VmIdentity } from './types.js';

export type IdentityConfig = Pick<Config, 'libvirtDir' | 'kubevirt' | 'identityFile' | 'identityIntervalMs'>;

export interface IdentityOptions {
  cfg: IdentityConfig;
  log: Logger;
  /** where processes are listed (tests may point elsewhere) */
  procDir?: string;
}

/** a full /proc pass every this many rescans (reused pids, late execs) */
const FULL_SCAN_EVERY = 30;

export class IdentityResolver {
  readonly libvirt: LibvirtSource | undefined;
  readonly kubevirt: KubevirtSource | undefined;
  readonly file: FileSource | undefined;
  private readonly errorCounts: IdentityErrors = { libvirt: 0, kubevirt: 0, file: 0 };
  private readonly log: Logger;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  /** the network namespace bridgewatch watches ports in (its own) */
  private ownNetns: number | undefined;

  constructor(o: IdentityOptions) {
    this.log = o.log.child({ component: 'identity' });
    this.intervalMs = o.cfg.identityIntervalMs;
    const deps = (source: IdentitySource): SourceDeps => ({ log: this.log, error: () => void this.errorCounts[source]++ });
    if (o.cfg.identityFile) this.file = new FileSource(o.cfg.identityFile, deps('file'));
    if (o.cfg.libvirtDir && o.cfg.libvirtDir !== 'off') this.libvirt = new LibvirtSource(o.cfg.libvirtDir, deps('libvirt'));
    if (o.cfg.kubevirt !== 'off') this.kubevirt = new KubevirtSource(deps('kubevirt'), o.procDir);
  }

  /** First reads of every source, then the timer. Throws ECONFIG for a bad --identity-file. */
  async start(): Promise<void> {
    await this.file?.start();
    this.ownNetns = nsInode(await readlink('/proc/thread-self/ns/net').catch(() => '')) ?? undefined;
    await Promise.all([this.libvirt?.rescan(), this.kubevirt?.scan(true)]);
    this.log.info(
      {
        libvirt: this.libvirt ? (this.libvirt.on ? `on (${this.libvirt.dir}, ${this.libvirt.domains} domains)` : `off (no ${this.libvirt.dir}; looked for again every rescan)`) : 'off (--libvirt-dir off)',
        kubevirt: this.kubevirt ? (this.kubevirt.on ? `on (${this.kubevirt.launchers().length} virt-launcher processes)` : 'off (no virt-launcher process; looked for again every rescan)') : 'off (--kubevirt off)',
        file: this.file ? `on (${this.file.path}, ${this.file.entries} VMs)` : 'off',
        rescanMs: this.intervalMs,
      },
      `identity sources: ${this.sources().join(', ') || 'none'}`,
    );
    this.timer = setInterval(() => void this.rescan(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.file?.stop();
    this.libvirt?.stop();
    this.kubevirt?.stop();
  }

  /** The sources that have data now. */
  sources(): IdentitySource[] {
    return IDENTITY_SOURCES.filter((s) => (s === 'file' ? !!this.file : s === 'libvirt' ? !!this.libvirt?.on : !!this.kubevirt?.on));
  }

  /** Errors so far, by source (monotonic). */
  errors(): IdentityErrors {
    return { ...this.errorCounts };
  }

  /**
   * The VM of a guest port, by its name, then its guest MACs, then the network namespace it is
   * in (bridgewatch's own unless told). Map reads only.
   */
  of(port: string, macs: readonly string[] = [], netns = this.ownNetns): VmIdentity | undefined {
    const sources: IdentityLookup[] = [this.file, this.libvirt, this.kubevirt].filter((s) => s !== undefined);
    for (const s of sources) {
      const v = s.byPort?.(port);
      if (v) return v;
    }
    for (const mac of macs) {
      for (const s of sources) {
        const v = s.byMac?.(mac);
        if (v) return v;
      }
    }
    return netns === undefined ? undefined : this.kubevirt?.byNetns(netns);
  }

  /** The timer's work: every source looks again; overlapping runs are skipped by each source. */
  async rescan(): Promise<void> {
    const full = ++this.ticks % FULL_SCAN_EVERY === 0;
    await Promise.all([
      this.file?.refresh(),
      this.libvirt?.rescan(),
      this.kubevirt?.scan(full),
    ]).catch((e) => this.log.error({ err: (e as Error).stack }, 'identity rescan failed'));
  }
}
