// Waiting that a Ctrl-C can interrupt: every wait takes the lab's AbortSignal.
import { setTimeout as sleep } from 'node:timers/promises';
import { BridgewatchError } from '../errors.js';

export const now = (): number => performance.now();

/** Sleep `ms`; rejects with an AbortError when the lab is interrupted. */
export const pause = (ms: number, signal: AbortSignal): Promise<void> => sleep(Math.max(0, ms), undefined, { signal });

/**
 * Poll `cond` every `everyMs` (calling `tick` each time, for progress) until it holds; false
 * once `timeoutMs` passed. Interrupted like pause().
 */
export async function until(cond: () => boolean, timeoutMs: number, signal: AbortSignal, tick?: () => void, everyMs = 100): Promise<boolean> {
  const end = now() + timeoutMs;
  for (;;) {
    tick?.();
    if (cond()) return true;
    if (now() >= end) return false;
    await pause(Math.min(everyMs, end - now()), signal);
  }
}

/** until() that throws `verb object: cause` on timeout. */
export async function mustReach(what: string, cond: () => boolean, timeoutMs: number, signal: AbortSignal, tick?: () => void): Promise<void> {
  if (!(await until(cond, timeoutMs, signal, tick))) throw new BridgewatchError('EKERNEL', `${what}: not within ${timeoutMs / 1000} s`);
}
