// A throwaway namespace with bridge br0 (STP off, no forward delay) for one benchmark; nothing
// the bench builds lives outside it, and close() deletes it with everything inside.
import { execFileSync } from 'node:child_process';
import { addNetns, delNetns, inNetns, ip } from '../src/sys/netns.js';

let seq = 0;

export class BenchNetns {
  readonly name: string;

  constructor(tag: string) {
    this.name = `bwbench-${tag}-${process.pid}-${++seq}`;
    addNetns(this.name);
    try {
      this.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
      this.ip('link', 'set', 'br0', 'up');
    } catch (e) {
      delNetns(this.name);
      throw e;
    }
  }

  ip(...args: string[]): string {
    return ip(this.name, ...args);
  }

  run<T>(fn: () => T): T {
    return inNetns(this.name, fn);
  }

  ifindex(dev: string): number {
    return JSON.parse(this.ip('-j', 'link', 'show', 'dev', dev))[0].ifindex as number;
  }

  /** Bridge port state of `dev` as the bridge reports it, e.g. 'forwarding'. */
  portState(dev: string): string | undefined {
    const out = execFileSync('bridge', ['-n', this.name, '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' });
    return (JSON.parse(out || '[]') as { state?: string }[])[0]?.state;
  }

  /** Set a port's state by hand (STP is off, so it is ours to set): 0..3, disabled..forwarding. */
  setPortState(dev: string, state: number): void {
    execFileSync('bridge', ['-n', this.name, 'link', 'set', 'dev', dev, 'state', String(state)]);
  }

  /** Enslave `dev` to br0, bring it up, and wait until it forwards. */
  async join(dev: string): Promise<void> {
    this.ip('link', 'set', dev, 'master', 'br0');
    this.ip('link', 'set', dev, 'up');
    const end = Date.now() + 10_000;
    while (this.portState(dev) !== 'forwarding') {
      if (Date.now() > end) throw new Error(`bench: ${dev} in ${this.name} never reached forwarding`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    delNetns(this.name);
  }
}
