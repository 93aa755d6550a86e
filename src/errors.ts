// Typed errors that read `verb object: cause` (cilium/ebpf style); codes are stable names.
import { ENOTSUPP, ERRNO } from './sys/errno.js';

export type ErrorCode =
  | 'ENOTSUP' // kernel or library lacks a feature
  | 'ENODEV' // no such device
  | 'ELAYOUT' // kernel/user contract mismatch
  | 'EKERNEL' // a syscall or libbpf call failed
  | 'ECONFIG' // invalid configuration
  | 'ESTATE'; // used in the wrong lifecycle state

export class BridgewatchError extends Error {
  readonly code: ErrorCode;
  readonly errno: number | undefined;

  constructor(code: ErrorCode, message: string, errno?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BridgewatchError';
    this.code = code;
    this.errno = errno;
  }
}

/** `verb object: cause` from an errno, e.g. `attach tc ingress on tap3: Operation not permitted`. */
export function errnoError(what: string, errno: number, describe: (e: number) => string): BridgewatchError {
  const code: ErrorCode = errno === ERRNO.ENODEV || errno === ERRNO.ENXIO ? 'ENODEV' : errno === ERRNO.EOPNOTSUPP || errno === ENOTSUPP ? 'ENOTSUP' : 'EKERNEL';
  return new BridgewatchError(code, `${what}: ${describe(errno)}`, errno);
}
