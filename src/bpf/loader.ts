// Opens and loads bridgewatch.bpf.o, checks the contract, and owns every attachment it makes.
// Lifecycle: BpfCollection.load() -> attach()/detach() -> close(); close() releases everything.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import koffi from 'koffi';
import { BridgewatchError, errnoError } from '../errors.js';
import { BPF_OBJECT, BPF_OBJECT_STATEMAP } from '../paths.js';
import { c, errno as lastErrno, strerror } from '../sys/libc.js';
import {
  BPF_TC_F_REPLACE,
  BPF_TCX_INGRESS,
  destroyClsact,
  libbpf,
  progQueryCount,
  progQueryOpts,
  quietly,
  tcHook,
  tcOpts,
  tcOptsProgId,
  testRun,
  type TestRun,
} from './libbpf.js';
import { btfDatasec, btfStruct } from './btf.js';
import { KernelTables } from './tables.js';
export type { MacEntry } from './abi.js';
import { KEY, LAYOUTS, layoutDiffs, MAC_STATS, SETTLED_CPU, type MacEntry, type MacStats, type StatName } from './abi.js';

export const PROG_NAME = 'tc_ingress';
// fixed clsact filter identity, so a restart replaces our own filter instead of stacking one
export const TC_HANDLE = 0xb3d0;
export const TC_PRIORITY = 0xb3d0 & 0xffff;

export type AttachMode = 'auto' | 'tcx' | 'tc';

export interface Tunables {
  /** rate-limit window for ring-buffer events */
  eventWindowMs: number;
  /** events per {port, MAC} per window */
  eventsPerMac: number;
  /** events per CPU per window, all ports together */
  eventsPerCpu: number;
  /** MACs recorded per port (0 = no limit), so one port cannot flood the shared LRU */
  macsPerPort: number;
}
export const DEFAULT_TUNABLES: Tunables = { eventWindowMs: 1000, eventsPerMac: 32, eventsPerCpu: 4096, macsPerPort: 0 };

export interface LoadOptions {
  objectPath?: string;
  /** capacity of the {port, MAC} LRU map */
  maxMacs?: number;
  ringBytes?: number;
  tunables?: Partial<Tunables>;
  mode?: AttachMode;
  /** where tc-mode remembers which clsact hooks it created (survives a crash) */
  stateDir?: string;
  /** 'kernel' needs Linux 6.3+; 'netlink' takes port states from user space; 'auto' tries both */
  portState?: 'auto' | 'kernel' | 'netlink';
  statemapPath?: string;
}

export interface Attachment {
  readonly ifindex: number;
  readonly ifname: string;
  readonly mode: 'tcx' | 'tc' | 'pcap';
}

const sys = (what: string, e: number) => errnoError(what, e, strerror);

// libbpf >= 1.0 returns -errno from int functions
function check(what: string, rc: number): number {
  if (rc < 0) throw sys(what, -rc);
  return rc;
}

interface Live extends Attachment {
  fd?: number; // tcx link
  createdHook?: boolean; // tc: we created the clsact qdisc
}

export class BpfCollection {
  readonly mode: 'tcx' | 'tc';
  readonly maps: { macs: number; events: number; stats: number; portCount: number };
  readonly maxMacs: number;
  /** where the program learns "forwarding at this instant": skb->dev, or a map from rtnetlink */
  readonly portState: 'kernel' | 'netlink';
  /** why 'netlink' was chosen under portState 'auto' */
  fallbackReason = '';
  private obj: unknown;
  private readonly progFd: number;
  private readonly live = new Map<number, Live>();
  private readonly stateFile: string;
  private readonly ownedHooks: Set<number>;
  private readonly tables: KernelTables;

  private constructor(obj: unknown, mode: 'tcx' | 'tc', stateDir: string, portState: 'kernel' | 'netlink') {
    const l = libbpf();
    this.obj = obj;
    this.mode = mode;
    this.portState = portState;
    this.progFd = check(`find program ${PROG_NAME}`, l.prog_fd(l.find_prog(obj, PROG_NAME)) as number);
    const mapFd = (name: string) => {
      const m = l.find_map(obj, name);
      if (!m) throw new BridgewatchError('ELAYOUT', `find map ${name}: not in the BPF object`);
      return l.map_fd(m) as number;
    };
    this.maps = { macs: mapFd('bw_port_macs'), events: mapFd('bw_events'), stats: mapFd('bw_stats'), portCount: mapFd('bw_port_count') };
    this.maxMacs = l.map_max_entries(l.find_map(obj, 'bw_port_macs')) as number;
    this.tables = new KernelTables({ ...this.maps, settled: mapFd('bw_settled') }, l.num_possible_cpus() as number);
    this.stateFile = join(stateDir, 'clsact-owned.json');
    this.ownedHooks = new Set(readOwned(this.stateFile));
  }

