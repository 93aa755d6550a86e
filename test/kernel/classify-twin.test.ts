// The TypeScript twin of the BPF classifier (src/capture/classify.ts) against the real program
// (BPF_PROG_TEST_RUN): the classifier's frame table, their prefixes and a few thousand generated
// variants, asserting the twins agree on kind and VLAN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KINDS } from '../../src/bpf/abi.js';
import { BpfCollection } from '../../src/bpf/loader.js';
import { classify, type Classified } from '../../src/capture/classify.js';
import { CLASSIFIER_CASES, garp, GUEST, na } from '../helpers/classifier-cases.js';
import { BROADCAST, ether, qemuRarp, tagged } from '../helpers/frames.js';
import { missing, requires } from '../helpers/kernel.js';
import { cleanupAll, tempStateDir } from '../helpers/netns.js';

const LO = 1; // test runs happen on the loopback
const EINVAL = 22;

let bpf: BpfCollection | undefined;
beforeAll(() => {
  if (!missing.bpf) bpf = BpfCollection.load({ stateDir: tempStateDir() });
});
afterAll(() => {
  bpf?.close();
  cleanupAll();
});

/** What the kernel program says about one frame; undefined when test_run refuses it. */
function kernel(b: BpfCollection, frame: Buffer): Classified | undefined {
  try {
    b.testRun(frame);
  } catch (e) {
    if ((e as { errno?: number }).errno === EINVAL) return undefined;
    throw e;
  }
  const e = b.mac(LO, frame.subarray(6, 12));
  b.deletePort(LO);
  if (!e) throw new Error(`no entry for ${frame.toString('hex')}`);
  const kinds = KINDS.filter((k) => e.kinds[k] === 1);
  expect(kinds, frame.toString('hex')).toHaveLength(1);
  return { kind: KINDS.indexOf(kinds[0]), vlan: e.vlan };
}

// mulberry32: a fixed seed, so a failure names a frame that reproduces
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Frames near every decision of the classifier: tags, ethertypes, ARP and IPv6 fields, cuts. */
function variants(n: number): Buffer[] {
  const r = rng(0xb3d0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const body = Buffer.from(pick([garp, na, qemuRarp(GUEST), garp]).subarray(14));
    // mutate a field the classifier looks at
    const at = pick([0, 1, 2, 3, 4, 5, 6, 7, 14, 17, 24, 27, 39, 40, 41]);
    if (r() < 0.6 && at < body.length) body[at] = pick([0, 1, 2, 4, 6, 0x3a, 0x88, 0xff, Math.floor(r() * 256)]);
    const type = pick([0x0806, 0x86dd, 0x8035, 0x0835, 0x0800, 0x8100, 0x88a8, Math.floor(r() * 0x10000)]);
    let f = ether(BROADCAST, GUEST, type, body);
    const tags = pick([0, 0, 1, 2, 3]);
    const tpids = Array.from({ length: tags }, () => ({ tpid: pick([0x8100, 0x88a8]), vid: Math.floor(r() * 4096) }));
    if (tags) f = tagged(f, ...tpids);
    if (r() < 0.4) f = f.subarray(0, 14 + Math.floor(r() * (f.length - 13)));
    out.push(f);
  }
  return out;
}

const named = (c: Classified) => ({ kind: KINDS[c.kind], vlan: c.vlan });

describe('classify agrees with the kernel program (BPF_PROG_TEST_RUN)', () => {
  it.for(CLASSIFIER_CASES)('$name', (tc, ctx) => {
    requires(ctx, 'bpf');
    expect(named(classify(tc.frame))).toEqual(named(kernel(bpf!, tc.frame)!));
  });

  it('on every prefix of every case frame', (ctx) => {
    requires(ctx, 'bpf');
    let compared = 0;
    for (const tc of CLASSIFIER_CASES) {
      for (let n = 14; n <= Math.min(tc.frame.length, 100); n++) {
        const f = tc.frame.subarray(0, n);
        const k = kernel(bpf!, f);
        if (!k) continue; // the kernel refuses untagged IPv4/IPv6 with a cut L3 header
        expect(named(classify(f)), `${tc.name}, first ${n} bytes`).toEqual(named(k));
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(500);
  });

  it('on 3000 generated variants of tags, ethertypes, ARP and IPv6 fields and cuts', (ctx) => {
    requires(ctx, 'bpf');
    const seen = new Set<string>();
    let compared = 0;
    for (const f of variants(3000)) {
      const k = kernel(bpf!, f);
      if (!k) continue;
      expect(named(classify(f)), f.toString('hex')).toEqual(named(k));
      seen.add(KINDS[k.kind]);
      compared++;
    }
    expect(compared).toBeGreaterThan(2500);
    expect([...seen].sort()).toEqual([...KINDS].sort()); // the variants reach every kind
  });
});
