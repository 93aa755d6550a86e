// The lab's pure pieces: the simulated guest's frames and the `bridge monitor` parsers.
import { describe, expect, it } from 'vitest';
import { arpReply, arpRequest as guestArpRequest, echoReply, gratuitousArp, linkLocal, unsolicitedNa } from '../../src/lab/guest.js';
import { checkAnnouncement } from '../../src/announce/replay.js';
import { classify } from '../../src/capture/classify.js';
import { KINDS } from '../../src/bpf/abi.js';
import { neighbour } from '../helpers/frames.js';
import { inetChecksum, ipv4Bytes } from '../../src/lab/inet.js';
import { parseFdbLine, parseLinkLine } from '../../src/lab/monitor.js';
import { macFromString } from '../../src/bpf/abi.js';

const GUEST = macFromString('52:54:00:77:00:64');
const GIP = ipv4Bytes('10.77.0.100');
const CLIENT = macFromString('02:00:00:00:00:01');
const CIP = ipv4Bytes('10.77.0.1');

function arpRequest(target: Buffer): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  CLIENT.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14);
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20);
  CLIENT.copy(f, 22);
  CIP.copy(f, 28);
  target.copy(f, 38);
  return f;
}

function echoRequest(dst: Buffer, payload = Buffer.from('bridgewatch')): Buffer {
  const icmp = Buffer.concat([Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 7]), payload]);
  icmp.writeUInt16BE(inetChecksum(icmp), 2);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + icmp.length, 2);
  ip[8] = 64;
  ip[9] = 1;
  CIP.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  const eth = Buffer.alloc(14);
  GUEST.copy(eth, 0);
  CLIENT.copy(eth, 6);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, icmp]);
}

describe('simulated guest', () => {
  it('answers an ARP request for its address, to the asker, padded to 60 bytes', () => {
    const r = arpReply(arpRequest(GIP), GUEST, GIP)!;
    expect(r).toHaveLength(60);
    expect(r.subarray(0, 6)).toEqual(CLIENT);
    expect(r.subarray(6, 12)).toEqual(GUEST);
    expect(r.readUInt16BE(20)).toBe(2); // reply
    expect(r.subarray(22, 28)).toEqual(GUEST);
    expect(r.subarray(28, 32)).toEqual(GIP);
    expect(r.subarray(32, 38)).toEqual(CLIENT);
    expect(r.subarray(38, 42)).toEqual(CIP);
  });

  it('asks for a neighbour with a broadcast ARP request the neighbour would answer', () => {
    const q = guestArpRequest(GUEST, GIP, CIP);
    expect(q).toHaveLength(60);
    expect(q.subarray(0, 6)).toEqual(Buffer.alloc(6, 0xff)); // flooded by every bridge
    expect(q.subarray(6, 12)).toEqual(GUEST);
    expect(q.readUInt16BE(20)).toBe(1); // request
    expect(q.subarray(22, 28)).toEqual(GUEST);
    expect(q.subarray(28, 32)).toEqual(GIP);
    expect(q.subarray(32, 38)).toEqual(Buffer.alloc(6));
    expect(q.subarray(38, 42)).toEqual(CIP);
    // the same request our own responder answers, so it is well formed
    expect(arpReply(guestArpRequest(CLIENT, CIP, GIP), GUEST, GIP)!.subarray(0, 6)).toEqual(CLIENT);
  });

  it('ignores ARP for another address and non-ARP frames', () => {
    expect(arpReply(arpRequest(ipv4Bytes('10.77.0.9')), GUEST, GIP)).toBeNull();
    expect(arpReply(echoRequest(GIP), GUEST, GIP)).toBeNull();
    expect(arpReply(Buffer.alloc(10), GUEST, GIP)).toBeNull();
  });

  it('answers an echo request with valid IP and ICMP checksums and the same payload', () => {
    const r = echoReply(echoRequest(GIP), GUEST, GIP)!;
    const ip = r.subarray(14, 34);
    expect(inetChecksum(ip)).toBe(0); // a correct header sums to zero
    expect(ip.subarray(12, 16)).toEqual(GIP);
    expect(ip.subarray(16, 20)).toEqual(CIP);
    const icmp = r.subarray(34, 34 + 8 + 11);
    expect(icmp[0]).toBe(0);
    expect(inetChecksum(icmp)).toBe(0);
    expect(icmp.subarray(8).toString()).toBe('bridgewatch');
    expect(r.subarray(0, 6)).toEqual(CLIENT);
  });

  it('ignores echo to another address and truncated packets', () => {
    expect(echoReply(echoRequest(ipv4Bytes('10.77.0.9')), GUEST, GIP)).toBeNull();
    expect(echoReply(echoRequest(GIP).subarray(0, 30), GUEST, GIP)).toBeNull();
  });

  it('computes RFC 1071 checksums (odd lengths too)', () => {
    expect(inetChecksum(Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(0x220d);
    expect(inetChecksum(Buffer.from([0xff]))).toBe(0x00ff);
  });
});

describe('bridge monitor parsers', () => {
  it('reads fdb additions and deletions', () => {
    expect(parseFdbLine('52:54:00:77:00:64 dev veth-b master sw0', 12.5)).toEqual({ at: 12.5, mac: '52:54:00:77:00:64', dev: 'veth-b', deleted: false });
    expect(parseFdbLine('Deleted 52:54:00:77:00:64 dev veth-a master sw0', 1)).toMatchObject({ deleted: true, dev: 'veth-a' });
    expect(parseFdbLine('garbage', 1)).toBeNull();
  });

  it('reads port state changes', () => {
    expect(parseLinkLine('7: tapvm0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master br0 state forwarding priority 32 cost 100')).toEqual({ port: 'tapvm0', bridge: 'br0', state: 'forwarding' });
    expect(parseLinkLine('7: veth0@if3: <UP> mtu 1500 master br0 state learning priority 32')).toEqual({ port: 'veth0', bridge: 'br0', state: 'learning' });
    expect(parseLinkLine('Deleted 7: x')).toBeNull();
  });
});

describe("the simulated guest's own announcements (virtio GUEST_ANNOUNCE)", () => {
  it('a gratuitous ARP request as Linux writes it: 42 bytes, sender = target = its address, target hardware zero', () => {
    const f = gratuitousArp(GUEST, GIP);
    expect(f.toString('hex')).toBe('ffffffffffff' + '525400770064' + '0806' + '0001080006040001' + '525400770064' + '0a4d0064' + '000000000000' + '0a4d0064');
    expect(KINDS[classify(f).kind]).toBe('garp');
    expect(checkAnnouncement({ kind: 'garp', vlan: 0, len: f.length, data: f })).toEqual({ ok: true });
  });

  it('an unsolicited NA for its EUI-64 link-local address to ff02::1, with a valid ICMPv6 checksum', () => {
    const ll = linkLocal(GUEST);
    expect(ll.toString('hex')).toBe('fe80000000000000505400fffe770064');
    const f = unsolicitedNa(GUEST, ll);
    expect(f).toHaveLength(86);
    // the test helpers' independent builder gives the same bytes
    expect(f.toString('hex')).toBe(neighbour(GUEST, 'fe80::5054:ff:fe77:64').toString('hex'));
    expect(KINDS[classify(f).kind]).toBe('na');
    expect(checkAnnouncement({ kind: 'na', vlan: 0, len: f.length, data: f })).toEqual({ ok: true });
  });
});
