// Opens and loads bridgewatch.bpf.o, checks the contract, sets the tunables, and holds the maps;
// its attachments are TcHooks' (hooks.ts). Lifecycle: BpfCollection.load() -> attach()/detach()
// -> close(); close() releases everything.
import { existsSync } from 'node:fs';
import koffi from 'koffi';
import { BridgewatchError } from '../errors.js';
import { BPF_OBJECT, BPF_OBJECT_STATEMAP } from '../paths.js';
import { errno as lastErrno, strerror } from '../sys/libc.js';
import { libbpf, testRun, type TestRun } from './libbpf.js';
import { btfDatasec, btfEnum, btfStruct } from './btf.js';
import { KernelTables } from './tables.js';
import { sys, TcHooks, type AttachMode } from './hooks.js';
import { AwaitTable } from './await.js';
import { DEFAULT_TUNABLES, type Attachment, type Tunables } from '../observe-types.js';
export { DEFAULT_TUNABLES, type Attachment, type Tunables };
export type { MacEntry } from './abi.js';
import { ENUM_LAYOUTS, enumDiffs, KEY, LAYOUTS, layoutDiffs, MAC_STATS, SETTLED_CPU, type FrameStatName, type MacEntry, type MacStats, type StatName } from './abi.js';
import { readFrameStats } from './kept.js';

export const PROG_NAME = 'tc_ingress';
export { TC_HANDLE, TC_PRIORITY, UPLINK_HANDLE, UPLINK_PRIORITY, tcxSupported, type AttachMode } from './hooks.js';

// struct __sk_buff (include/uapi/linux/bpf.h, a stable uapi layout): the ctx of a test run
const SK_BUFF_SIZE = 192;
const SK_BUFF_IFINDEX = 40; // __u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex



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


// libbpf >= 1.0 returns -errno from int functions
function check(what: string, rc: number): number {
  if (rc < 0) throw sys(what, -rc);
  return rc;
}

export class BpfCollection {
  readonly maps: { macs: number; events: number; stats: number; portCount: number; await: number; awaitN: number };
  /** bw_frames (kept announcements) and bw_frame_stats */
  readonly frameMaps: { frames: number; stats: number };
  readonly maxMacs: number;
  /** where the program learns "forwarding at this instant": skb->dev, or a map from rtnetlink */
  readonly portState: 'kernel' | 'netlink';
  /** why 'netlink' was chosen under portState 'auto' */
  fallbackReason = '';
  private obj: unknown;
  private readonly progFd: number;
  private readonly uplinkFds: { in: number; out: number };
  /** every attachment it made (guest ports, uplinks) */
  private readonly hooks: TcHooks;
  /** guest MACs the uplink programs watch for (convergence) */
  readonly awaits: AwaitTable;
  private readonly tables: KernelTables;
  private readonly ncpu: number;

  private constructor(
    obj: unknown,
    mode: 'tcx' | 'tc',
    stateDir: string,
    portState: 'kernel' | 'netlink',
    auto: boolean,
  ) {
    const l = libbpf();
    this.obj = obj;
    this.portState = portState;
    this.progFd = check(`find program ${PROG_NAME}`, l.prog_fd(l.find_prog(obj, PROG_NAME)) as number);
    const mapFd = (name: string) => {
      const m = l.find_map(obj, name);
      if (!m) throw new BridgewatchError('ELAYOUT', `find map ${name}: not in the BPF object`);
      return l.map_fd(m) as number;
    };
    this.maps = {
      macs: mapFd('bw_port_macs'),
      events: mapFd('bw_events'),
      stats: mapFd('bw_stats'),
      portCount: mapFd('bw_port_count'),
      await: mapFd('bw_await'),
      awaitN: mapFd('bw_await_n'),
    };
    const progFd = (name: string) => check(`find program ${name}`, l.prog_fd(l.find_prog(obj, name)) as number);
    this.uplinkFds = { in: progFd('tc_uplink_in'), out: progFd('tc_uplink_out') };
    this.awaits = new AwaitTable(this.maps.await, this.maps.awaitN, l.map_max_entries(l.find_map(obj, 'bw_await')) as number);
    this.frameMaps = { frames: mapFd('bw_frames'), stats: mapFd('bw_frame_stats') };
    this.ncpu = l.num_possible_cpus() as number;
    this.maxMacs = l.map_max_entries(l.find_map(obj, 'bw_port_macs')) as number;
    this.tables = new KernelTables({ ...this.maps, settled: mapFd('bw_settled') }, l.num_possible_cpus() as number);
    this.hooks = new TcHooks(this.progFd, this.uplinkFds, mode, stateDir, auto);
  }

