// The libpcap fallback for hosts where the eBPF program cannot load: the same facts in the same
// shapes (ObserveBackend), from one packet socket per port read on a short timer instead of a TC
// hook. Times, kinds, VLANs and counts match eBPF mode. What cannot match: whether the port
// could forward a frame is user space's knowledge of the port state (netlink, via portState),
// not the kernel's at that instant, which is why eBPF is preferred; and a port's frames are lost
// (counted in drop_ringbuf) when its ring fills between two reads.
import koffi from 'koffi';
import type { Logger } from 'pino';
import type { ObserveBackend } from '../backend.js';
import { EVENT, FRAME_BYTES, FRAME_STATS, type BpfEvent, type BpfFrame, type FrameStatName, type MacEntry, type MacStats, type StatName } from '../bpf/abi.js';
import type { Attachment, Tunables } from '../observe-types.js';
import { BridgewatchError } from '../errors.js';
import { Capture, ENETDOWN } from './capture.js';
import { WallToMono } from './clock.js';
import { FrameReader } from './frame-reader.js';
import { libpcap, PacketHandler, PKTHDR_SIZE } from './libpcap.js';
import { NetnsSet, type Netns } from './netns.js';
import { Readiness } from './readiness.js';
import { StateHistory, stateCode } from './state-history.js';
import { MacTable } from './table.js';

export interface PcapBackendOptions {
  /** capacity of the {port, MAC} table */
  maxMacs: number;
  /** the port's bridge state as user space knows it now ('forwarding', ...); null: no bridge */
  portState: (ifindex: number) => string | null;
  log?: Logger;
  tunables?: Partial<Tunables>;
  /** read period; frames carry kernel timestamps, so this is latency, not accuracy */
  intervalMs?: number;
  /** bytes kept per frame: enough to classify (two tags + IPv6 header + ICMPv6 type) */
  snaplen?: number;
  /** kernel ring per port */
  bufferBytes?: number;
  /** events waiting for the consumer (the kernel's ring buffer) */
  maxQueuedEvents?: number;
  /** kept announcements waiting for the consumer (the kernel's bw_frames) */
  maxQueuedFrames?: number;
}

const DEFAULTS = { intervalMs: 20, snaplen: 128, bufferBytes: 256 * 1024, maxQueuedEvents: 8192, maxQueuedFrames: 256 };
const READ_BUDGET = 4096; // frames per port per read: a flooding guest cannot hold the event loop

interface Port {
  ifindex: number;
  ifname: string;
  ns: Netns;
  /** undefined: the device is down (opened when it comes up) or gone */
  capture: Capture | undefined;
  gone: boolean;
  states: StateHistory;
  /** latest frame time: per port, times never go backwards */
  lastNs: bigint;
  /** last failure logged, so a failing port logs once */
  failure: string;
}

export class PcapBackend implements ObserveBackend {
  readonly mode = 'pcap' as const;
  readonly maxMacs: number;
  /** captures ended because their device went away (in eBPF mode, the kernel removes the hook) */
  captureLost = 0;
  private readonly o: typeof DEFAULTS & PcapBackendOptions;
  private readonly table: MacTable;
  private readonly ports = new Map<number, Port>();
  private readonly netns = new NetnsSet();
  private readonly clock = new WallToMono();
  private readonly readiness = new Readiness();
  private readonly handler: koffi.IKoffiRegisteredCallback;
  private readonly timer: NodeJS.Timeout;
  private readonly reader: FrameReader;
  private queue: BpfEvent[] = [];
  private frames: BpfFrame[] = [];
  private readonly frameCounters = Object.fromEntries(FRAME_STATS.map((n) => [n, 0])) as Record<FrameStatName, number>;
  private onKept: ((f: BpfFrame) => void) | undefined;
  private deliveringFrames = false;
  private closedDrops = 0;
  private current: Port | undefined;
  private reading = false;
  private delivering = false;
  private closed = false;
  private onEvent: ((ev: BpfEvent) => void) | undefined;
  private onBad: ((size: number) => void) | undefined;

  constructor(opts: PcapBackendOptions) {
    this.o = { ...DEFAULTS, ...opts };
    try {
      libpcap();
    } catch (e) {
      throw new BridgewatchError('ENOTSUP', `load libpcap: ${(e as Error).message}`);
    }
    this.table = new MacTable({ maxMacs: opts.maxMacs, tunables: opts.tunables });
    this.maxMacs = this.table.maxMacs;
    this.reader = new FrameReader(this.o.snaplen, this.clock);
    this.handler = koffi.register((_u: unknown, hdr: unknown, bytes: unknown) => this.onFrame(hdr, bytes), koffi.pointer(PacketHandler));
    this.timer = setInterval(() => this.tick(), this.o.intervalMs);
    this.timer.unref();
  }

