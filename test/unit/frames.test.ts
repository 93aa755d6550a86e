import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assertUnicastMac, isUnicastMac, rarpFrame, toMac, withVlanTag } from '../../src/announce/frames.js';
import {
  ANNOUNCE_DEFAULTS,
  announceDelay,
  announceDelays,
  announceOffsets,
  validateAnnounceParameters,
  type AnnounceParameters,
} from '../../src/announce/schedule.js';
import { BridgewatchError } from '../../src/errors.js';
import { offsetsMs, readPcap } from '../fixtures/pcap.js';

const MAC = '52:54:00:12:34:56';
const MAC_BYTES = Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const FIXTURE = fileURLToPath(new URL('../fixtures/qemu-rarp.pcap', import.meta.url));

describe('rarpFrame', () => {
  const f = rarpFrame(MAC);

  it('is 60 bytes laid out as QEMU announce_self_create', () => {
    expect(f.length).toBe(60);
    expect(f.subarray(0, 6)).toEqual(Buffer.alloc(6, 0xff)); // dst broadcast
    expect(f.subarray(6, 12)).toEqual(MAC_BYTES); // src = guest
    expect(f.readUInt16BE(12)).toBe(0x8035); // RARP
    expect(f.readUInt16BE(14)).toBe(1); // htype Ethernet
    expect(f.readUInt16BE(16)).toBe(0x0800); // ptype IPv4
    expect(f[18]).toBe(6); // hlen
    expect(f[19]).toBe(4); // plen
    expect(f.readUInt16BE(20)).toBe(3); // reverse request
    expect(f.subarray(22, 28)).toEqual(MAC_BYTES); // sha
    expect(f.subarray(28, 32)).toEqual(Buffer.alloc(4)); // spa 0.0.0.0
    expect(f.subarray(32, 38)).toEqual(MAC_BYTES); // tha
    expect(f.subarray(38, 42)).toEqual(Buffer.alloc(4)); // tpa 0.0.0.0
    expect(f.subarray(42)).toEqual(Buffer.alloc(18)); // padding
  });

  it('is the same from a Buffer and from any spelling of the string', () => {
    expect(rarpFrame(MAC_BYTES)).toEqual(f);
    expect(rarpFrame('52-54-00-12-34-56')).toEqual(f);
    expect(rarpFrame('52:54:00:12:34:56'.toUpperCase())).toEqual(f);
  });

  it('equals, byte for byte, each of the 5 frames a real QEMU destination sent (fixture)', () => {
    const pcap = readPcap(FIXTURE);
    expect(pcap.linktype).toBe(1); // Ethernet
    expect(pcap.packets).toHaveLength(5);
    for (const p of pcap.packets) {
      expect(p.origLen).toBe(60);
      expect(p.data.toString('hex')).toBe(f.toString('hex'));
    }
  });

  it('the fixture was sent on QEMU default schedule, as announceOffsets computes it (±2 ms)', () => {
    const measured = offsetsMs(readPcap(FIXTURE).packets);
    const computed = announceOffsets(ANNOUNCE_DEFAULTS);
    expect(computed).toEqual([0, 50, 200, 450, 800]);
    measured.forEach((m, i) => expect(Math.abs(m - computed[i])).toBeLessThanOrEqual(2));
  });

  it.each([
    ['01:00:5e:00:00:01', /announce mac 01:00:5e:00:00:01: group \(multicast\) address/],
    ['33:33:00:00:00:01', /group \(multicast\) address/],
    ['ff:ff:ff:ff:ff:ff', /announce mac ff:ff:ff:ff:ff:ff: group \(broadcast\) address/],
    ['00:00:00:00:00:00', /announce mac 00:00:00:00:00:00: all-zero address/],
    ['52:54:00:12:34', /parse mac "52:54:00:12:34": expected six hex octets/],
    ['not a mac', /parse mac/],
  ])('refuses %s', (mac, msg) => {
    expect(() => rarpFrame(mac)).toThrow(msg);
    try {
      rarpFrame(mac);
    } catch (e) {
      expect(e).toBeInstanceOf(BridgewatchError);
      expect((e as BridgewatchError).code).toBe('ECONFIG');
    }
  });

  it('refuses a Buffer that is not 6 bytes', () => {
    expect(() => rarpFrame(Buffer.alloc(5, 2))).toThrow('parse mac: expected 6 bytes, got 5');
  });
});

