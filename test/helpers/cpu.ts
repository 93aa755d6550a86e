// Pin the calling (main) thread to one CPU, so per-CPU state in BPF maps can be aimed at.
import koffi from 'koffi';
import { availableParallelism } from 'node:os';

const libc = koffi.load('libc.so.6');
const setaffinity = libc.func('int sched_setaffinity(int pid, size_t len, const uint8_t *mask)');
const getaffinity = libc.func('int sched_getaffinity(int pid, size_t len, _Out_ uint8_t *mask)');
const MASK_BYTES = 128;

export const cpuCount = (): number => availableParallelism();

/** Run fn with the main thread on `cpu` only, then restore its previous CPU set. */
export function onCpu<T>(cpu: number, fn: () => T): T {
  const prev = Buffer.alloc(MASK_BYTES);
  if ((getaffinity(0, MASK_BYTES, prev) as number) !== 0) throw new Error('sched_getaffinity failed');
  const mask = Buffer.alloc(MASK_BYTES);
  mask[cpu >> 3] |= 1 << (cpu & 7);
  if ((setaffinity(0, MASK_BYTES, mask) as number) !== 0) throw new Error(`pin to cpu ${cpu}: sched_setaffinity failed`);
  try {
    return fn();
  } finally {
    setaffinity(0, MASK_BYTES, prev);
  }
}
