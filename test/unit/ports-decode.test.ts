// Link message decoding on bytes captured from a real kernel, plus the malformed cases that
// must throw (the watcher counts those and carries on).
import { describe, expect, it } from 'vitest';
import { parseBridgeData, parseBrportState, parseLinkInfo, portStateName } from '../../src/ports/attrs.js';
import { AF_BRIDGE, AF_UNSPEC, decodeLinkMessage, formatMac, type LinkMsg } from '../../src/ports/decode.js';
import { getlinkRequest } from '../../src/ports/rtnl.js';
import { netlinkInode } from '../../src/ports/rcvbuf.js';
import * as cap from '../helpers/watch-fixtures.js';

const MAC = '36:fb:3a:b5:fe:a5';

describe('decodeLinkMessage on captured messages', () => {
  const cases: [string, cap.CapturedMessage, Partial<LinkMsg>][] = [
    [
      'new bridge: kind, STP on, forward delay 200 cs',
      cap.bridgeNew,
      { op: 'new', family: AF_UNSPEC, ifindex: 2, name: 'br0', master: 0, up: false, info: { kind: 'bridge', slaveKind: '', bridge: { stpState: 1, forwardDelayCs: 200, vlanFiltering: false }, portState: null } },
    ],
    [
      'new tap: kind tun, down, carrier on (fd held)',
      cap.tapNew,
      { op: 'new', family: AF_UNSPEC, ifindex: 3, name: 'tap0', mac: MAC, master: 0, up: false, operUp: false, carrier: true, operstate: 2, info: { kind: 'tun', slaveKind: '', bridge: null, portState: null } },
    ],
    ['tap set up', cap.tapUp, { ifindex: 3, up: true, operUp: true, carrier: true, operstate: 0, master: 0 }],
    [
      'tap joined br0: master and slave data with the port state',
      cap.tapJoined,
      { family: AF_UNSPEC, ifindex: 3, master: 2, info: { kind: 'tun', slaveKind: 'bridge', bridge: null, portState: 'disabled' }, protinfoState: null },
    ],
    [
      'AF_BRIDGE port message: IFLA_PROTINFO listening, no carrier, no linkinfo',
      cap.brportListening,
      { op: 'new', family: AF_BRIDGE, ifindex: 3, name: 'tap0', master: 2, carrier: null, info: null, protinfoState: 'listening' },
    ],
    ['AF_BRIDGE port message: learning', cap.brportLearning, { family: AF_BRIDGE, protinfoState: 'learning' }],
    ['veth peer', cap.vethNew, { ifindex: 4, name: 'veth1', carrier: false, info: { kind: 'veth', slaveKind: '', bridge: null, portState: null } }],
    ['AF_BRIDGE RTM_DELLINK: the port left, the device lives on', cap.brportDel, { op: 'del', family: AF_BRIDGE, ifindex: 3, master: 2 }],
    ['tap after nomaster', cap.tapLeft, { op: 'new', family: AF_UNSPEC, master: 0, info: { kind: 'tun', slaveKind: '', bridge: null, portState: null } }],
    ['RTM_DELLINK: the device is gone', cap.tapDel, { op: 'del', family: AF_UNSPEC, ifindex: 3, name: 'tap0' }],
  ];
  it.each(cases)('%s', (_what, m, want) => {
    expect(decodeLinkMessage(m.type, m.data)).toMatchObject(want);
  });

  it('returns null for other message types', () => {
    expect(decodeLinkMessage(20 /* RTM_NEWADDR */, cap.tapNew.data)).toBeNull();
  });

  it.each(cases)('%s: every cut inside an attribute throws; a cut between attributes is a shorter message', (_what, m) => {
    const full = decodeLinkMessage(m.type, m.data)!;
    // the top-level attributes: [start, start + nla_len) each, padded to 4
    const attrs: { start: number; end: number; type: number }[] = [];
    for (let off = 16; off < m.data.length; off += (m.data.readUInt16LE(off) + 3) & ~3)
      attrs.push({ start: off, end: off + m.data.readUInt16LE(off), type: m.data.readUInt16LE(off + 2) & 0x3fff });
    const IFLA_IFNAME = 3;
    const nameEnd = attrs.find((a) => a.type === IFLA_IFNAME)?.end ?? Infinity;
    let inside = 0;
    for (let len = 0; len < m.data.length; len++) {
      const cut = m.data.subarray(0, len);
      if (len < 16 || attrs.some((a) => a.start < len && len < a.end)) {
        // in the header, or in an attribute's header or payload (nested ones too): never half a link
        expect(() => decodeLinkMessage(m.type, cut), `cut at ${len}`).toThrow();
        inside++;
      } else if (full.op === 'new' && len < nameEnd) {
        expect(() => decodeLinkMessage(m.type, cut), `cut at ${len}`).toThrow(/no IFLA_IFNAME/);
      } else {
        // whole attributes (maybe less the last one's padding): what they say, nothing more
        const d = decodeLinkMessage(m.type, cut)!;
        expect(d, `cut at ${len}`).toMatchObject({ op: full.op, family: full.family, ifindex: full.ifindex, name: len >= nameEnd ? full.name : null });
      }
    }
    expect(inside).toBeGreaterThan(m.data.length / 2); // the loop reached the cuts that matter
  });

  it('names what is short', () => {
    const data = cap.tapJoined.data;
    expect(() => decodeLinkMessage(16, data.subarray(0, 15))).toThrow(/ifinfomsg: 15 bytes/);
    expect(() => decodeLinkMessage(16, data.subarray(0, 16))).toThrow(/no IFLA_IFNAME/);
    expect(() => decodeLinkMessage(16, data.subarray(0, 17))).toThrow();
  });

  it('throws on ifindex 0', () => {
    const data = Buffer.from(cap.tapNew.data);
    data.writeInt32LE(0, 4);
    expect(() => decodeLinkMessage(16, data)).toThrow(/ifindex 0/);
  });
});

