// Which clsact qdiscs bridgewatch created (only those are ever removed), kept in --state-dir so
// the next start can clean up after a crash. An append-only journal, one line per change
// ("+ifindex", "-ifindex"): recording is one small write, where rewriting the whole set per
// port cost about 1 ms per port on ext4 at 1,000 ports. Compacted at open, at close and when
// mostly stale. Best effort: losing it only means a clsact qdisc of ours may outlive us.
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const OWNED_FILE = 'clsact-owned';
/** the format before the journal: a JSON array, rewritten on every change */
const LEGACY_FILE = 'clsact-owned.json';

/** The ifindexes a journal's text records as ours. */
export function parseOwned(text: string): Set<number> {
  const out = new Set<number>();
  for (const line of text.split('\n')) {
    const m = /^([+-])(\d+)$/.exec(line.trim());
    if (!m) continue; // a torn last line after a crash is simply not a record
    if (m[1] === '+') out.add(Number(m[2]));
    else out.delete(Number(m[2]));
  }
  return out;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export class OwnedHooks {
  private readonly path: string;
  private readonly set = new Set<number>();
  private fd: number | undefined;
  private lines = 0;

  constructor(private readonly dir: string) {
    this.path = join(dir, OWNED_FILE);
    const legacy = readText(join(dir, LEGACY_FILE));
    try {
      const v = legacy === undefined ? [] : JSON.parse(legacy);
      if (Array.isArray(v)) for (const x of v) if (Number.isInteger(x)) this.set.add(x);
    } catch {
      /* unreadable: nothing to trust in it */
    }
    const text = readText(this.path) ?? '';
    for (const i of parseOwned(text)) this.set.add(i);
    this.lines = text.split('\n').filter(Boolean).length;
    if (legacy !== undefined || this.lines > this.set.size) this.compact();
  }

  has(ifindex: number): boolean {
    return this.set.has(ifindex);
  }

  get size(): number {
    return this.set.size;
  }

  /** Record that we created (true) or removed (false) the clsact qdisc on ifindex. */
  mark(ifindex: number, owned: boolean): void {
    if (owned === this.set.has(ifindex)) return;
    if (owned) this.set.add(ifindex);
    else this.set.delete(ifindex);
    try {
      if (this.fd === undefined) {
        mkdirSync(this.dir, { recursive: true });
        this.fd = openSync(this.path, 'a');
      }
      writeSync(this.fd, `${owned ? '+' : '-'}${ifindex}\n`);
      this.lines++;
    } catch {
      return;
    }
    if (this.lines > 1024 && this.lines > 4 * this.set.size) this.compact();
  }

  /** Compact and stop writing (this process is done with the hooks). */
  close(): void {
    this.compact();
  }

  /** Rewrite as one "+" line per hook (write then rename: a crash leaves old or new, whole). */
  private compact(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    try {
      if (this.set.size === 0) rmSync(this.path, { force: true });
      else {
        mkdirSync(this.dir, { recursive: true });
        writeFileSync(`${this.path}.tmp`, [...this.set].map((i) => `+${i}\n`).join(''));
        renameSync(`${this.path}.tmp`, this.path);
      }
      rmSync(join(this.dir, LEGACY_FILE), { force: true });
      this.lines = this.set.size;
    } catch {
      /* best effort, as above */
    }
  }
}
