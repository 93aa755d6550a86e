// When did the switch learn where the guest is, and when did host B's port start forwarding?
// `bridge monitor fdb|link` in a namespace prints each change as the kernel makes it (one line
// each, flushed); we stamp lines with performance.now() as they arrive. Both times reach us by
// the same path, so their difference is accurate to about a millisecond.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { BridgewatchError } from '../errors.js';

export interface FdbChange {
  /** performance.now() when the line arrived */
  at: number;
  mac: string;
  dev: string;
  deleted: boolean;
}

const FDB_LINE = /^(Deleted )?([0-9a-f]{2}(?::[0-9a-f]{2}){5}) dev (\S+)/;
const LINK_LINE = /^\d+: ([^:@\s]+)(?:@\S+)?: .* master (\S+) .*\bstate (\S+)/;

/** One `bridge monitor fdb` line, or null for lines about something else. Pure. */
export function parseFdbLine(line: string, at: number): FdbChange | null {
  const m = FDB_LINE.exec(line.trim());
  return m ? { at, mac: m[2], dev: m[3], deleted: !!m[1] } : null;
}

/** Port, bridge and STP state from one `bridge monitor link` line, or null. Pure. */
export function parseLinkLine(line: string): { port: string; bridge: string; state: string } | null {
  const m = LINK_LINE.exec(line.trim());
  return m ? { port: m[1], bridge: m[2], state: m[3] } : null;
}

export class BridgeMonitor {
  readonly lines: { at: number; line: string }[] = [];
  private child: ChildProcess | null = null;
  private failure = '';

  constructor(
    readonly ns: string,
    readonly object: 'fdb' | 'link',
  ) {}

  /** Start monitoring; resolves once `bridge` is running (its netlink socket bound). */
  async start(): Promise<void> {
    const child = spawn('bridge', ['-n', this.ns, 'monitor', this.object], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => (this.failure += d));
    createInterface({ input: child.stdout! }).on('line', (line) => this.lines.push({ at: performance.now(), line }));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e) => reject(new BridgewatchError('ENOTSUP', `start bridge monitor ${this.object} in ${this.ns}: ${e.message}`)));
    });
    // bridge binds its netlink socket right after exec; give it that moment
    await new Promise((r) => setTimeout(r, 100));
    if (child.exitCode !== null) throw new BridgewatchError('EKERNEL', `start bridge monitor ${this.object} in ${this.ns}: exited: ${this.failure.trim()}`);
  }

  /** End `bridge` and reap it. */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

/** A bridge's FDB (the switch's, a host's), as far as one MAC is concerned. */
export class FdbWatch extends BridgeMonitor {
  constructor(
    ns: string,
    readonly mac: string,
  ) {
    super(ns, 'fdb');
  }

  changes(): FdbChange[] {
    return this.lines.map((l) => parseFdbLine(l.line, l.at)).filter((c): c is FdbChange => c !== null && c.mac === this.mac);
  }

  /** The first time at or after `since` the MAC was (re)learned on `dev`, or undefined. */
  learnedOn(dev: string, since: number): number | undefined {
    return this.changes().find((ch) => ch.at >= since && !ch.deleted && ch.dev === dev)?.at;
  }

  /** Where the bridge last put the MAC (undefined: never seen, or deleted). */
  current(): string | undefined {
    return this.before(Infinity);
  }

  /** Where the bridge had the MAC just before `t` (undefined: not seen by then, or deleted). */
  before(t: number): string | undefined {
    const last = this.changes().filter((ch) => ch.at < t).at(-1);
    return last && !last.deleted ? last.dev : undefined;
  }
}

/** A host's bridge ports: when one reached forwarding. */
export class PortWatch extends BridgeMonitor {
  constructor(ns: string) {
    super(ns, 'link');
  }

  forwardingAt(port: string, since: number): number | undefined {
    return this.lines.find((l) => l.at >= since && parseLinkLine(l.line)?.port === port && parseLinkLine(l.line)?.state === 'forwarding')?.at;
  }
}