  /** Open, tune, load and verify the object. Throws ENOTSUP when BPF is unavailable. */
  /**
   * Load the object whose program reads each port's state in the kernel (6.3+); with
   * portState 'auto', fall back to the build that reads it from a map kept from rtnetlink.
   */
  static load(opts: LoadOptions = {}): BpfCollection {
    const want = opts.portState ?? 'auto';
    if (want === 'netlink') return BpfCollection.loadOne(opts.statemapPath ?? BPF_OBJECT_STATEMAP, opts, 'netlink');
    try {
      return BpfCollection.loadOne(opts.objectPath ?? BPF_OBJECT, opts, 'kernel');
    } catch (e) {
      // an explicit object without its twin, or a contract drift: no fallback would be right
      const custom = (opts.objectPath || process.env.BRIDGEWATCH_BPF_OBJECT) && !opts.statemapPath;
      if (want !== 'auto' || !(e instanceof BridgewatchError) || e.code === 'ELAYOUT' || custom) throw e;
      try {
        const c = BpfCollection.loadOne(opts.statemapPath ?? BPF_OBJECT_STATEMAP, opts, 'netlink');
        c.fallbackReason = e.message;
        return c;
      } catch {
        throw e; // the first failure explains more
      }
    }
  }

  private static loadOne(path: string, opts: LoadOptions, portState: 'kernel' | 'netlink'): BpfCollection {
    if (!existsSync(path)) throw new BridgewatchError('ENOTSUP', `open bpf object ${path}: no such file (run npm run build:bpf)`);
    let l;
    try {
      l = libbpf();
    } catch (e) {
      throw new BridgewatchError('ENOTSUP', `load libbpf.so.1: ${(e as Error).message}`);
    }
    const obj = l.object_open_file(path, null);
    if (!obj) throw sys(`open bpf object ${path}`, lastErrno());
    try {
      const btf = l.object_btf(obj);
      // contract first: a layout drift must not reach the kernel
      const diffs = LAYOUTS.flatMap((layout) => layoutDiffs(layout, btf ? btfStruct(btf, layout.name) : undefined));
      if (diffs.length) throw new BridgewatchError('ELAYOUT', `check layout of ${path}: ${diffs.join('; ')}`);
      setTunables(obj, btf, { ...DEFAULT_TUNABLES, ...opts.tunables });
      const macs = l.find_map(obj, 'bw_port_macs');
      if (opts.maxMacs) check('set max entries of map bw_port_macs', l.map_set_max_entries(macs, opts.maxMacs) as number);
      if (opts.ringBytes) check('set size of map bw_events', l.map_set_max_entries(l.find_map(obj, 'bw_events'), opts.ringBytes) as number);
      checkMapSizes(obj);
      const rc = l.object_load(obj) as number;
      if (rc < 0) {
        const code = -rc === 1 || -rc === 95 || -rc === 22 ? 'ENOTSUP' : 'EKERNEL';
        throw new BridgewatchError(code, `load bpf object ${path}: ${strerror(-rc)}`, -rc);
      }
      const mode = opts.mode === 'tc' ? 'tc' : opts.mode === 'tcx' ? 'tcx' : probeTcx();
      return new BpfCollection(obj, mode, opts.stateDir ?? '/run/bridgewatch', portState);
    } catch (e) {
      l.object_close(obj);
      throw e;
    }
  }

  get programFd(): number {
    return this.progFd;
  }

  attachments(): Attachment[] {
    return [...this.live.values()].map(({ ifindex, ifname, mode }) => ({ ifindex, ifname, mode }));
  }

  isAttached(ifindex: number): boolean {
    return this.live.has(ifindex);
  }

