// libpcap stamps frames with the kernel's CLOCK_REALTIME; bridgewatch compares times on
// CLOCK_MONOTONIC (process.hrtime.bigint(), bpf_ktime_get_ns). The offset between the two is
// measured again before every read, so an NTP step can shift only frames already waiting.
import { c } from '../sys/libc.js';

const CLOCK_REALTIME = 0;
const ts = Buffer.alloc(16); // struct timespec on LP64

function realtimeNs(): bigint {
  c.clock_gettime(CLOCK_REALTIME, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

export class WallToMono {
  private offsetNs = 0n;

  constructor() {
    this.sync();
  }

  /** Measure realtime - monotonic, the realtime read bracketed by two monotonic ones. */
  sync(): void {
    const m0 = process.hrtime.bigint();
    const r = realtimeNs();
    const m1 = process.hrtime.bigint();
    this.offsetNs = r - (m0 + m1) / 2n;
  }

  /** CLOCK_MONOTONIC ns of a realtime stamp (seconds, nanoseconds). */
  mono(sec: bigint, nsec: bigint): bigint {
    return sec * 1_000_000_000n + nsec - this.offsetNs;
  }
}
