// The guest MACs the uplink programs watch for (bw_await, bpf/uplink.bpf.h). The kernel arms a
// new MAC at its first frame; user space decides who stays and for how long, and removes the
// rest. bw_await_n tells the programs whether to look at all.
import { BridgewatchError, errnoError } from '../errors.js';
import { strerror } from '../sys/libc.js';
import { AWAIT, AWAIT_KEY, decodeAwait, encodeAwaitKey, macFromString, macToString, type AwaitState } from './abi.js';
import { libbpf } from './libbpf.js';

const ZERO_KEY = Buffer.alloc(4);
const BPF_NOEXIST = 1n;

export class AwaitTable {
  private readonly macs = new Set<string>();
  /** in the kernel but not ours at the last sweep (armed by the kernel, event maybe not read yet) */
  private strangers = new Set<string>();
  private readonly value = Buffer.alloc(AWAIT.size);

  constructor(
    private readonly fd: number,
    private readonly countFd: number,
    readonly capacity: number,
  ) {}

  get size(): number {
    return this.macs.size;
  }

  has(mac: string): boolean {
    return this.macs.has(mac);
  }

  /**
   * Watch `mac`: adopt the kernel's entry (armed at its first frame, maybe already holding what
   * the uplinks saw), or insert a zeroed one; false when the table is full.
   */
  add(mac: string): boolean {
    if (this.macs.has(mac)) return true;
    const rc = libbpf().map_update_elem(this.fd, encodeAwaitKey(macFromString(mac)), Buffer.alloc(AWAIT.size), BPF_NOEXIST) as number;
    if (rc === -7 || rc === -28) return false; // E2BIG, ENOSPC: full
    if (rc < 0 && rc !== -17) throw errnoError(`watch ${mac} on the uplinks (bw_await)`, -rc, strerror);
    this.macs.add(mac);
    this.strangers.delete(mac);
    this.setFlag(1);
    return true;
  }

  /** Stop watching `mac`, also when only the kernel armed it. */
  remove(mac: string): void {
    this.macs.delete(mac);
    libbpf().map_delete_elem(this.fd, encodeAwaitKey(macFromString(mac)));
    if (!this.macs.size) this.idle();
  }

  /**
   * Remove the kernel's entries nobody adopted: those that were strangers at the previous sweep
   * too (one sweep of grace, for an arming whose event was not read yet).
   */
  sweep(): void {
    const l = libbpf();
    const key = Buffer.alloc(AWAIT_KEY.size);
    const next = Buffer.alloc(AWAIT_KEY.size);
    const seen = new Set<string>();
    let prev: Buffer | null = null;
    for (let i = 0; i <= this.capacity && (l.map_get_next_key(this.fd, prev, next) as number) === 0; i++) {
      next.copy(key);
      prev = key;
      const mac = macToString(key);
      if (!this.macs.has(mac)) seen.add(mac);
    }
    for (const mac of seen) if (this.strangers.has(mac)) l.map_delete_elem(this.fd, encodeAwaitKey(macFromString(mac)));
    this.strangers = new Set([...seen].filter((m) => !this.strangers.has(m)));
    if (!this.macs.size) this.idle();
  }

  /** What the uplink programs saw for `mac`; undefined when not watched. */
  get(mac: string): AwaitState | undefined {
    if (!this.macs.has(mac)) return undefined;
    const rc = libbpf().map_lookup_elem(this.fd, encodeAwaitKey(macFromString(mac)), this.value) as number;
    return rc < 0 ? undefined : decodeAwait(this.value);
  }

  clear(): void {
    for (const mac of [...this.macs]) this.remove(mac);
  }

  /** Nothing of ours: let the programs idle, unless the kernel armed a MAC meanwhile. */
  private idle(): void {
    this.setFlag(0);
    const next = Buffer.alloc(AWAIT_KEY.size);
    if ((libbpf().map_get_next_key(this.fd, null, next) as number) === 0) this.setFlag(1);
  }

  private setFlag(n: 0 | 1): void {
    const v = Buffer.alloc(4);
    v.writeUInt32LE(n);
    const rc = libbpf().map_update_elem(this.countFd, ZERO_KEY, v, 0n) as number;
    if (rc < 0) throw new BridgewatchError('EKERNEL', `set bw_await_n: ${strerror(-rc)}`, -rc);
  }
}
