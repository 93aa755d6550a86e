import { describe, expect, it } from 'vitest';
import { firstFrameVerdict, isSilent, worst, type Verdict } from '../../src/tracker/verdict.js';

describe('worst', () => {
  const cases: Array<[Verdict[], Verdict]> = [
    [[], 'pending'],
    [['pending'], 'pending'],
    [['on_time'], 'on_time'],
    [['pending', 'on_time'], 'on_time'],
    [['on_time', 'silent'], 'silent'],
    [['silent', 'on_time'], 'silent'],
    [['late', 'silent', 'on_time'], 'late'],
    [['on_time', 'late', 'pending'], 'late'],
  ];
  it.each(cases)('%j -> %s', (vs, want) => {
    expect(worst(vs)).toBe(want);
  });

  it('takes any iterable', () => {
    expect(worst(new Set<Verdict>(['on_time', 'late']))).toBe('late');
  });
});

describe('firstFrameVerdict', () => {
  it.each([
    [true, 'on_time'],
    [false, 'late'],
  ] as const)('forwarding=%s -> %s', (fwd, want) => {
    expect(firstFrameVerdict(fwd)).toBe(want);
  });
});

describe('isSilent', () => {
  const s = 1_000_000_000n; // 1 s in ns
  const base = { live: true, forwardingSinceNs: 10n * s, nowNs: 20n * s, silentAfterNs: 10n * s, announcements: 0 };
  const cases: Array<[string, Partial<typeof base> & { forwardingSinceNs?: bigint | undefined }, boolean]> = [
    ['forwarding exactly silentAfter, no announcement', {}, true],
    ['one ns short of silentAfter', { nowNs: 20n * s - 1n }, false],
    ['well past silentAfter', { nowNs: 100n * s }, true],
    ['announced', { announcements: 1 }, false],
    ['not live (found at start)', { live: false }, false],
    ['not forwarding', { forwardingSinceNs: undefined }, false],
  ];
  it.each(cases)('%s -> %s', (_name, over, want) => {
    expect(isSilent({ ...base, ...over })).toBe(want);
  });
});
