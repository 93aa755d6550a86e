// What every identity source is given: a logger, an error counter for its source, and a way to
// warn once per thing (a bad file is logged when it goes bad, not at every rescan).
import type { Logger } from 'pino';
import type { VmIdentity } from './types.js';

export interface SourceDeps {
  log: Logger;
  /** count one error of this source (bridgewatch_identity_errors_total{source}) */
  error(): void;
}

/** Lookups are in-memory map reads: the data path never waits for a source. */
export interface IdentityLookup {
  byPort?(port: string): VmIdentity | undefined;
  byMac?(mac: string): VmIdentity | undefined;
  byNetns?(inode: number): VmIdentity | undefined;
}

/** Warn about a key once, until clear(key) says it is fine again. */
export class WarnOnce {
  private readonly keys = new Set<string>();
  constructor(private readonly log: Logger) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    if (this.keys.has(key)) return;
    if (this.keys.size >= 10_000) this.keys.clear(); // bounded: at worst a repeated line
    this.keys.add(key);
    this.log.warn(obj, msg);
  }

  clear(key: string): void {
    this.keys.delete(key);
  }
}

export const errCode = (e: unknown): string => (e as NodeJS.ErrnoException).code ?? '';
/** the thing is gone (a file removed, a process exited): not an error of ours */
export const isGone = (e: unknown): boolean => ['ENOENT', 'ENOTDIR', 'ESRCH'].includes(errCode(e));
