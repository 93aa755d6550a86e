// Which port state a captured frame met, judged by its kernel timestamp against what user
// space observed and when, never by when the frame happened to be read.
import { describe, expect, it } from 'vitest';
import { STATE_NOT_BRIDGE_PORT, STATE_UNKNOWN } from '../../src/bpf/abi.js';
import { StateHistory, stateCode } from '../../src/capture/state-history.js';

const NONE = STATE_NOT_BRIDGE_PORT;
const LEARNING = 2;
const FWD = 3;
const BLOCKING = 4;

function history(...obs: [number, bigint][]): StateHistory {
  const h = new StateHistory();
  for (const [s, t] of obs) h.observe(s, t);
  return h;
}

describe('stateCode', () => {
  it.each([
    [null, NONE],
    ['disabled', 0],
    ['listening', 1],
    ['learning', 2],
    ['forwarding', 3],
    ['blocking', 4],
    ['bogus', STATE_UNKNOWN],
  ] as const)('%s -> %d', (name, code) => expect(stateCode(name)).toBe(code));
});

describe('StateHistory', () => {
  it('answers the run a frame falls in, and the latest state for frames newer than any observation', () => {
    const h = history([NONE, 100n], [NONE, 200n], [FWD, 300n], [FWD, 400n]);
    expect([150n, 200n, 300n, 350n, 400n, 900n].map((t) => h.at(t))).toEqual([NONE, NONE, FWD, FWD, FWD, FWD]);
  });

  it('counts a frame between the last not-forwarding and the first forwarding observation as not forwarded', () => {
    // the frame was read only after the watcher knew the port was forwarding (the daemon reads
    // right after applying the netlink fact): its time says it came before that was known
    const h = history([NONE, 100n], [LEARNING, 200n], [FWD, 300n]);
    expect(h.at(250n)).toBe(LEARNING);
    expect(h.at(150n)).toBe(NONE);
  });

  it('counts a frame between forwarding and a later non-forwarding observation as not forwarded', () => {
    const h = history([FWD, 100n], [FWD, 200n], [BLOCKING, 300n], [NONE, 400n]);
    expect(h.at(250n)).toBe(BLOCKING);
    expect(h.at(350n)).toBe(BLOCKING);
    expect(h.at(450n)).toBe(NONE);
  });

  it('uses the oldest run for frames older than every observation, and NONE with no observation', () => {
    expect(history([LEARNING, 100n]).at(50n)).toBe(LEARNING);
    expect(new StateHistory().at(1n)).toBe(NONE);
  });

  it('keeps a bounded number of runs however often the state flaps', () => {
    const h = new StateHistory();
    for (let i = 0n; i < 10_000n; i++) h.observe(i % 2n ? FWD : LEARNING, i);
    expect((h as unknown as { runs: unknown[] }).runs.length).toBeLessThanOrEqual(8);
    expect(h.at(9_999n)).toBe(FWD);
    expect(h.at(9_998n)).toBe(LEARNING);
  });
});
