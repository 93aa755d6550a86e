// The bw_frames ring (announcements kept while their port could not forward) and its counters.
// Consumed like bw_events (events.ts): polled, each record carries its kernel timestamp.
import koffi from 'koffi';
import { BridgewatchError } from '../errors.js';
import { strerror } from '../sys/libc.js';
import { decodeFrame, FRAME, FRAME_STATS, type BpfFrame, type FrameStatName } from './abi.js';
import { libbpf, RingBufSampleFn } from './libbpf.js';

export interface KeptReaderOptions {
  intervalMs?: number;
  onFrame: (f: BpfFrame) => void;
  /** a record the decoder rejected, or one whose consumer threw */
  onBadRecord?: (size: number, err?: unknown) => void;
}

export class KeptFrameReader {
  private rb: unknown;
  private cb: koffi.IKoffiRegisteredCallback | undefined;
  private timer: NodeJS.Timeout | undefined;
  delivered = 0;

  constructor(
    private readonly mapFd: number,
    private readonly opts: KeptReaderOptions,
  ) {}

  /** Open the ring and drain it on a timer (port events also poll() it, before the heal). */
  start(): void {
    if (this.rb) return;
    this.cb = koffi.register(
      (_ctx: unknown, data: unknown, size: number | bigint) => {
        const n = Number(size);
        if (n < FRAME.size) {
          this.opts.onBadRecord?.(n);
          return 0;
        }
        try {
          const f = decodeFrame(Buffer.from(koffi.view(data, FRAME.size)));
          this.delivered++;
          this.opts.onFrame(f);
        } catch (e) {
          this.opts.onBadRecord?.(n, e);
        }
        return 0;
      },
      koffi.pointer(RingBufSampleFn),
    );
    this.rb = libbpf().ring_buffer_new(this.mapFd, this.cb, null, null);
    if (!this.rb) {
      koffi.unregister(this.cb);
      this.cb = undefined;
      throw new BridgewatchError('EKERNEL', `open ring buffer bw_frames: ${strerror(koffi.errno())}`);
    }
    // drained often enough that the latest frames are kept, not the ring's oldest
    this.timer = setInterval(() => this.poll(), this.opts.intervalMs ?? 100);
    this.timer.unref();
  }

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

/** bw_frame_stats summed over CPUs. */
export function readFrameStats(fd: number, ncpu: number): Record<FrameStatName, number> {
  const l = libbpf();
  const key = Buffer.alloc(4);
  const val = Buffer.alloc(8 * ncpu);
  const out = {} as Record<FrameStatName, number>;
  FRAME_STATS.forEach((name, i) => {
    key.writeUInt32LE(i);
    let sum = 0n;
    if ((l.map_lookup_elem(fd, key, val) as number) === 0) for (let cpu = 0; cpu < ncpu; cpu++) sum += val.readBigUInt64LE(8 * cpu);
    out[name] = Number(sum);
  });
  return out;
}