  /** How new attachments are made; under `auto`, clsact until the kernel turns out to lack it. */
  get mode(): 'tcx' | 'tc' {
    return this.hooks.mode;
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
      const diffs = [
        ...LAYOUTS.flatMap((layout) => layoutDiffs(layout, btf ? btfStruct(btf, layout.name) : undefined)),
        ...ENUM_LAYOUTS.flatMap((e) => enumDiffs(e, btf ? btfEnum(btf, e.name) : undefined)),
      ];
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

  /** the convergence programs (uplink ingress, egress): for BPF_PROG_TEST_RUN */
  get uplinkProgramFds(): { in: number; out: number } {
    return this.uplinkFds;
  }

  attachments(): Attachment[] {
    return this.hooks.attachments();
  }

  /** Attach to ifindex's ingress; attaching again replaces ours, never stacks a second one. */
  attach(ifindex: number, ifname = `ifindex ${ifindex}`): Attachment {
    this.assertOpen();
    return this.hooks.attach(ifindex, ifname);
  }

  /** Detach ours from ifindex; a device already gone is not an error. */
  detach(ifindex: number): void {
    this.hooks.detach(ifindex);
  }

  /** Forget a device that the kernel already removed (its hooks died with it). */
  forget(ifindex: number): void {
    this.hooks.forget(ifindex);
  }

  /** Uplinks carrying the convergence programs. */
  uplinkAttachments(): { ifindex: number; ifname: string }[] {
    return this.hooks.uplinkAttachments();
  }

  /** The convergence programs on both sides of an uplink (bpf/uplink.bpf.h). */
  attachUplink(ifindex: number, ifname = `ifindex ${ifindex}`): void {
    this.assertOpen();
    this.hooks.attachUplink(ifindex, ifname);
  }

  detachUplink(ifindex: number): void {
    this.hooks.detachUplink(ifindex);
  }

  /** Uplink filters with our handle an earlier run left (see TcHooks). */
  removeStaleUplink(ifindex: number): void {
    this.hooks.removeStaleUplink(ifindex);
  }

  queryUplink(ifindex: number): { ingress: boolean; egress: boolean } {
    return this.hooks.queryUplink(ifindex);
  }

  /** Programs on ifindex's ingress: tcx programs and our clsact filter. */
  query(ifindex: number): { tcx: number; tcFilter: boolean } {
    return this.hooks.query(ifindex);
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

  /** Kept-announcement counters (bw_frame_stats), summed over CPUs. */
  frameStats(): Record<FrameStatName, number> {
    return readFrameStats(this.frameMaps.stats, this.ncpu);
  }

  /** Run the program on one frame (BPF_PROG_TEST_RUN); ctx may set ifindex. */
  testRun(frame: Buffer, opts: { ifindex?: number; repeat?: number } = {}): TestRun {
    let ctx: Buffer | null = null;
    if (opts.ifindex) {
      ctx = Buffer.alloc(SK_BUFF_SIZE);
      ctx.writeUInt32LE(opts.ifindex, SK_BUFF_IFINDEX);
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
    this.hooks.closeAll();
    libbpf().object_close(this.obj);
    this.obj = undefined;
  }

  private assertOpen(): void {
    if (!this.obj) throw new BridgewatchError('ESTATE', 'use bpf collection: already closed');
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
  put('arm_await', t.armAwait ? 1n : 0n);
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

