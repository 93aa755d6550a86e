// The little IPv4 arithmetic the lab's guest and pinger need. Pure.
import { BridgewatchError } from '../errors.js';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** RFC 1071 Internet checksum of `b` (an odd length is padded with a zero byte). */
export function inetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ipv4Bytes(s: string): Buffer {
  const parts = s.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new BridgewatchError('ECONFIG', `parse ipv4 address ${JSON.stringify(s)}: expected a.b.c.d`);
  return Buffer.from(parts.map(Number));
}

export const ipv4String = (b: Buffer): string => [...b.subarray(0, 4)].join('.');
