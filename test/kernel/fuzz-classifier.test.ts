// Fuzzed frames through the real program (BPF_PROG_TEST_RUN on loopback, so every frame is "not
// forwarding" and counted), each checked against a reference decoder written here from the spec
// (docs: announcement kinds), not the product's TypeScript twin. Random frames, mutations of the
// known cases, truncations at every offset, VLAN stacks, ARP and IPv6 edge cases. A failure prints
// the seed and the frame; BRIDGEWATCH_FUZZ_SEED / BRIDGEWATCH_FUZZ_FRAMES replay or lengthen it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kind } from '../../src/bpf/abi.js';
import type { BpfCollection } from '../../src/bpf/loader.js';
import { CLASSIFIER_CASES } from '../helpers/classifier-cases.js';
import { closeAllBpf, loadBpf, missing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns } from '../helpers/netns.js';

const LO = 1;
const SEED = Number(process.env.BRIDGEWATCH_FUZZ_SEED ?? 0x5eed) >>> 0;
const FRAMES = Number(process.env.BRIDGEWATCH_FUZZ_FRAMES ?? 100_000);

type Expect = { kind: Kind; vlan: number } | 'bad_source' | 'too_short';

/** The spec, read independently: what the program must record for this frame. */
export function reference(f: Buffer): Expect {
  if (f.length < 14) return 'too_short';
  const src = f.subarray(6, 12);
  if (src[0] & 1 || src.every((b) => b === 0)) return 'bad_source';
  let proto = f.readUInt16BE(12);
  let off = 14;
  let vlan = 0;
  for (let tags = 0; tags < 2 && (proto === 0x8100 || proto === 0x88a8); tags++) {
    if (f.length < off + 4) return { kind: 'other', vlan };
    vlan ||= f.readUInt16BE(off) & 0x0fff; // the first non-zero VID: a priority tag (VID 0) names none
    proto = f.readUInt16BE(off + 2);
    off += 4;
  }
  const l3 = f.subarray(off);
  if (proto === 0x8035) return { kind: 'rarp', vlan };
  if (proto === 0x0835) return { kind: 'legacy', vlan };
  if (proto === 0x0806) {
    // sender IP == target IP in an IPv4-over-Ethernet request or reply
    const ok = l3.length >= 28 && l3.readUInt16BE(0) === 1 && l3.readUInt16BE(2) === 0x0800 && l3[4] === 6 && l3[5] === 4 && [1, 2].includes(l3.readUInt16BE(6));
    return { kind: ok && l3.subarray(14, 18).equals(l3.subarray(24, 28)) ? 'garp' : 'other', vlan };
  }
  if (proto === 0x86dd) {
    const allNodes = Buffer.from('ff020000000000000000000000000001', 'hex');
    const ok = l3.length >= 41 && l3[6] === 58 && l3.subarray(24, 40).equals(allNodes) && l3[40] === 136;
    return { kind: ok ? 'na' : 'other', vlan };
  }
  return { kind: 'other', vlan };
}