  /** Capture inbound frames of `ifindex` (opened in the calling thread's network namespace). */
  attach(ifindex: number, ifname: string): Attachment {
    if (this.closed) throw new BridgewatchError('ESTATE', 'use pcap backend: already closed');
    if (this.ports.has(ifindex)) this.detach(ifindex);
    const what = `attach pcap on ${ifname}`;
    if (!Number.isInteger(ifindex) || ifindex <= 0) throw new BridgewatchError('ENODEV', `${what}: invalid ifindex ${ifindex}`);
    const ns = this.netns.acquire();
    try {
      const link = ns.link(ifindex);
      if (!link) throw new BridgewatchError('ENODEV', `${what}: no device with ifindex ${ifindex}`, 19);
      const p: Port = { ifindex, ifname: link.name, ns, capture: undefined, gone: false, states: new StateHistory(), lastNs: 0n, failure: '' };
      p.states.observe(this.stateOf(ifindex), process.hrtime.bigint());
      // down: libpcap refuses it, and a down tap takes no frames (writes fail with EIO)
      if (link.up) this.open(p, link.name);
      this.ports.set(ifindex, p);
      return { ifindex, ifname: link.name, mode: 'pcap' };
    } catch (e) {
      this.netns.release(ns);
      throw e;
    }
  }

  detach(ifindex: number): void {
    const p = this.ports.get(ifindex);
    if (!p) return;
    this.read(); // what the kernel already handed us is not lost
    this.ports.delete(ifindex);
    this.closeCapture(p);
    this.netns.release(p.ns);
  }

  /** The device is gone; our socket is all there is to release. */
  forget(ifindex: number): void {
    this.detach(ifindex);
  }

  attachments(): Attachment[] {
    return [...this.ports.values()].map((p) => ({ ifindex: p.ifindex, ifname: p.ifname, mode: 'pcap' as const }));
  }

  macs(): MacEntry[] {
    this.read();
    return this.table.entries();
  }

  mac(ifindex: number, mac: Uint8Array): MacStats | undefined {
    this.read();
    return this.table.get(ifindex, mac);
  }

  deletePort(ifindex: number): number {
    return this.table.deletePort(ifindex);
  }

  /** The kernel's counters; drop_ringbuf adds event-queue overflows and libpcap ring drops. */
  stats(): Record<StatName, number> {
    this.read();
    let drops = this.closedDrops;
    for (const p of this.ports.values()) if (p.capture) drops += p.capture.drops();
    const c = this.table.counters;
    return { ...c, drop_ringbuf: c.drop_ringbuf + drops };
  }

  startEvents(onEvent: (ev: BpfEvent) => void, onBad: (size: number) => void): void {
    this.onEvent = onEvent;
    this.onBad = onBad;
  }

  /** As the kernel's bw_frames: a gARP/NA captured while its port could not forward, once its event was admitted. */
  startFrames(onFrame: (f: BpfFrame) => void): void {
    this.onKept = onFrame;
  }

  frameStats(): Record<FrameStatName, number> {
    return { ...this.frameCounters };
  }

  pollFrames(): void {
    this.read();
    this.deliverFrames();
  }

  poll(): void {
    this.read();
    this.deliverFrames();
    this.deliver();
  }

  /** Deliver what is pending, then close every capture. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.poll();
    this.closed = true;
    clearInterval(this.timer);
    for (const p of this.ports.values()) this.closeCapture(p);
    this.ports.clear();
    this.readiness.close();
    this.netns.closeAll();
    koffi.unregister(this.handler);
  }

  // ---- internals ----

  private stateOf(ifindex: number): number {
    return stateCode(this.o.portState(ifindex));
  }

  /** Open p's device by name in p's namespace; stays without a capture while it is down. */
  private open(p: Port, name: string): void {
    let cap: Capture;
    try {
      cap = p.ns.run(() => Capture.open(name, this.o));
    } catch (e) {
      if ((e as BridgewatchError).errno === ENETDOWN) return;
      throw e;
    }
    // opened by name: the name must still be our ifindex's (else retried at the next read)
    if (p.ns.link(p.ifindex)?.name !== name) {
      this.closedDrops += cap.close();
      return;
    }
    this.readiness.add(cap.fd);
    p.capture = cap;
  }

  private closeCapture(p: Port): void {
    if (!p.capture) return;
    this.readiness.remove(p.capture.fd);
    this.closedDrops += p.capture.close();
    p.capture = undefined;
  }

