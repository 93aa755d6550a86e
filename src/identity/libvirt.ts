// Identity from libvirt's live status files (/run/libvirt/qemu/<domain>.xml, one per running
// domain, removed when it stops). libvirt replaces a file by writing <name>.xml.new and renaming
// it, so a reader never sees half a file. Followed with fs.watch (inotify) on the directory, and
// listed again on every rescan as a safety net (a lost inotify event, a directory that appears
// after start or is recreated). A file is read again only when its signature changed.
import { readdir } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { identityOf, parseDomainStatus, type LibvirtDomain } from './libvirt-xml.js';
import { fileSig, readBounded } from './read.js';
import { isGone, WarnOnce, type IdentityLookup, type SourceDeps } from './source.js';
import type { VmIdentity } from './types.js';

/** libvirt's own status files are tens of kB; anything past this is not one */
export const LIBVIRT_MAX_BYTES = 1 << 20;
/** inotify events of one rename come in a burst: read once after it */
const SETTLE_MS = 15;

interface FileState {
  sig: string;
  dom?: LibvirtDomain;
  order: number;
}

export class LibvirtSource implements IdentityLookup {
  private readonly files = new Map<string, FileState>();
  private byDevIndex = new Map<string, VmIdentity>();
  private byMacIndex = new Map<string, VmIdentity>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inflight = new Set<string>();
  private readonly again = new Set<string>();
  private readonly once: WarnOnce;
  private watcher: FSWatcher | undefined;
  private present = false;
  private stopped = false;
  private loads = 0;
  private scans = 0;

  constructor(
    readonly dir: string,
    private readonly deps: SourceDeps,
    private readonly maxBytes = LIBVIRT_MAX_BYTES,
  ) {
    this.once = new WarnOnce(deps.log);
  }

  /** the directory exists (libvirt runs, or ran, on this host) */
  get on(): boolean {
    return this.present;
  }

  /** domains known now */
  get domains(): number {
    let n = 0;
    for (const f of this.files.values()) if (f.dom) n++;
    return n;
  }

  byPort(port: string): VmIdentity | undefined {
    return this.byDevIndex.get(port);
  }

  byMac(mac: string): VmIdentity | undefined {
    return this.byMacIndex.get(mac);
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = undefined;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /** List the directory: read new and changed files, forget removed ones. */
  async rescan(): Promise<void> {
    if (this.stopped) return;
    const first = this.scans++ === 0;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (isGone(e)) {
        if (this.present) this.deps.log.info({ dir: this.dir }, 'identity: libvirt status directory gone');
        this.present = false;
        this.watcher?.close();
        this.watcher = undefined;
        for (const name of [...this.files.keys()]) this.drop(name);
        return;
      }
      this.deps.error();
      this.once.warn('dir', { dir: this.dir, err: (e as Error).message }, 'identity: cannot list the libvirt status directory');
      return;
    }
    this.once.clear('dir');
    if (!this.present && !first) this.deps.log.info({ dir: this.dir }, 'identity: libvirt status directory appeared');
    this.present = true;
    this.ensureWatch();
    const xml = new Set(names.filter((n) => n.endsWith('.xml')));
    for (const name of [...this.files.keys()]) if (!xml.has(name)) this.drop(name);
    for (const name of xml) await this.refresh(name, true);
  }

  private ensureWatch(): void {
    if (this.watcher || this.stopped) return;
    try {
      const w = watch(this.dir, { persistent: false }, (_ev, f) => this.changed(f?.toString()));
      w.on('error', () => {
        // the directory was removed or the watch failed: the next rescan sets it up again
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
      this.once.clear('watch');
    } catch (e) {
      this.once.warn('watch', { dir: this.dir, err: (e as Error).message }, 'identity: cannot watch the libvirt status directory; rescanning on the timer only');
    }
  }

  private changed(name: string | undefined): void {
    if (this.stopped) return;
    const key = name ?? '';
    // <name>.xml.new is renamed to <name>.xml: that rename is the event worth reading on
    if (name && !name.endsWith('.xml')) return;
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        void (name ? this.refresh(name, false) : this.rescan());
      }, SETTLE_MS).unref(),
    );
  }

  /** Read one file again; one read per file at a time, the latest change read last. */
  private async refresh(name: string, listed: boolean): Promise<void> {
    if (this.inflight.has(name)) {
      this.again.add(name);
      return;
    }
    this.inflight.add(name);
    try {
      await this.load(name, listed);
    } catch (e) {
      this.deps.error();
      this.once.warn(name, { file: join(this.dir, name), err: (e as Error).message }, 'identity: libvirt status file not read');
    } finally {
      this.inflight.delete(name);
      if (this.again.delete(name) && !this.stopped) await this.refresh(name, false);
    }
  }

  private async load(name: string, listed: boolean): Promise<void> {
    const path = join(this.dir, name);
    const sig = await fileSig(path);
    if (sig === null) return this.vanished(name, listed);
    if (this.files.get(name)?.sig === sig) return;
    const r = await readBounded(path, this.maxBytes);
    if (this.stopped) return;
    if (!r.ok) {
      if (r.reason === 'gone') return this.vanished(name, listed);
      if (r.reason === 'changed') return this.changed(name);
      return this.bad(name, r.sig ?? sig, r.message);
    }
    let dom: LibvirtDomain;
    try {
      dom = parseDomainStatus(r.text);
    } catch (e) {
      return this.bad(name, r.sig, (e as Error).message);
    }
    this.once.clear(name);
    this.files.set(name, { sig: r.sig, dom, order: ++this.loads });
    this.reindex();
  }

  /** Removed between the listing and the read (counted), or removed as the watch said (not). */
  private vanished(name: string, listed: boolean): void {
    if (listed) this.deps.error();
    this.drop(name);
  }

  private bad(name: string, sig: string, err: string): void {
    this.deps.error();
    this.once.warn(name, { file: join(this.dir, name), err }, 'identity: libvirt status file not used');
    this.files.set(name, { sig, order: ++this.loads });
    this.reindex();
  }

  private drop(name: string): void {
    if (!this.files.delete(name)) return;
    this.once.clear(name);
    this.reindex();
  }

  /** Port and MAC maps from every file; the most recently read file wins a clash. */
  private reindex(): void {
    const byDev = new Map<string, VmIdentity>();
    const byMac = new Map<string, VmIdentity>();
    const files = [...this.files.values()].filter((f) => f.dom).sort((a, b) => a.order - b.order);
    for (const { dom } of files) {
      for (const ifc of dom!.interfaces) {
        const id = identityOf(dom!, ifc);
        if (ifc.dev) byDev.set(ifc.dev, id);
        if (ifc.mac) byMac.set(ifc.mac, id);
      }
    }
    this.byDevIndex = byDev;
    this.byMacIndex = byMac;
  }
}