/** mulberry32: small, seeded, good enough to spread frames */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frames(seed: number, n: number): Buffer[] {
  const r = rng(seed);
  const int = (k: number) => Math.floor(r() * k);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const srcs = Array.from({ length: 16 }, (_, i) => Buffer.from([0x52, 0x54, 0x00, 0xf0, 0x0f, i]));
  const bases = CLASSIFIER_CASES.map((c) => c.frame);
  const out: Buffer[] = [];
  // every truncation of every known case, from 14 bytes up
  for (const b of bases) for (let len = 14; len <= Math.min(b.length, 80); len++) out.push(Buffer.from(b.subarray(0, len)));
  const withSrc = (f: Buffer): Buffer => {
    const roll = r();
    if (roll < 0.03) f.fill(0, 6, 12); // zero source
    else if (roll < 0.06) f[6] |= 1; // group source
    else srcs[int(srcs.length)].copy(f, 6);
    return f;
  };
  const tags = (): Buffer => {
    const parts: Buffer[] = [];
    for (let i = int(4); i > 0; i--) {
      const t = Buffer.alloc(4);
      t.writeUInt16BE(pick([0x8100, 0x88a8, 0x8100, 0x9100]), 0); // 0x9100: not a tag we skip
      t.writeUInt16BE(pick([0, 1, 42, 4095, int(65536)]), 2); // the TCI of the *previous* header's tag
      parts.push(t);
    }
    return Buffer.concat(parts);
  };
  const arpBody = (): Buffer => {
    const a = Buffer.alloc(28);
    a.writeUInt16BE(r() < 0.8 ? 1 : int(4), 0);
    a.writeUInt16BE(r() < 0.8 ? 0x0800 : int(65536), 2);
    a[4] = r() < 0.9 ? 6 : int(10);
    a[5] = r() < 0.9 ? 4 : int(10);
    a.writeUInt16BE(pick([1, 2, 1, 2, 3, 4, 0]), 6);
    const ip = [10, 0, 0, 1 + int(3)];
    Buffer.from(ip).copy(a, 14);
    Buffer.from(r() < 0.5 ? ip : [10, 0, 0, 1 + int(3)]).copy(a, 24);
    return a;
  };
  const ipv6Body = (): Buffer => {
    const h = Buffer.alloc(41 + int(40));
    h[0] = 0x60;
    h[6] = r() < 0.8 ? 58 : int(256);
    Buffer.from(r() < 0.7 ? 'ff020000000000000000000000000001' : 'ff020000000000000000000000000002', 'hex').copy(h, 24);
    if (r() < 0.1) h[24 + int(16)] ^= 1 << int(8);
    h[40] = pick([136, 135, 134, 136, int(256)]);
    return h;
  };
  while (out.length < n) {
    const roll = r();
    let f: Buffer;
    if (roll < 0.2) {
      f = Buffer.from(Array.from({ length: 14 + int(120) }, () => int(256))); // noise
    } else if (roll < 0.45) {
      f = Buffer.from(pick(bases)); // a known case, mutated
      for (let i = int(4); i > 0; i--) f[int(f.length)] = int(256);
    } else {
      const proto = pick([0x8035, 0x0835, 0x0806, 0x0806, 0x86dd, 0x86dd, 0x0800, int(65536)]);
      const body = proto === 0x0806 ? arpBody() : proto === 0x86dd ? ipv6Body() : Buffer.alloc(46 + int(40));
      if (proto === 0x0800) body[0] = 0x45;
      const t = tags();
      // a tag stack is TPID, TCI pairs; the last TPID position holds the real ethertype
      const head = Buffer.alloc(14);
      head.fill(0xff, 0, 6);
      let chain: Buffer;
      if (t.length) {
        const stack = Buffer.from(t);
        for (let i = 0; i + 4 <= stack.length; i += 4) {
          const next = i + 4 < stack.length ? stack.readUInt16BE(i + 4) : proto;
          stack.writeUInt16BE(stack.readUInt16BE(i + 2), i); // TCI
          stack.writeUInt16BE(next, i + 2);
        }
        head.writeUInt16BE(t.readUInt16BE(0), 12);
        chain = Buffer.concat([head, stack, body]);
      } else {
        head.writeUInt16BE(proto, 12);
        chain = Buffer.concat([head, body]);
      }
      f = r() < 0.15 ? chain.subarray(0, 14 + int(chain.length - 13)) : chain; // cut anywhere
    }
    out.push(withSrc(Buffer.from(f)));
  }
  return out.slice(0, n);
}

describe.skipIf(!!missing.bpf)('classifier fuzz: the kernel program against a reference decoder', () => {
  let ns: TestNetns;
  let bpf: BpfCollection;

  beforeAll(() => {
    ns = new TestNetns('fuzz');
    bpf = loadBpf(ns);
  });
  afterAll(() => {
    closeAllBpf();
    cleanupAll();
  });

  it(`${FRAMES} frames (seed ${SEED}): every kind, VLAN and bad source as the spec says`, () => {
    const list = frames(SEED, FRAMES);
    let badSource = bpf.stats().bad_source;
    const seen = new Map<string, number>();
    const refused: string[] = [];
    ns.run(() => {
      list.forEach((f, i) => {
        const want = reference(f);
        const where = `seed ${SEED}, frame #${i} (${f.length} bytes): ${f.toString('hex')}`;
        const src = f.subarray(6, 12);
        const before = want === 'bad_source' || want === 'too_short' ? undefined : bpf.mac(LO, src);
        try {
          bpf.testRun(f);
        } catch (e) {
          // the kernel refuses an untagged IPv4/IPv6 frame with a cut L3 header before the program runs
          const ethertype = f.readUInt16BE(12);
          const cutL3 = (ethertype === 0x0800 && f.length < 34) || (ethertype === 0x86dd && f.length < 54);
          if (!cutL3) throw new Error(`${where}: test run failed: ${(e as Error).message}`);
          refused.push(where);
          return;
        }
        if (want === 'bad_source') {
          const now = bpf.stats().bad_source;
          expect(now, `${where}: bad source counted`).toBe(badSource + 1);
          badSource = now;
          return;
        }
        if (want === 'too_short') throw new Error(`${where}: the kernel ran a frame shorter than an Ethernet header`);
        const after = bpf.mac(LO, src);
        expect(after, `${where}: recorded`).toBeDefined();
        expect((after!.kinds[want.kind] ?? 0) - (before?.kinds[want.kind] ?? 0), `${where}: kind ${want.kind}`).toBe(1);
        expect(after!.frames - (before?.frames ?? 0), `${where}: one frame`).toBe(1);
        expect(after!.vlan, `${where}: vlan`).toBe(want.vlan);
        seen.set(want.kind, (seen.get(want.kind) ?? 0) + 1);
      });
    });
    // the generator reached every kind, and most frames ran
    for (const k of ['rarp', 'garp', 'na', 'legacy', 'other']) expect(seen.get(k) ?? 0, k).toBeGreaterThan(FRAMES / 200);
    expect(refused.length).toBeLessThan(FRAMES / 20);
  }, 300_000);
});