  /** Attach to ifindex's ingress; attaching again replaces ours, never stacks a second one. */
  attach(ifindex: number, ifname = `ifindex ${ifindex}`): Attachment {
    this.assertOpen();
    if (this.live.has(ifindex)) this.detach(ifindex);
    const what = `attach ${this.mode} ingress on ${ifname}`;
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new BridgewatchError('ENODEV', `${what}: invalid ifindex ${ifindex}`);
    const l = libbpf();
    let live: Live;
    if (this.mode === 'tcx') {
      this.removeStaleFilter(ifindex); // left by an earlier run in tc mode
      const fd = l.link_create(this.progFd, ifindex, BPF_TCX_INGRESS, null) as number;
      if (fd < 0) throw sys(what, -fd);
      live = { ifindex, ifname, mode: 'tcx', fd };
    } else {
      const hook = tcHook(ifindex);
      const rc = l.tc_hook_create(hook) as number;
      if (rc < 0 && rc !== -17 /* EEXIST: someone's clsact, or ours from a crashed run */) throw sys(what, -rc);
      const createdHook = rc === 0 || this.ownedHooks.has(ifindex);
      if (createdHook) this.own(ifindex, true);
      const opts = tcOpts({ progFd: this.progFd, flags: BPF_TC_F_REPLACE, handle: TC_HANDLE, priority: TC_PRIORITY });
      const arc = l.tc_attach(hook, opts) as number;
      if (arc < 0) {
        if (rc === 0) destroyClsact(ifindex);
        throw sys(what, -arc);
      }
      live = { ifindex, ifname, mode: 'tc', createdHook };
    }
    this.live.set(ifindex, live);
    return { ifindex, ifname, mode: live.mode };
  }

  /** Detach ours from ifindex; a device already gone is not an error. */
  detach(ifindex: number): void {
    const live = this.live.get(ifindex);
    if (!live) return;
    this.live.delete(ifindex);
    if (live.fd !== undefined) {
      c.close(live.fd); // the kernel removes a tcx link when its last fd closes
      return;
    }
    const l = libbpf();
    const hook = tcHook(ifindex);
    const rc = l.tc_detach(hook, tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY })) as number;
    if (live.createdHook) {
      destroyClsact(ifindex);
      this.own(ifindex, false);
    }
    if (rc < 0 && rc !== -2 && rc !== -19 && rc !== -22) throw sys(`detach tc ingress on ${live.ifname}`, -rc);
  }

  /** Forget a device that the kernel already removed (its hooks died with it). */
  forget(ifindex: number): void {
    const live = this.live.get(ifindex);
    if (!live) return;
    this.live.delete(ifindex);
    if (live.fd !== undefined) c.close(live.fd);
    if (live.createdHook) this.own(ifindex, false);
  }

  /** Programs on ifindex's ingress: tcx programs and our clsact filter. */
  query(ifindex: number): { tcx: number; tcFilter: boolean } {
    const l = libbpf();
    const q = progQueryOpts();
    const rc = l.prog_query_opts(ifindex, BPF_TCX_INGRESS, q) as number;
    const tcx = rc < 0 ? 0 : progQueryCount(q);
    const opts = tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY });
    const tc = quietly(() => l.tc_query(tcHook(ifindex), opts) as number);
    return { tcx, tcFilter: tc === 0 && tcOptsProgId(opts) !== 0 };
  }

  /** Every {port, MAC} entry in the kernel. */
  macs(): MacEntry[] {
    return this.tables.macs();
  }

  mac(ifindex: number, mac: Uint8Array): MacStats | undefined {
    return this.tables.mac(ifindex, mac);
  }

  /** Let the per-port MAC counts follow LRU evictions (see KernelTables). */
  syncPortCounts(entries: MacEntry[]): void {
    this.tables.syncPortCounts(entries);
  }

  /** Delete a port's entries (device gone); returns how many. */
  deletePort(ifindex: number, entries?: MacEntry[]): number {
    return this.tables.deletePort(ifindex, entries);
  }

  /** Global counters, summed over CPUs. */
  stats(): Record<StatName, number> {
    return this.tables.stats();
  }

  /** Run the program on one frame (BPF_PROG_TEST_RUN); ctx may set ifindex. */
  testRun(frame: Buffer, opts: { ifindex?: number; repeat?: number } = {}): TestRun {
    let ctx: Buffer | null = null;
    if (opts.ifindex) {
      ctx = Buffer.alloc(192); // struct __sk_buff; ifindex at offset 40
      ctx.writeUInt32LE(opts.ifindex, 40);
    }
    try {
      return testRun(this.progFd, frame, ctx, opts.repeat ?? 1);
    } catch (e) {
      throw sys(`test run ${PROG_NAME} on ${frame.length}-byte frame`, (e as { errno: number }).errno ?? 22);
    }
  }

  /**
   * Tell the 'netlink' build a port's bridge state (BR_STATE_*), or null for no bridge port.
   * A no-op for the kernel build, which reads the state itself; returns whether it wrote.
   */
  setPortState(ifindex: number, state: number | null): boolean {
    if (this.portState !== 'netlink' || !this.obj) return false;
    const l = libbpf();
    this.stateFd ??= l.map_fd(l.find_map(this.obj, 'bw_port_state')) as number;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(ifindex);
    if (state === null) l.map_delete_elem(this.stateFd, key);
    else check(`set state of port ifindex ${ifindex}`, l.map_update_elem(this.stateFd, key, Buffer.from([state]), 0n) as number);
    return true;
  }

  private stateFd: number | undefined;

  /** Detach everything and unload. Idempotent. */
  close(): void {
    if (!this.obj) return;
    for (const ifindex of [...this.live.keys()]) {
      try {
        this.detach(ifindex);
      } catch {
        this.forget(ifindex); // device vanished under us: nothing left to release
      }
    }
    libbpf().object_close(this.obj);
    this.obj = undefined;
  }

  private assertOpen(): void {
    if (!this.obj) throw new BridgewatchError('ESTATE', 'use bpf collection: already closed');
  }

  private removeStaleFilter(ifindex: number): void {
    const l = libbpf();
    // usually there is no clsact at all: the kernel's complaint is the expected answer
    quietly(() => l.tc_detach(tcHook(ifindex), tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY })));
    if (this.ownedHooks.has(ifindex)) {
      destroyClsact(ifindex);
      this.own(ifindex, false);
    }
  }

  private own(ifindex: number, owned: boolean): void {
    if (owned === this.ownedHooks.has(ifindex)) return;
    if (owned) this.ownedHooks.add(ifindex);
    else this.ownedHooks.delete(ifindex);
    try {
      mkdirSync(dirname(this.stateFile), { recursive: true });
      writeFileSync(this.stateFile, JSON.stringify([...this.ownedHooks]));
    } catch {
      /* best effort: losing this only means a clsact qdisc may outlive us */
    }
  }
}

