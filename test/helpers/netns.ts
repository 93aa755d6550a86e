// Throwaway network namespaces (and state dirs) for kernel tests. Names start with `bwt-` so a
// leftover is easy to spot; every one is registered and removed by cleanupAll() even on failure.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c } from '../../src/sys/libc.js';
import { addNetns, delNetns, inNetns, ip } from '../../src/sys/netns.js';

let seq = 0;
const live = new Set<TestNetns>();
const dirs = new Set<string>();

export class TestNetns {
  readonly name: string;

  constructor(tag: string) {
    this.name = `bwt-${tag}-${process.pid}-${++seq}`;
    live.add(this); // first: addNetns may fail after creating it
    addNetns(this.name);
  }

  /** `ip` inside the namespace. */
  ip(...args: string[]): string {
    return ip(this.name, ...args);
  }

  /** Any netns-aware tool (`tc`, `bridge`) with `-n <name>`. */
  tool(cmd: 'tc' | 'bridge', ...args: string[]): string {
    return execFileSync(cmd, ['-n', this.name, ...args], { encoding: 'utf8', stdio: 'pipe' });
  }

  /** Run fn on the main thread inside the namespace (synchronous only). */
  run<T>(fn: () => T): T {
    return inNetns(this.name, fn);
  }

  ifindex(dev: string): number {
    const i = this.run(() => c.if_nametoindex(dev) as number);
    if (!i) throw new Error(`ifindex of ${dev} in ${this.name}: no such device`);
    return i;
  }

  delete(): void {
    live.delete(this);
    delNetns(this.name);
  }
}

/** A temporary state dir (tc-mode hook ownership), removed by cleanupAll(). */
export function tempStateDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bwt-state-'));
  dirs.add(d);
  return d;
}

/** Remove every namespace and state dir this process created; collects errors, throws last. */
export function cleanupAll(): void {
  let err: unknown;
  for (const ns of [...live]) {
    try {
      ns.delete();
    } catch (e) {
      err = e;
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
  if (err) throw err;
}

/** Poll cond every few ms until it holds or timeoutMs passes (then throw with what). */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`wait for ${what}: timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A quiet namespace (no IPv6 chatter) holding bridge br0 with a veth uplink up0 whose peer up0p
 * stays outside the bridge, where "the fabric" sends and captures.
 */
export function bridgeWithUplink(tag: string): TestNetns {
  const ns = new TestNetns(tag);
  ns.run(() => {
    for (const k of ['all', 'default']) writeFileSync(`/proc/sys/net/ipv6/conf/${k}/disable_ipv6`, '1');
  });
  ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
  ns.ip('link', 'set', 'br0', 'up');
  ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p');
  ns.ip('link', 'set', 'up0', 'master', 'br0');
  ns.ip('link', 'set', 'up0', 'up');
  ns.ip('link', 'set', 'up0p', 'up');
  return ns;
}