describe('MAC helpers', () => {
  it.each([
    ['52:54:00:12:34:56', true],
    ['02:00:00:00:00:01', true], // locally administered unicast
    ['00:00:00:00:00:01', true],
    ['fe:ff:ff:ff:ff:ff', true],
    ['00:00:00:00:00:00', false],
    ['01:00:00:00:00:00', false],
    ['01:80:c2:00:00:00', false], // STP
    ['ff:ff:ff:ff:ff:ff', false],
  ])('isUnicastMac(%s) = %s', (mac, want) => {
    expect(isUnicastMac(mac)).toBe(want);
    expect(isUnicastMac(toMac(mac))).toBe(want);
  });

  it('isUnicastMac is false, not an exception, for what is not a MAC', () => {
    expect(isUnicastMac('nope')).toBe(false);
    expect(isUnicastMac(Buffer.alloc(7, 2))).toBe(false);
  });

  it('assertUnicastMac returns a copy of the 6 bytes', () => {
    const b = assertUnicastMac(MAC_BYTES);
    expect(b).toEqual(MAC_BYTES);
    expect(b).not.toBe(MAC_BYTES);
  });
});

describe('withVlanTag', () => {
  const f = rarpFrame(MAC);

  it('inserts an 802.1Q tag after the source MAC and keeps the rest', () => {
    const t = withVlanTag(f, 100);
    expect(t.length).toBe(64);
    expect(t.subarray(0, 12)).toEqual(f.subarray(0, 12));
    expect(t.readUInt16BE(12)).toBe(0x8100);
    expect(t.readUInt16BE(14)).toBe(100); // pcp 0, dei 0, vid 100
    expect(t.subarray(16)).toEqual(f.subarray(12));
    expect(f.length).toBe(60); // the input is not modified
  });

  it('untagging gives back exactly QEMU frame', () => {
    const t = withVlanTag(f, 4094);
    expect(Buffer.concat([t.subarray(0, 12), t.subarray(16)])).toEqual(f);
  });

  it('writes 802.1ad and priority, and stacks for QinQ', () => {
    const t = withVlanTag(f, 0xabc, 0x88a8, 5);
    expect(t.subarray(12, 16).toString('hex')).toBe('88a8' + ((5 << 13) | 0xabc).toString(16).padStart(4, '0'));
    const qinq = withVlanTag(withVlanTag(f, 100), 200, 0x88a8);
    expect(qinq.length).toBe(68);
    expect(qinq.subarray(12, 20).toString('hex')).toBe('88a800c881000064');
    expect(qinq.readUInt16BE(20)).toBe(0x8035);
  });

  it.each([
    [0, 0x8100, 0, /vlan id 0 is not an integer from 1 to 4094/],
    [4095, 0x8100, 0, /vlan id 4095/],
    [1.5, 0x8100, 0, /vlan id 1.5/],
    [10, 0x0800, 0, /tpid 0x800 is not 0x8100, 0x88a8 or 0x9100/],
    [10, 0x8100, 8, /priority 8 is not an integer from 0 to 7/],
  ])('refuses vid %s tpid %s pcp %s', (vid, tpid, pcp, msg) => {
    expect(() => withVlanTag(f, vid, tpid, pcp)).toThrow(msg);
  });

  it('refuses a frame shorter than an Ethernet header', () => {
    expect(() => withVlanTag(Buffer.alloc(13), 1)).toThrow('tag frame: 13 bytes is shorter than an Ethernet header');
  });
});

/** QEMU's loop transcribed literally (net/announce.c), as an oracle independent of schedule.ts. */
function qemuOracle(p: AnnounceParameters): number[] {
  const sent: number[] = [];
  let now = 0;
  let round = p.rounds; // qemu_announce_timer_reset
  for (;;) {
    sent.push(now); // qemu_announce_self_once: send
    if (--round) {
      let step = p.initial + (p.rounds - round - 1) * p.step; // qemu_announce_timer_step
      if (step < 0 || step > p.max) step = p.max;
      now += step;
    } else break;
  }
  return sent;
}

