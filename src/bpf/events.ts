// Consumes the bw_events ring buffer on a short timer: ring_buffer__consume never blocks, and
// every event carries its kernel timestamp, so polling latency costs no accuracy.
import koffi from 'koffi';
import { BridgewatchError } from '../errors.js';
import { strerror } from '../sys/libc.js';
import { decodeEvent, EVENT, type BpfEvent } from './abi.js';
import { libbpf, RingBufSampleFn } from './libbpf.js';

export interface EventReaderOptions {
  intervalMs?: number;
  onEvent: (ev: BpfEvent) => void;
  /** a record the decoder rejected, or one whose consumer threw (counted and logged, not thrown) */
  onBadRecord?: (size: number, err?: unknown) => void;
}

export class EventReader {
  private rb: unknown;
  private cb: koffi.IKoffiRegisteredCallback | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly opts: EventReaderOptions;
  private readonly mapFd: number;
  delivered = 0;

  constructor(mapFd: number, opts: EventReaderOptions) {
    this.mapFd = mapFd;
    this.opts = opts;
  }

  start(): void {
    if (this.rb) return;
    const l = libbpf();
    this.cb = koffi.register(
      (_ctx: unknown, data: unknown, size: number | bigint) => {
        const n = Number(size);
        if (n < EVENT.size) {
          this.opts.onBadRecord?.(n);
          return 0;
        }
        const buf = Buffer.from(koffi.view(data, EVENT.size)); // copies out of the ring
        this.delivered++;
        try {
          this.opts.onEvent(decodeEvent(buf));
        } catch (e) {
          this.opts.onBadRecord?.(n, e); // a consumer bug must not stop the ring
        }
        return 0;
      },
      koffi.pointer(RingBufSampleFn),
    );
    this.rb = l.ring_buffer_new(this.mapFd, this.cb, null, null);
    if (!this.rb) {
      koffi.unregister(this.cb);
      this.cb = undefined;
      throw new BridgewatchError('EKERNEL', `open ring buffer bw_events: ${strerror(koffi.errno())}`);
    }
    this.timer = setInterval(() => this.poll(), this.opts.intervalMs ?? 20);
    this.timer.unref();
  }

  /** Drain what is there now; returns the number of records consumed. */
  poll(): number {
    if (!this.rb) return 0;
    const n = libbpf().ring_buffer_consume(this.rb) as number;
    return n < 0 ? 0 : n;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.rb) {
      this.poll();
      libbpf().ring_buffer_free(this.rb);
      this.rb = undefined;
    }
    if (this.cb) koffi.unregister(this.cb);
    this.cb = undefined;
  }
}
