// QEMU's self-announce timer, as pure functions: when each round of RARP goes out.
//
// What QEMU does (qemu/qemu net/announce.c, the same in 7.2 and master):
//   qemu_announce_self()       timer->round = rounds; sends round 1 at once (qemu_announce_self_once)
//   qemu_announce_self_once()  sends to every NIC, then `if (--timer->round) timer_step() else del`
//   qemu_announce_timer_step() delay = initial + (rounds - round - 1) * step, where `round` is the
//                              count still to send (already decremented); if the delay is < 0 or
//                              > max it becomes max; timer_mod(now_ms(QEMU_CLOCK_REALTIME) + delay)
// So the k-th gap (k = 1 .. rounds-1) is min(initial + (k - 1) * step, max): the first gap is
// `initial`, each later one `step` longer, until `max` caps it. With the defaults from
// migration/options.c (DEFAULT_MIGRATE_ANNOUNCE_INITIAL 50, _MAX 550, _ROUNDS 5, _STEP 100):
//   gaps 50, 150, 250, 350 ms -> rounds at 0, 50, 200, 450, 800 ms (max never bites; with
//   rounds 7 the gaps go on 450, 550 (capped), offsets ... 1250, 1800).
// Measured on QEMU 7.2.22 (test/fixtures/qemu-rarp.pcap, destination tap after a TCG migration):
//   0, 49.9, 199.9, 450.1, 799.9 ms. QEMU re-arms relative to "now" after each round, so its
//   offsets drift by its own latency per round; its ms clock truncation can make a gap ~0.1 ms short.
//
// Parameter names are QEMU's `announce-self` (qapi/net.json AnnounceParameters) names; the same
// values are the migration parameters announce-initial/-max/-rounds/-step. Ranges: QEMU's
// migrate_params_check() accepts initial 0..100000, max 0..100000, rounds 0..1000 (0 sends
// nothing) and step 1..10000 (its message says "between 0 and 10000" but the code rejects 0).
// We accept initial and max from 1 (no zero-gap bursts), rounds from 1 (turning announcing off is
// `--announce=off`, not rounds 0) and step from 0 (constant gaps; harmless).

import { BridgewatchError } from '../errors.js';

export interface AnnounceParameters {
  /** ms before the second round */
  initial: number;
  /** ms: no gap is longer than this */
  max: number;
  /** how many rounds in all, the first one sent immediately */
  rounds: number;
  /** ms added to the gap after each round */
  step: number;
}

export const ANNOUNCE_DEFAULTS: Readonly<AnnounceParameters> = Object.freeze({ initial: 50, max: 550, rounds: 5, step: 100 });

/** Inclusive [min, max] per parameter. */
export const ANNOUNCE_LIMITS: Readonly<Record<keyof AnnounceParameters, readonly [number, number]>> = Object.freeze({
  initial: [1, 100_000],
  max: [1, 100_000],
  rounds: [1, 1000],
  step: [0, 10_000],
});

const NAMES = ['initial', 'max', 'rounds', 'step'] as const;

/**
 * Defaults overlaid with `p`, each value checked: an integer within ANNOUNCE_LIMITS. Errors are
 * ECONFIG and name the field as `${prefix}${name}` (default `announce-step`, QEMU's migration
 * parameter spelling). Unknown keys are refused too, so a typo never silently means a default.
 */
export function validateAnnounceParameters(p: Readonly<Record<string, unknown>> = {}, prefix = 'announce-'): AnnounceParameters {
  for (const k of Object.keys(p)) {
    if (!(NAMES as readonly string[]).includes(k)) throw new BridgewatchError('ECONFIG', `${prefix}${k}: unknown announce parameter (expected one of ${NAMES.join(', ')})`);
  }
  const out = { ...ANNOUNCE_DEFAULTS };
  for (const name of NAMES) {
    const v = p[name];
    if (v === undefined) continue;
    const [lo, hi] = ANNOUNCE_LIMITS[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
      const unit = name === 'rounds' ? '' : ' (ms)';
      throw new BridgewatchError('ECONFIG', `${prefix}${name}: expected an integer from ${lo} to ${hi}${unit}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
    }
    out[name] = v;
  }
  return out;
}

/**
 * qemu_announce_timer_step: the gap before the next round when `remaining` rounds are still to
 * be sent (QEMU's decremented timer->round, 1 .. rounds-1).
 */
export function announceDelay(p: AnnounceParameters, remaining: number): number {
  const d = p.initial + (p.rounds - remaining - 1) * p.step;
  return d < 0 || d > p.max ? p.max : d;
}

/** The rounds-1 gaps between consecutive rounds, in ms. */
export function announceDelays(p: AnnounceParameters): number[] {
  const out: number[] = [];
  for (let remaining = p.rounds - 1; remaining >= 1; remaining--) out.push(announceDelay(p, remaining));
  return out;
}

/** When each round goes out, in ms after the first: [0, 50, 200, 450, 800] for the defaults. */
export function announceOffsets(p: AnnounceParameters): number[] {
  const out = [0];
  for (const d of announceDelays(p)) out.push(out[out.length - 1] + d);
  return out;
}
