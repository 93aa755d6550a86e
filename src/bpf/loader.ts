// Opens and loads bridgewatch.bpf.o, checks the contract, and owns every attachment it makes.
// Lifecycle: BpfCollection.load() -> attach()/detach() -> close(); close() releases everything.
import { existsSync } from 'node:fs';
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
import { OwnedHooks } from './owned-hooks.js';
export type { MacEntry } from './abi.js';
import { KEY, LAYOUTS, layoutDiffs, MAC_STATS, SETTLED_CPU, type MacEntry, type MacStats, type StatName } from './abi.js';

export const PROG_NAME = 'tc_ingress';
// fixed clsact filter identity, so a restart replaces our own filter instead of stacking one
export const TC_HANDLE = 0xb3d0;
export const TC_PRIORITY = 0xb3d0 & 0xffff;

export type AttachMode = 'auto' | 'tcx' | 'tc';

/*
 * Why `auto` means clsact, not tcx, even where tcx exists (Linux 6.6+): every tcx link attach
 * and release swaps the device's bpf_mprog_entry and then waits a full RCU grace period while
 * holding rtnl (kernel/bpf/tcx.c: tcx_link_attach() takes rtnl_lock() and calls
 * tcx_link_prog_attach() -> tcx_entry_update() + tcx_entry_sync(); tcx_link_release() does the
 * same; include/net/tcx.h: tcx_entry_sync() is synchronize_rcu()). That is ~11 ms of rtnl per
 * port here, during which every other rtnetlink user (libvirt, nova, ip) waits: 200 taps took
 * 10x longer to create. A clsact filter waits at most an expedited grace period
 * (net/sched/sch_generic.c: mini_qdisc_pair_swap() calls synchronize_rcu_expedited() when the
 * qdisc is younger than a grace period), ~0.2 ms, and the qdisc itself none. `--attach tcx`
 * stays available. bench/attach.ts measures both.
 */

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
  readonly maps: { macs: number; events: number; stats: number; portCount: number };
  readonly maxMacs: number;
  /** where the program learns "forwarding at this instant": skb->dev, or a map from rtnetlink */
  readonly portState: 'kernel' | 'netlink';
  /** why 'netlink' was chosen under portState 'auto' */
  fallbackReason = '';
  private obj: unknown;
  private readonly progFd: number;
  private readonly live = new Map<number, Live>();
  private readonly ownedHooks: OwnedHooks;
  private readonly tables: KernelTables;
  private attachMode: 'tcx' | 'tc';

  private constructor(
    obj: unknown,
    mode: 'tcx' | 'tc',
    stateDir: string,
    portState: 'kernel' | 'netlink',
    private readonly auto: boolean,
  ) {
    const l = libbpf();
    this.obj = obj;
    this.attachMode = mode;
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
    this.ownedHooks = new OwnedHooks(stateDir);
  }

  /** How new attachments are made; under `auto`, clsact until the kernel turns out to lack it. */
  get mode(): 'tcx' | 'tc' {
    return this.attachMode;
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
      const mode = opts.mode === 'tcx' ? 'tcx' : 'tc'; // auto: see the comment at AttachMode
      return new BpfCollection(obj, mode, opts.stateDir ?? '/run/bridgewatch', portState, (opts.mode ?? 'auto') === 'auto');
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
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new BridgewatchError('ENODEV', `attach ${this.mode} ingress on ${ifname}: invalid ifindex ${ifindex}`);
    let live: Live;
    try {
      live = this.mode === 'tcx' ? this.attachTcx(ifindex, ifname) : this.attachTc(ifindex, ifname);
    } catch (e) {
      // auto on a kernel built without clsact or cls_bpf: tcx, if it has that
      const missing = (e as BridgewatchError).errno === 2 || (e as BridgewatchError).errno === 95;
      if (!this.auto || this.mode !== 'tc' || !missing || !tcxSupported()) throw e;
      this.attachMode = 'tcx';
      live = this.attachTcx(ifindex, ifname);
    }
    this.live.set(ifindex, live);
    return { ifindex, ifname, mode: live.mode };
  }

  private attachTcx(ifindex: number, ifname: string): Live {
    this.removeStaleFilter(ifindex); // left by an earlier run in tc mode
    const fd = libbpf().link_create(this.progFd, ifindex, BPF_TCX_INGRESS, null) as number;
    if (fd < 0) throw sys(`attach tcx ingress on ${ifname}`, -fd);
    return { ifindex, ifname, mode: 'tcx', fd };
  }

  private attachTc(ifindex: number, ifname: string): Live {
    const l = libbpf();
    const what = `attach tc ingress on ${ifname}`;
    const hook = tcHook(ifindex);
    // EEXIST (someone's clsact, or ours from a crashed run) is an answer, not worth libbpf's complaint
    const rc = quietly(() => l.tc_hook_create(hook) as number);
    if (rc < 0 && rc !== -17) throw sys(what, -rc);
    // recorded before anything else can fail, or the process die
    if (rc === 0) this.ownedHooks.mark(ifindex, true);
    const opts = tcOpts({ progFd: this.progFd, flags: BPF_TC_F_REPLACE, handle: TC_HANDLE, priority: TC_PRIORITY });
    const arc = l.tc_attach(hook, opts) as number;
    if (arc < 0) {
      if (rc === 0) {
        destroyClsact(ifindex);
        this.ownedHooks.mark(ifindex, false);
      }
      throw sys(what, -arc);
    }
    return { ifindex, ifname, mode: 'tc', createdHook: this.ownedHooks.has(ifindex) };
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
    // our own qdisc goes, and our filter with it: one rtnl round trip instead of two
    const rc = live.createdHook
      ? destroyClsact(ifindex)
      : (libbpf().tc_detach(tcHook(ifindex), tcOpts({ handle: TC_HANDLE, priority: TC_PRIORITY })) as number);
    if (live.createdHook) this.ownedHooks.mark(ifindex, false);
    if (rc < 0 && rc !== -2 && rc !== -19 && rc !== -22) throw sys(`detach tc ingress on ${live.ifname}`, -rc);
  }

  /** Forget a device that the kernel already removed (its hooks died with it). */
  forget(ifindex: number): void {
    const live = this.live.get(ifindex);
    if (!live) return;
    this.live.delete(ifindex);
    if (live.fd !== undefined) c.close(live.fd);
    if (live.createdHook) this.ownedHooks.mark(ifindex, false);
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

  mac(ifindex: number, mac: Uint8Array, withSettled = true): MacStats | undefined {
    return this.tables.mac(ifindex, mac, withSettled);
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
    this.ownedHooks.close();
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
      this.ownedHooks.mark(ifindex, false);
    }
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

/** Whether the kernel knows tcx links (BPF_TCX_INGRESS, Linux 6.6+). */
export function tcxSupported(): boolean {
  const q = progQueryOpts();
  // loopback always exists; EINVAL means the attach type is unknown to this kernel
  return (libbpf().prog_query_opts(1, BPF_TCX_INGRESS, q) as number) !== -22;
}
