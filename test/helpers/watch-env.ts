// Test scaffolding for the port watcher: throwaway namespaces and an event recorder that can
// wait for a condition without sleeping blind.
import { existsSync, readFileSync } from 'node:fs';
import { addNetns, delNetns, enterNetns, ip } from '../../src/sys/netns.js';
import type { PortWatcher } from '../../src/ports/watcher.js';
import type { BridgeDeletedEvent, BridgeEvent, PortEvent } from '../../src/ports/types.js';

let seq = 0;
const made: string[] = [];

/** A fresh namespace named bwt-watch-<tag>-<pid>-<n>; removed by dropNetnses(). */
export function freshNetns(tag: string): string {
  const name = `bwt-watch-${tag}-${process.pid}-${seq++}`;
  addNetns(name);
  made.push(name);
  return name;
}

/** Remove every namespace this process made; keeps going past failures. */
export function dropNetnses(): void {
  for (const name of made.splice(0)) {
    try {
      delNetns(name);
    } catch {
      // deleted already
    }
  }
}

/** Why kernel tests cannot run here, or null. */
export function kernelSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  return null;
}

/** Does this kernel do bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)? */
export function vlanFilteringSupported(ns: string): boolean {
  try {
    ip(ns, 'link', 'add', 'bwtprobe', 'type', 'bridge', 'vlan_filtering', '1');
    ip(ns, 'link', 'del', 'bwtprobe');
    return true;
  } catch {
    return false;
  }
}

/** start() in `ns`: the socket opens synchronously, so we can leave before awaiting. */
export function startIn(ns: string, w: PortWatcher): Promise<void> {
  const leave = enterNetns(ns);
  try {
    return w.start();
  } finally {
    leave();
  }
}

/** Port id of the rtnetlink socket subscribed to RTNLGRP_LINK in `ns` (the watcher's). */
export function watcherPortId(ns: string): number {
  const leave = enterNetns(ns);
  try {
    const rows = readFileSync('/proc/thread-self/net/netlink', 'utf8').trim().split('\n').slice(1);
    const hit = rows.map((r) => r.trim().split(/\s+/)).find((c) => c[1] === '0' && (parseInt(c[3], 16) & 1) === 1);
    if (!hit) throw new Error(`find watcher socket in ${ns}: none subscribed to RTNLGRP_LINK`);
    return Number(hit[2]);
  } finally {
    leave();
  }
}

/** Poll pred() every 10 ms until it holds (for state that changes without an event). */
export async function poll(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Waiter = { pred: () => boolean; resolve: () => void };

export class Recorder {
  readonly ports: PortEvent[] = [];
  readonly bridges: BridgeEvent[] = [];
  readonly bridgeDeletes: BridgeDeletedEvent[] = [];
  private waiters: Waiter[] = [];

  constructor(w: PortWatcher) {
    w.on('port', (e) => this.push(this.ports, e));
    w.on('bridge', (e) => this.push(this.bridges, e));
    w.on('bridgeDeleted', (e) => this.push(this.bridgeDeletes, e));
  }

  private push<T>(list: T[], e: T): void {
    list.push(e);
    this.waiters = this.waiters.filter((w) => (w.pred() ? (w.resolve(), false) : true));
  }

  /** Events of one device, by ifindex or name (any name it had). */
  of(dev: number | string): PortEvent[] {
    return this.ports.filter((e) => (typeof dev === 'number' ? e.ifindex === dev : e.name === dev || (e.type === 'renamed' && e.oldName === dev)));
  }

  /** Resolve when pred() holds; reject with `what` after ms. */
  until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; port events: ${this.summary()}`));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** Wait for the n-th (1-based) port event of `type` on `dev`, and return it. */
  async next<T extends PortEvent['type']>(dev: number | string, type: T, n = 1, ms = 5000): Promise<Extract<PortEvent, { type: T }>> {
    const find = () => this.of(dev).filter((e) => e.type === type)[n - 1];
    await this.until(`${type} #${n} on ${dev}`, () => find() !== undefined, ms);
    return find() as Extract<PortEvent, { type: T }>;
  }

  summary(): string {
    return this.ports.map((e) => `${e.type}:${e.name}`).join(' ');
  }
}
