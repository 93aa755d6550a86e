// How the daemon observes guest frames: eBPF in the kernel (exact) or libpcap capture in user
// space (the fallback where BPF is unavailable). Both give the same facts in the same shapes.
import type { BpfEvent, MacEntry, MacStats, StatName } from './bpf/abi.js';
import { BpfCollection, type Attachment, type LoadOptions } from './bpf/loader.js';
import { EventReader } from './bpf/events.js';

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
  /** a port's bridge state (BR_STATE_*, null: no bridge port), for backends that need telling */
  setPortState(ifindex: number, state: number | null): boolean;
  /** after a full read of macs(): let per-port limits follow evictions */
  syncPortCounts(entries: MacEntry[]): void;
  stats(): Record<StatName, number>;
  /** deliver events to onEvent from now on */
  startEvents(onEvent: (ev: BpfEvent) => void, onBad: (size: number, err?: unknown) => void): void;
  /** deliver what is pending now, synchronously */
  poll(): void;
  close(): void;
}

export class EbpfBackend implements ObserveBackend {
  readonly mode = 'ebpf' as const;
  readonly bpf: BpfCollection;
  private reader: EventReader | undefined;

  constructor(opts: LoadOptions) {
    this.bpf = BpfCollection.load(opts);
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
  poll(): void {
    this.reader?.poll();
  }
  close(): void {
    this.reader?.stop();
    this.reader = undefined;
    this.bpf.close();
  }
}