describe('announce schedule', () => {
  it('defaults are QEMU migration/options.c DEFAULT_MIGRATE_ANNOUNCE_*', () => {
    expect(ANNOUNCE_DEFAULTS).toEqual({ initial: 50, max: 550, rounds: 5, step: 100 });
    expect(announceDelays(ANNOUNCE_DEFAULTS)).toEqual([50, 150, 250, 350]);
    expect(announceOffsets(ANNOUNCE_DEFAULTS)).toEqual([0, 50, 200, 450, 800]);
  });

  it.each<[Partial<AnnounceParameters>, number[]]>([
    [{}, [0, 50, 200, 450, 800]],
    [{ rounds: 1 }, [0]],
    [{ rounds: 2 }, [0, 50]],
    [{ rounds: 7 }, [0, 50, 200, 450, 800, 1250, 1800]], // the 6th gap is capped at max 550
    [{ rounds: 9 }, [0, 50, 200, 450, 800, 1250, 1800, 2350, 2900]],
    [{ step: 0 }, [0, 50, 100, 150, 200]],
    [{ initial: 1000, max: 550 }, [0, 550, 1100, 1650, 2200]], // every gap capped
    [{ initial: 100, max: 150, rounds: 4, step: 100 }, [0, 100, 250, 400]],
    [{ initial: 1, max: 100_000, rounds: 3, step: 10_000 }, [0, 1, 10_002]],
  ])('%j -> %j', (over, want) => {
    const p = validateAnnounceParameters(over);
    expect(announceOffsets(p)).toEqual(want);
    expect(announceOffsets(p)).toEqual(qemuOracle(p));
    expect(announceOffsets(p)).toHaveLength(p.rounds);
  });

  it('announceDelay is qemu_announce_timer_step for each remaining count', () => {
    const p = ANNOUNCE_DEFAULTS;
    expect([4, 3, 2, 1].map((r) => announceDelay(p, r))).toEqual([50, 150, 250, 350]);
  });

  it.each<[Record<string, unknown>, string | RegExp]>([
    [{ initial: 0 }, 'announce-initial: expected an integer from 1 to 100000 (ms), got 0'],
    [{ initial: 100_001 }, 'announce-initial: expected an integer from 1 to 100000 (ms), got 100001'],
    [{ max: 0 }, 'announce-max: expected an integer from 1 to 100000 (ms), got 0'],
    [{ rounds: 0 }, 'announce-rounds: expected an integer from 1 to 1000, got 0'],
    [{ rounds: 1001 }, 'announce-rounds: expected an integer from 1 to 1000, got 1001'],
    [{ step: -1 }, 'announce-step: expected an integer from 0 to 10000 (ms), got -1'],
    [{ step: 10_001 }, 'announce-step: expected an integer from 0 to 10000 (ms), got 10001'],
    [{ step: 1.5 }, 'announce-step: expected an integer from 0 to 10000 (ms), got 1.5'],
    [{ rounds: '5' }, 'announce-rounds: expected an integer from 1 to 1000, got "5"'],
    [{ initial: Number.NaN }, 'announce-initial: expected an integer from 1 to 100000 (ms), got NaN'],
    [{ steps: 100 }, /announce-steps: unknown announce parameter \(expected one of initial, max, rounds, step\)/],
  ])('refuses %j', (p, msg) => {
    expect(() => validateAnnounceParameters(p)).toThrow(msg);
    expect(() => validateAnnounceParameters(p)).toThrow(BridgewatchError);
  });

  it('names fields with the caller prefix and accepts the limits themselves', () => {
    expect(() => validateAnnounceParameters({ step: -1 }, '--announce-')).toThrow(/^--announce-step: /);
    expect(validateAnnounceParameters({ initial: 1, max: 100_000, rounds: 1000, step: 0 })).toEqual({ initial: 1, max: 100_000, rounds: 1000, step: 0 });
    expect(validateAnnounceParameters({ initial: 100_000, max: 1, rounds: 1, step: 10_000 })).toEqual({ initial: 100_000, max: 1, rounds: 1, step: 10_000 });
  });
});