function readOwned(file: string): number[] {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8'));
    return Array.isArray(v) ? v.filter((x) => Number.isInteger(x)) : [];
  } catch {
    return [];
  }
}

function setTunables(obj: unknown, btf: unknown, t: Tunables): void {
  const l = libbpf();
  const map = l.find_map(obj, '.rodata');
  if (!map || !btf) throw new BridgewatchError('ELAYOUT', 'set tunables: no .rodata in the BPF object');
  const vars = btfDatasec(btf, '.rodata');
  const size = [0];
  const ptr = l.map_initial_value(map, size);
  const put = (name: string, value: bigint) => {
    const v = vars.get(name);
    if (!v) throw new BridgewatchError('ELAYOUT', `set tunable ${name}: not in the BPF object`);
    koffi.encode(ptr, v.offset, v.size === 8 ? 'uint64_t' : 'uint32_t', v.size === 8 ? value : Number(value));
  };
  put('ev_window_ns', BigInt(Math.round(t.eventWindowMs * 1e6)));
  put('ev_per_mac', BigInt(t.eventsPerMac));
  put('ev_per_cpu', BigInt(t.eventsPerCpu));
  put('max_macs_per_port', BigInt(t.macsPerPort));
}

function checkMapSizes(obj: unknown): void {
  const l = libbpf();
  const m = l.find_map(obj, 'bw_port_macs');
  const k = l.map_key_size(m) as number;
  const v = l.map_value_size(m) as number;
  if (k !== KEY.size || v !== MAC_STATS.size)
    throw new BridgewatchError('ELAYOUT', `check map bw_port_macs: key ${k} value ${v} bytes, contract says ${KEY.size} and ${MAC_STATS.size}`);
  const settled = l.find_map(obj, 'bw_settled');
  const sv = settled ? (l.map_value_size(settled) as number) : 0;
  if (sv !== SETTLED_CPU.size) throw new BridgewatchError('ELAYOUT', `check map bw_settled: value ${sv} bytes, contract says ${SETTLED_CPU.size}`);
}

/** tcx (kernel 6.6+) when the kernel knows BPF_TCX_INGRESS, else clsact. */
function probeTcx(): 'tcx' | 'tc' {
  const q = progQueryOpts();
  // loopback always exists; EINVAL means the attach type is unknown to this kernel
  const rc = libbpf().prog_query_opts(1, BPF_TCX_INGRESS, q) as number;
  return rc === -22 ? 'tc' : 'tcx';
}