  private tick(): void {
    try {
      this.poll();
    } catch (e) {
      this.o.log?.warn({ err: (e as Error).message }, 'read captures failed');
    }
  }

  /** Read every port's waiting frames into the table and the event queue. */
  private read(): void {
    if (this.reading || this.closed) return;
    this.reading = true;
    try {
      this.clock.sync();
      const now = process.hrtime.bigint();
      const ready = this.readiness.ready();
      for (const p of this.ports.values()) {
        if (p.gone || (!p.capture && !this.reopen(p))) continue;
        // every port, every read: frames are judged by the observations around them
        p.states.observe(this.stateOf(p.ifindex), now);
        if (!ready.has(p.capture!.fd)) continue;
        this.current = p;
        try {
          p.capture!.read(READ_BUDGET, this.handler);
        } catch (e) {
          this.failed(p, e as Error);
        }
      }
    } finally {
      this.current = undefined;
      this.reading = false;
    }
  }

  /** A port without a capture: open it once its device is up. */
  private reopen(p: Port): boolean {
    const link = p.ns.link(p.ifindex);
    if (!link) {
      this.gone(p, 'no such device');
      return false;
    }
    if (!link.up) return false;
    try {
      this.open(p, link.name);
    } catch (e) {
      this.logOnce(p, (e as Error).message, 'open capture failed; retrying');
    }
    return p.capture !== undefined;
  }

  private failed(p: Port, err: Error): void {
    this.closeCapture(p);
    if (!p.ns.link(p.ifindex)) this.gone(p, err.message);
    else this.logOnce(p, err.message, 'capture failed; reopening');
  }

  /** Like the kernel removing a hook with its device: nothing more to read until forget(). */
  private gone(p: Port, cause: string): void {
    p.gone = true;
    this.captureLost++;
    this.o.log?.info({ port: p.ifname, ifindex: p.ifindex, err: cause }, 'capture ended: device gone');
  }

  private logOnce(p: Port, err: string, msg: string): void {
    if (p.failure === err) return;
    p.failure = err;
    this.o.log?.warn({ port: p.ifname, ifindex: p.ifindex, err }, msg);
  }

  private onFrame(hdr: unknown, bytes: unknown): void {
    const p = this.current;
    if (!p) return;
    try {
      this.record(p, hdr, bytes);
    } catch {
      this.onBad?.(PKTHDR_SIZE); // never expected; an exception must not unwind through libpcap
    }
  }

  private record(p: Port, hdr: unknown, bytes: unknown): void {
    const f = this.reader.read(hdr, bytes, p.capture!.nano);
    const ts = f.tsNs < p.lastNs ? p.lastNs : f.tsNs;
    p.lastNs = ts;
    const ev = this.table.record(f.data, { ifindex: p.ifindex, tsNs: ts, state: p.states.at(ts), vlan: f.vlan, len: f.len });
    if (!ev) return;
    if (this.queue.length >= this.o.maxQueuedEvents) this.table.counters.drop_ringbuf++;
    else this.queue.push(ev);
    if (!ev.forwarding && (ev.kind === 'garp' || ev.kind === 'na') && this.onKept) this.keep(ev, f.data, f.len);
  }

  /** The frame's bytes as TC sees them (outer tag in metadata), the first FRAME_BYTES of them. */
  private keep(ev: BpfEvent, data: Uint8Array, len: number): void {
    if (this.frames.length >= this.o.maxQueuedFrames) {
      this.frameCounters.drop_ringbuf++;
      return;
    }
    const bytes = Buffer.from(data.subarray(0, Math.min(len, FRAME_BYTES)));
    this.frames.push({ tsNs: ev.tsNs, ifindex: ev.ifindex, mac: ev.mac, kind: ev.kind, vlan: ev.vlan, len, data: bytes });
    this.frameCounters.kept++;
  }

  private deliverFrames(): void {
    if (!this.onKept || this.deliveringFrames) return;
    this.deliveringFrames = true;
    try {
      const q = this.frames;
      this.frames = [];
      for (const f of q) {
        try {
          this.onKept(f);
        } catch {
          this.onBad?.(EVENT.size);
        }
      }
    } finally {
      this.deliveringFrames = false;
    }
  }

  private deliver(): void {
    if (!this.onEvent || this.delivering) return;
    this.delivering = true;
    try {
      while (this.queue.length) {
        const q = this.queue;
        this.queue = [];
        for (const ev of q) {
          try {
            this.onEvent(ev);
          } catch {
            this.onBad?.(EVENT.size); // a consumer bug must not stop the captures
          }
        }
      }
    } finally {
      this.delivering = false;
    }
  }
}