/** A netlink attribute: length, type, payload padded to 4. */
function nla(type: number, payload: Buffer): Buffer {
  const out = Buffer.alloc((4 + payload.length + 3) & ~3);
  out.writeUInt16LE(4 + payload.length, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}
const u8 = (v: number) => Buffer.from([v]);
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

describe('attribute decoders', () => {
  it.each([
    [0, 'disabled'],
    [1, 'listening'],
    [2, 'learning'],
    [3, 'forwarding'],
    [4, 'blocking'],
    [5, null],
    [255, null],
  ])('port state %d -> %s', (v, name) => {
    expect(portStateName(v)).toBe(name);
    expect(parseBrportState(nla(1, u8(v)))).toBe(name);
  });

  it('bridge data: vlan filtering, user-space STP, absent fields default', () => {
    const nest = Buffer.concat([nla(5, u32(2)), nla(1, u32(1500)), nla(7, u8(1))]);
    expect(parseBridgeData(nest)).toEqual({ stpState: 2, forwardDelayCs: 1500, vlanFiltering: true });
    expect(parseBridgeData(Buffer.alloc(0))).toEqual({ stpState: 0, forwardDelayCs: 0, vlanFiltering: false });
  });

  it('reads INFO_DATA and SLAVE_DATA only for the kinds it knows', () => {
    // a veth's INFO_DATA and a bond slave's SLAVE_DATA must not be read as bridge attributes
    const veth = Buffer.concat([nla(1, Buffer.from('veth\0')), nla(2, nla(1, u32(7)))]);
    expect(parseLinkInfo(veth)).toEqual({ kind: 'veth', slaveKind: '', bridge: null, portState: null });
    const bondSlave = Buffer.concat([nla(1, Buffer.from('tun\0')), nla(4, Buffer.from('bond\0')), nla(5, nla(1, u8(3)))]);
    expect(parseLinkInfo(bondSlave)).toMatchObject({ slaveKind: 'bond', portState: null });
  });

  it('throws on short values and broken lengths', () => {
    expect(() => parseBridgeData(nla(5, u8(1)))).toThrow(/IFLA_BR_STP_STATE: 1 bytes/);
    expect(() => parseBrportState(nla(1, Buffer.alloc(0)))).toThrow(/IFLA_BRPORT_STATE: 0 bytes/);
    const bad = nla(1, u8(3));
    bad.writeUInt16LE(40, 0); // claims more bytes than there are
    expect(() => parseBrportState(bad)).toThrow(/Invalid attribute length/);
  });

  it('formats MAC addresses', () => {
    expect(formatMac(Buffer.from([0x02, 0, 0xab, 0x0c, 0xff, 1]))).toBe('02:00:ab:0c:ff:01');
  });
});

describe('dump request and socket lookup', () => {
  it('encodes RTM_GETLINK with skip-stats and an optional kind filter', () => {
    expect(getlinkRequest({ family: 7 }).toString('hex')).toBe('07000000' + '00000000' + '00000000' + '00000000' + '08001d0008000000');
    const bridges = getlinkRequest({ family: 0, kind: 'bridge' });
    // IFLA_LINKINFO | NLA_F_NESTED { IFLA_INFO_KIND "bridge\0" }
    expect(bridges.subarray(24).toString('hex')).toBe('1000128' + '0' + '0b000100' + Buffer.from('bridge\0').toString('hex') + '00');
  });

  it('finds the inode of a NETLINK_ROUTE socket by port id', () => {
    const table = [
      's                Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode',
      '0000000000000000 0   0          00000000 0        0        0     2        0        11',
      '0000000000000000 4   4242       00000000 0        0        0     2        0        12',
      '0000000000000000 0   4242       00000001 0        0        0     2        0        13',
    ].join('\n');
    expect(netlinkInode(table, 4242)).toBe('13');
    expect(netlinkInode(table, 7)).toBeNull();
  });
});
