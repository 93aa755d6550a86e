// errno numbers by name, and names for messages (Linux values, from node's own table).
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';

export const ERRNO = constants.errno;
/** the kernel's internal "not supported" that leaks out of BPF syscalls (not in libc's table) */
export const ENOTSUPP = 524;

/** `ENOENT` for 2; `errno 4095` when the platform has no name for it. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `errno ${errno}`;
  }
}
