// The bounded store of the guests' own lost gARP/NA frames, and the check that only a frame
// announcing its own Ethernet source is ever kept.
import { describe, expect, it } from 'vitest';
import type { BpfFrame } from '../../src/bpf/abi.js';
import { checkAnnouncement, ReplayStore } from '../../src/announce/replay.js';
import { arp, mac, neighbour, pad60, tagged } from '../helpers/frames.js';

const M = '52:54:00:12:34:56';
const G = mac(M);
const garp = (ip = '192.0.2.10', src = G) => arp(src, 1, ip, ip);
const na = (ip = 'fe80::5054:ff:fe12:3456', src = G) => neighbour(src, ip);

const frame = (data: Buffer, o: Partial<BpfFrame> = {}): BpfFrame => ({
  tsNs: 1n,
  ifindex: 7,
  mac: M,
  kind: data.readUInt16BE(12) === 0x86dd ? 'na' : 'garp',
  vlan: 0,
  len: data.length,
  data,
  ...o,
});

/** A copy of `f` with bytes [at, at + b.length) replaced. */
const patch = (f: Buffer, at: number, b: Buffer): Buffer => {
  const out = Buffer.from(f);
  b.copy(out, at);
  return out;
};

describe('checkAnnouncement', () => {
  it('accepts a gratuitous ARP request and reply, padded or not, and an unsolicited NA with or without its option', () => {
    const noOption = (() => {
      const f = na();
      const short = Buffer.from(f.subarray(0, 14 + 40 + 24));
      short.writeUInt16BE(24, 18); // payload length without the option
      return short;
    })();
    for (const d of [garp(), arp(G, 2, '192.0.2.10', '192.0.2.10'), garp().subarray(0, 42), na(), pad60(na()), noOption])
      expect(checkAnnouncement(frame(d)), d.toString('hex')).toEqual({ ok: true });
  });

  it('refuses a gARP whose sender hardware address is not the Ethernet source (spoofed)', () => {
    const other = mac('52:54:00:66:66:66');
    expect(checkAnnouncement(frame(patch(garp(), 22, other)))).toEqual({ ok: false, reason: 'spoofed' });
  });

  it("refuses an NA whose target link-layer address option is not the Ethernet source, or that carries another's source option (spoofed)", () => {
    const other = mac('52:54:00:66:66:66');
    const f = na();
    const opt = 14 + 40 + 24; // the option after the NA header
    expect(checkAnnouncement(frame(patch(f, opt + 2, other)))).toEqual({ ok: false, reason: 'spoofed' });
    expect(checkAnnouncement(frame(patch(f, opt, Buffer.from([1]))))).toEqual({ ok: true }); // type 1, still ours
    const two = Buffer.concat([f, Buffer.from([1, 1]), other]);
    two.writeUInt16BE(40, 18);
    expect(checkAnnouncement(frame(two))).toEqual({ ok: false, reason: 'spoofed' });
  });

  it('refuses a cut frame (truncated), a tagged one (tagged), and what is no gARP/NA after all (malformed)', () => {
    const long = Buffer.concat([garp(), Buffer.alloc(200)]);
    expect(checkAnnouncement(frame(long.subarray(0, 128), { len: long.length }))).toEqual({ ok: false, reason: 'truncated' });
    expect(checkAnnouncement(frame(garp(), { vlan: 42 }))).toEqual({ ok: false, reason: 'tagged' });
    expect(checkAnnouncement(frame(tagged(garp(), { tpid: 0x8100, vid: 42 }), { kind: 'garp' }))).toEqual({ ok: false, reason: 'tagged' });
    expect(checkAnnouncement(frame(arp(G, 1, '192.0.2.10', '192.0.2.1')))).toEqual({ ok: false, reason: 'malformed' });
    expect(checkAnnouncement(frame(neighbour(G, 'fe80::1', { dst: 'fe80::2' })))).toEqual({ ok: false, reason: 'malformed' });
    expect(checkAnnouncement(frame(neighbour(G, 'fe80::1', { type: 135 }), { kind: 'na' }))).toEqual({ ok: false, reason: 'malformed' });
    expect(checkAnnouncement(frame(garp(), { kind: 'na' }))).toEqual({ ok: false, reason: 'malformed' });
    const zeroOpt = patch(na(), 14 + 40 + 25, Buffer.from([0]));
    expect(checkAnnouncement(frame(zeroOpt))).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('ReplayStore', () => {
  it('keeps a gARP and an NA for {port, MAC} and hands them over once, gARPs first', () => {
    const s = new ReplayStore();
    expect(s.keep(frame(na(), { tsNs: 1n }))).toBe('kept');
    expect(s.keep(frame(garp(), { tsNs: 2n }))).toBe('kept');
    expect(s.peek(7, M).map((f) => f.kind)).toEqual(['garp', 'na']);
    const got = s.take(7, M);
    expect(got.map((f) => [f.kind, f.data.toString('hex')])).toEqual([
      ['garp', garp().toString('hex')],
      ['na', na().toString('hex')],
    ]);
    expect(s.take(7, M)).toEqual([]);
    expect(s.size).toBe(0);
  });

  it('never hands one MAC or port the frames of another', () => {
    const s = new ReplayStore();
    s.keep(frame(garp()));
    expect(s.take(7, '52:54:00:12:34:57')).toEqual([]);
    expect(s.take(8, M)).toEqual([]);
    expect(s.take(7, M)).toHaveLength(1);
  });

  it('keeps the latest two distinct frames per kind; the same bytes again are one frame, now the latest', () => {
    const s = new ReplayStore();
    expect(s.keep(frame(garp('192.0.2.1')))).toBe('kept');
    expect(s.keep(frame(garp('192.0.2.2')))).toBe('kept');
    expect(s.keep(frame(garp('192.0.2.1'), { tsNs: 5n }))).toBe('duplicate');
    expect(s.keep(frame(garp('192.0.2.3')))).toBe('kept'); // pushes out .2, the oldest now
    expect(s.keep(frame(na('fe80::1')))).toBe('kept');
    const ips = s.peek(7, M).map((f) => (f.kind === 'garp' ? [...f.data.subarray(28, 32)].join('.') : 'na'));
    expect(ips).toEqual(['192.0.2.1', '192.0.2.3', 'na']);
    expect(s.kept).toBe(4);
  });

  it('refuses and counts what may not be replayed; a frame whose Ethernet source is not its MAC is spoofed', () => {
    const s = new ReplayStore();
    const other = mac('52:54:00:66:66:66');
    expect(s.keep(frame(patch(garp(), 22, other)))).toBe('spoofed');
    expect(s.keep(frame(garp('192.0.2.10', other)))).toBe('spoofed'); // keyed as M, sent from another source
    expect(s.keep(frame(garp(), { vlan: 5 }))).toBe('tagged');
    expect(s.keep(frame(garp().subarray(0, 40), { len: 60 }))).toBe('truncated');
    expect(s.keep(frame(garp(), { kind: 'rarp' }))).toBe('malformed');
    expect(s.notKept).toMatchObject({ spoofed: 2, tagged: 1, truncated: 1, malformed: 1, evicted: 0 });
    expect(s.size).toBe(0);
  });

  it('is bounded: past maxMacs the {port, MAC} updated longest ago goes, its frames counted as evicted', () => {
    const s = new ReplayStore({ maxMacs: 3 });
    const macs = ['52:54:00:00:00:01', '52:54:00:00:00:02', '52:54:00:00:00:03', '52:54:00:00:00:04'];
    const f = (m: string, ip: string) => frame(garp(ip, mac(m)), { mac: m });
    s.keep(f(macs[0], '10.0.0.1'));
    s.keep(f(macs[0], '10.0.0.2'));
    s.keep(f(macs[1], '10.0.0.3'));
    s.keep(f(macs[2], '10.0.0.4'));
    s.keep(f(macs[0], '10.0.0.5')); // macs[0] is fresh again: macs[1] is the oldest
    s.keep(f(macs[3], '10.0.0.6'));
    expect(s.size).toBe(3);
    expect(s.peek(7, macs[1])).toEqual([]);
    expect(s.notKept.evicted).toBe(1);
    for (let i = 0; i < 1000; i++) s.keep(f(`52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, '10.0.1.1'));
    expect(s.size).toBe(3);
    expect(s.bytes).toBeLessThanOrEqual(3 * 2 * 2 * 128);
  });

  it("forgets a deleted port's frames, and only that port's", () => {
    const s = new ReplayStore();
    s.keep(frame(garp(), { ifindex: 7 }));
    s.keep(frame(na(), { ifindex: 7 }));
    s.keep(frame(garp(), { ifindex: 9 }));
    expect(s.forgetPort(7)).toBe(1);
    expect(s.peek(7, M)).toEqual([]);
    expect(s.peek(9, M)).toHaveLength(1);
  });
});
