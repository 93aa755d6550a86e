// How the daemon observes guest frames: eBPF in the kernel (exact) or libpcap capture in user
// space (the fallback where BPF is unavailable). Both give the same facts in the same shapes.
import type { BpfEvent, BpfFrame, FrameStatName, MacEntry, MacStats, StatName } from './bpf/abi.js';
import { BpfCollection, type LoadOptions } from './bpf/loader.js';
import type { Attachment } from './observe-types.js';
import { EventReader } from './bpf/events.js';
import type { AwaitTable } from './bpf/await.js';
import { KeptFrameReader } from './bpf/kept.js';

export interface ObserveBackend {
  readonly mode: 'ebpf' | 'pcap';
  /** capacity of the {port, MAC} table */
  readonly maxMacs: number;
  attach(ifindex: number, ifname: string): Attachment;
  detach(ifindex: number): void;
  /** the device is gone: drop our handle without touching the kernel */
  forget(ifindex: number): void;
  attachments(): Attachment[];
  macs(): MacEntry[];
  /**
   * One {port, MAC} entry. withSettled false: without the frames the settled path counted
   * (`frames` and `kinds.other` then leave them out) and without reading every CPU's slots, for
   * decisions that read only timestamps, unforwarded and announcement counts.
   */
  mac(ifindex: number, mac: Uint8Array, withSettled?: boolean): MacStats | undefined;
  deletePort(ifindex: number, entries?: MacEntry[]): number;
  /** the statemap build (kernels before 6.3) needs each port's bridge state (BR_STATE_*, null:
   *  no bridge port) written into the kernel; returns whether it wrote. Absent: not needed */
  setPortState?(ifindex: number, state: number | null): boolean;
  /** after a full read of macs(): let the kernel's per-port limits follow LRU evictions. Absent:
   *  the backend's own table does that itself */
  syncPortCounts?(entries: MacEntry[]): void;
  stats(): Record<StatName, number>;
  /** deliver events to onEvent from now on */
  startEvents(onEvent: (ev: BpfEvent) => void, onBad: (size: number, err?: unknown) => void): void;
  /**
   * deliver kept announcements (gARP/NA bytes seen while the port could not forward) to onFrame
   * from now on; poll() delivers them before the events of the same moment
   */
  startFrames?(onFrame: (f: BpfFrame) => void, onBad: (size: number, err?: unknown) => void): void;
  /** deliver the kept announcements pending now (safe inside an event's delivery) */
  pollFrames?(): void;
  /** kept-announcement counters (monotonic) */
  frameStats?(): Record<FrameStatName, number>;
  /** deliver what is pending now, synchronously */
  poll(): void;
  close(): void;
  /** convergence on the uplinks (eBPF only; the libpcap fallback has none) */
  readonly fabric?: FabricWatch;
}

/** The uplink programs and the MACs they watch for (src/bpf/await.ts, bpf/uplink.bpf.h). */
export interface FabricWatch {
  attachUplink(ifindex: number, ifname: string): void;
  detachUplink(ifindex: number): void;
  uplinkAttachments(): { ifindex: number; ifname: string }[];
  removeStaleUplink(ifindex: number): void;
  readonly awaits: AwaitTable;
}

export class EbpfBackend implements ObserveBackend {
  readonly mode = 'ebpf' as const;
  readonly bpf: BpfCollection;
  private reader: EventReader | undefined;
  private kept: KeptFrameReader | undefined;

  constructor(opts: LoadOptions) {
    this.bpf = BpfCollection.load(opts);
  }

  get fabric(): FabricWatch {
    return this.bpf;
  }

  get maxMacs(): number {
    return this.bpf.maxMacs;
  }
  get attachMode(): 'tcx' | 'tc' {
    return this.bpf.mode;
  }
  attach(ifindex: number, ifname: string): Attachment {
    return this.bpf.attach(ifindex, ifname);
  }
  detach(ifindex: number): void {
    this.bpf.detach(ifindex);
  }
  forget(ifindex: number): void {
    this.bpf.forget(ifindex);
  }
  attachments(): Attachment[] {
    return this.bpf.attachments();
  }
  macs(): MacEntry[] {
    return this.bpf.macs();
  }
  mac(ifindex: number, mac: Uint8Array, withSettled = true): MacStats | undefined {
    return this.bpf.mac(ifindex, mac, withSettled);
  }
  deletePort(ifindex: number, entries?: MacEntry[]): number {
    return this.bpf.deletePort(ifindex, entries);
  }
  syncPortCounts(entries: MacEntry[]): void {
    this.bpf.syncPortCounts(entries);
  }
  setPortState(ifindex: number, state: number | null): boolean {
    return this.bpf.setPortState(ifindex, state);
  }
  stats(): Record<StatName, number> {
    return this.bpf.stats();
  }
  startEvents(onEvent: (ev: BpfEvent) => void, onBad: (size: number, err?: unknown) => void): void {
    this.reader = new EventReader(this.bpf.maps.events, { onEvent, onBadRecord: onBad });
    this.reader.start();
  }
  startFrames(onFrame: (f: BpfFrame) => void, onBad: (size: number, err?: unknown) => void): void {
    this.kept = new KeptFrameReader(this.bpf.frameMaps.frames, { onFrame, onBadRecord: onBad });
    this.kept.start();
  }
  frameStats(): Record<FrameStatName, number> {
    return this.bpf.frameStats();
  }
  pollFrames(): void {
    this.kept?.poll();
  }
  poll(): void {
    this.kept?.poll(); // a frame is kept only after its event: both are here before the heal
    this.reader?.poll();
  }
  close(): void {
    this.kept?.stop();
    this.kept = undefined;
    this.reader?.stop();
    this.reader = undefined;
    this.bpf.close();
  }
}
