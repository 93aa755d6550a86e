// The TypeScript twin of the BPF classifier (src/capture/classify.ts) on the kernel test's frame
// table; test/kernel/classify-twin.test.ts holds it against the real program.
import { describe, expect, it } from 'vitest';
import { KINDS } from '../../src/bpf/abi.js';
import { classify, type Classified } from '../../src/capture/classify.js';
import { CLASSIFIER_CASES, garp, GUEST } from '../helpers/classifier-cases.js';
import { qemuRarp, tagged } from '../helpers/frames.js';

const named = (c: Classified) => ({ kind: KINDS[c.kind], vlan: c.vlan });

describe('classify (TypeScript twin of the BPF classifier)', () => {
  it.each(CLASSIFIER_CASES)('$name -> $kind', (tc) => {
    expect(named(classify(tc.frame))).toEqual({ kind: tc.kind, vlan: tc.vlan ?? 0 });
  });

  it('keeps a VLAN id the kernel already took into metadata, as the TC hook does', () => {
    expect(named(classify(qemuRarp(GUEST), 42))).toEqual({ kind: 'rarp', vlan: 42 });
    // QinQ with the outer tag in metadata: the inner one stays in the frame and is skipped
    expect(named(classify(tagged(garp, { tpid: 0x8100, vid: 200 }), 100))).toEqual({ kind: 'garp', vlan: 100 });
    // three tags: metadata plus the two the program skips
    const three = tagged(qemuRarp(GUEST), { tpid: 0x8100, vid: 2 }, { tpid: 0x8100, vid: 3 });
    expect(named(classify(three, 1))).toEqual({ kind: 'rarp', vlan: 1 });
    expect(named(classify(tagged(three, { tpid: 0x88a8, vid: 1 })))).toEqual({ kind: 'other', vlan: 1 });
  });

  it('answers other for frames shorter than an Ethernet header', () => {
    for (let n = 0; n < 14; n++) expect(classify(qemuRarp(GUEST).subarray(0, n))).toEqual({ kind: 0, vlan: 0 });
  });
});
