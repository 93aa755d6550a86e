// Identity from a file the operator keeps (--identity-file): a JSON array of
//   {"port": "tap3", "vm": "web-7", "vm_uuid": "...", "vm_namespace": "shop"}
// with "mac" instead of (or besides) "port". It wins over libvirt and KubeVirt for the ports and
// MACs it names. Invalid at start: bridgewatch does not start (exit 2, the entry named). Invalid
// later: counted, logged once, and the last valid mapping stays. Re-read when it changes
// (fs.watch on its directory, which also sees a Kubernetes ConfigMap's symlink swap) and when
// its signature changed at a rescan.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { BridgewatchError } from '../errors.js';
import { fileSig, readBounded } from './read.js';
import { WarnOnce, type IdentityLookup, type SourceDeps } from './source.js';
import { clip, normalMac, PORT_RE, type VmIdentity } from './types.js';

export const IDENTITY_FILE_MAX_BYTES = 8 << 20;
const KEYS = new Set(['port', 'mac', 'vm', 'vm_uuid', 'vm_namespace']);

export interface FileMapping {
  byPort: Map<string, VmIdentity>;
  byMac: Map<string, VmIdentity>;
}

/** Validate the file's content; throws an Error naming the entry and field. */
export function parseIdentityFile(text: string): FileMapping {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(data)) throw new Error('expected a JSON array of {port or mac, vm, vm_uuid, vm_namespace}');
  const out: FileMapping = { byPort: new Map(), byMac: new Map() };
  data.forEach((e: unknown, i) => {
    const at = `entry ${i}`;
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw new Error(`${at}: expected an object`);
    const o = e as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new Error(`${at}: unknown key ${JSON.stringify(k)} (allowed: ${[...KEYS].join(', ')})`);
    for (const k of KEYS) if (o[k] !== undefined && typeof o[k] !== 'string') throw new Error(`${at}: ${k} must be a string`);
    const s = o as Partial<Record<'port' | 'mac' | 'vm' | 'vm_uuid' | 'vm_namespace', string>>;
    if (!s.vm?.trim()) throw new Error(`${at}: vm is required`);
    if (s.port === undefined && s.mac === undefined) throw new Error(`${at}: needs port or mac`);
    if (s.port !== undefined && !PORT_RE.test(s.port)) throw new Error(`${at}: port ${JSON.stringify(s.port)} is not an interface name`);
    const mac = normalMac(s.mac);
    if (s.mac !== undefined && !mac) throw new Error(`${at}: mac ${JSON.stringify(s.mac)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    const id: VmIdentity = { name: clip(s.vm.trim()), uuid: clip(s.vm_uuid ?? ''), namespace: clip(s.vm_namespace ?? ''), source: 'file', ...(mac ? { mac } : {}) };
    if (s.port !== undefined) {
      if (out.byPort.has(s.port)) throw new Error(`${at}: port ${s.port} is already mapped`);
      out.byPort.set(s.port, id);
    }
    if (mac) {
      if (out.byMac.has(mac)) throw new Error(`${at}: mac ${mac} is already mapped`);
      out.byMac.set(mac, id);
    }
  });
  return out;
}

export class FileSource implements IdentityLookup {
  private map: FileMapping = { byPort: new Map(), byMac: new Map() };
  private sig: string | null | undefined;
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly once: WarnOnce;
  private loading = false;
  private stopped = false;

  constructor(
    readonly path: string,
    private readonly deps: SourceDeps,
  ) {
    this.once = new WarnOnce(deps.log);
  }

  get entries(): number {
    return new Set([...this.map.byPort.values(), ...this.map.byMac.values()]).size;
  }

  byPort(port: string): VmIdentity | undefined {
    return this.map.byPort.get(port);
  }

  byMac(mac: string): VmIdentity | undefined {
    return this.map.byMac.get(mac);
  }

  /** The first read: anything wrong is a configuration error. */
  async start(): Promise<void> {
    const r = await readBounded(this.path, IDENTITY_FILE_MAX_BYTES);
    if (!r.ok) throw new BridgewatchError('ECONFIG', `config identity-file: ${r.message}`);
    try {
      this.map = parseIdentityFile(r.text);
    } catch (e) {
      throw new BridgewatchError('ECONFIG', `config identity-file: ${this.path}: ${(e as Error).message}`);
    }
    this.sig = r.sig;
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, () => this.changed());
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      // rescans still see changes
    }
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    clearTimeout(this.timer);
  }

  private changed(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), 15).unref();
  }

  /** Re-read when the signature changed; keep the last valid mapping on any failure. */
  async refresh(): Promise<void> {
    if (this.loading || this.stopped) return;
    this.loading = true;
    try {
      const sig = await fileSig(this.path).catch(() => undefined);
      if (sig === this.sig) return;
      const r = await readBounded(this.path, IDENTITY_FILE_MAX_BYTES);
      if (!r.ok && r.reason === 'changed') return this.changed();
      this.sig = r.ok ? r.sig : sig;
      if (!r.ok) return this.fail(r.message);
      try {
        this.map = parseIdentityFile(r.text);
        this.once.clear(this.path);
        this.deps.log.info({ file: this.path, entries: this.entries }, 'identity: identity file re-read');
      } catch (e) {
        this.fail(`${basename(this.path)}: ${(e as Error).message}`);
      }
    } finally {
      this.loading = false;
    }
  }

  private fail(err: string): void {
    this.deps.error();
    this.once.warn(this.path, { file: this.path, err }, 'identity: identity file not re-read; the last valid mapping stays');
  }
}
