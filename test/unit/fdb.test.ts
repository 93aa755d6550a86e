// Bridge FDB messages: what bridgewatch asks the kernel and how it reads the answer.
import { describe, expect, it } from 'vitest';
import { AF_BRIDGE, fdbGetRequest, fdbKind, fdbMoveRequest, parseFdbEntry } from '../../src/ports/fdb.js';

/** An AF_BRIDGE ndmsg as the kernel sends it, with NDA_LLADDR and optionally NDA_VLAN. */
function reply(ifindex: number, state: number, flags: number, mac: string, vlan?: number): Buffer {
  const nd = Buffer.alloc(12);
  nd.writeUInt8(AF_BRIDGE, 0);
  nd.writeInt32LE(ifindex, 4);
  nd.writeUInt16LE(state, 8);
  nd.writeUInt8(flags, 10);
  const ll = Buffer.alloc(12);
  ll.writeUInt16LE(10, 0);
  ll.writeUInt16LE(2, 2);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(ll, 4);
  const parts = [nd, ll];
  if (vlan !== undefined) {
    const v = Buffer.alloc(8);
    v.writeUInt16LE(6, 0);
    v.writeUInt16LE(5, 2);
    v.writeUInt16LE(vlan, 4);
    parts.push(v);
  }
  return Buffer.concat(parts);
}

describe('fdb entry kinds', () => {
  it.for([
    { what: 'learned (reachable)', state: 0x02, flags: 0x04, kind: 'dynamic' },
    { what: 'learned, aging (stale)', state: 0x04, flags: 0x04, kind: 'dynamic' },
    { what: 'static', state: 0x40, flags: 0x04, kind: 'static' },
    { what: 'permanent (local)', state: 0x80, flags: 0x04, kind: 'permanent' },
    { what: 'extern_learn (EVPN), even if reachable', state: 0x02, flags: 0x14, kind: 'extern_learn' },
    { what: 'sticky', state: 0x02, flags: 0x44, kind: 'sticky' },
  ])('$what', ({ state, flags, kind }) => {
    expect(fdbKind(state, flags)).toBe(kind);
  });
});

describe('fdb messages', () => {
  it('decodes the port, MAC, VLAN and kind of a reply', () => {
    expect(parseFdbEntry(reply(4, 0x02, 0, '52:54:00:aa:bb:cc'))).toEqual({ ifindex: 4, mac: '52:54:00:aa:bb:cc', vlan: 0, kind: 'dynamic' });
    expect(parseFdbEntry(reply(7, 0x40, 0, '52:54:00:aa:bb:cd', 100))).toEqual({ ifindex: 7, mac: '52:54:00:aa:bb:cd', vlan: 100, kind: 'static' });
  });

  it('refuses malformed replies with a message', () => {
    expect(() => parseFdbEntry(Buffer.alloc(5))).toThrow(/ndmsg: 5 bytes/);
    const wrongFamily = reply(4, 2, 0, '52:54:00:aa:bb:cc');
    wrongFamily[0] = 2;
    expect(() => parseFdbEntry(wrongFamily)).toThrow(/not AF_BRIDGE/);
    expect(() => parseFdbEntry(reply(4, 2, 0, '52:54:00:aa:bb:cc').subarray(0, 12))).toThrow(/no NDA_LLADDR/);
  });

  it('asks for one MAC of one bridge, and moves it as a dynamic entry through the bridge', () => {
    const get = fdbGetRequest(9, '52:54:00:aa:bb:cc', 0);
    expect(get.readUInt8(0)).toBe(AF_BRIDGE);
    expect(get.subarray(12).toString('hex')).toBe('0a000200525400aabbcc0000' + '08000900' + '09000000');
    const move = fdbMoveRequest(5, '52:54:00:aa:bb:cc', 100);
    expect(move.readInt32LE(4)).toBe(5); // the guest's port
    expect(move.readUInt16LE(8)).toBe(0x02); // NUD_REACHABLE: dynamic, ages like a learned entry
    expect(move.readUInt8(10)).toBe(0x04); // NTF_MASTER: the bridge's FDB, not the port's own
    expect(move.subarray(24).toString('hex')).toBe('060005006400' + '0000');
  });
});
