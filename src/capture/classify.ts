// classify() of bpf/bridgewatch.bpf.c in TypeScript, step for step, for the libpcap fallback.
// test/unit/classify.test.ts runs the kernel program and this on the same frames so the twins
// cannot drift: change one, change both.
import { ENUMS } from '../bpf/contract.gen.js';

// enum bw_kind, from the generated contract
const { BW_KIND_OTHER, BW_KIND_RARP, BW_KIND_GARP, BW_KIND_NA, BW_KIND_LEGACY } = ENUMS.bw_kind;
export const KIND_OTHER = BW_KIND_OTHER;
export const KIND_RARP = BW_KIND_RARP;
export const KIND_GARP = BW_KIND_GARP;
export const KIND_NA = BW_KIND_NA;
export const KIND_LEGACY = BW_KIND_LEGACY;

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const ETH_P_RARP = 0x8035;
const ETH_P_LEGACY = 0x0835;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const IPPROTO_ICMPV6 = 58;
const ND_NEIGHBOR_ADVERT = 136;
const ARP_LEN = 28;
const IPV6_LEN = 40;

export interface Classified {
  /** index into KINDS (src/bpf/abi.ts) */
  kind: number;
  /** outer VLAN id, 0 = untagged */
  vlan: number;
}

export const isVlanTpid = (proto: number): boolean => proto === ETH_P_8021Q || proto === ETH_P_8021AD;

const be16 = (d: Uint8Array, off: number): number => (d[off] << 8) | d[off + 1];

function isGarp(d: Uint8Array, off: number): boolean {
  if (off + ARP_LEN > d.length) return false;
  if (be16(d, off) !== 1 || be16(d, off + 2) !== ETH_P_IP || d[off + 4] !== 6 || d[off + 5] !== 4) return false;
  const op = be16(d, off + 6);
  if (op !== 1 && op !== 2) return false;
  // sender IP (spa, at 14) == target IP (tpa, at 24)
  for (let i = 0; i < 4; i++) if (d[off + 14 + i] !== d[off + 24 + i]) return false;
  return true;
}

function isUnsolicitedNa(d: Uint8Array, off: number): boolean {
  if (off + IPV6_LEN + 1 > d.length) return false; // the header and the ICMPv6 type byte
  if (d[off + 6] !== IPPROTO_ICMPV6) return false;
  // ff02::1, all-nodes
  const dst = off + 24;
  if (d[dst] !== 0xff || d[dst + 1] !== 0x02 || d[dst + 15] !== 0x01) return false;
  for (let i = 2; i < 15; i++) if (d[dst + i]) return false;
  return d[off + IPV6_LEN] === ND_NEIGHBOR_ADVERT;
}

/**
 * Kind and outer VLAN of `data`, a frame as the TC hook sees it. `vlan` is the id the kernel
 * already holds in skb metadata (0 = none); as in BPF, an in-frame tag sets it only while 0.
 */
export function classify(data: Uint8Array, vlan = 0): Classified {
  if (data.length < ETH_HLEN) return { kind: KIND_OTHER, vlan };
  let proto = be16(data, 12);
  let off = ETH_HLEN;

  // skip up to two tags (802.1ad outer, 802.1Q inner)
  for (let i = 0; i < 2; i++) {
    if (!isVlanTpid(proto)) break;
    if (off + 4 > data.length) return { kind: KIND_OTHER, vlan };
    if (!vlan) vlan = be16(data, off) & 0x0fff;
    proto = be16(data, off + 2);
    off += 4;
  }

  switch (proto) {
    case ETH_P_RARP:
      return { kind: KIND_RARP, vlan };
    case ETH_P_LEGACY:
      return { kind: KIND_LEGACY, vlan };
    case ETH_P_ARP:
      return { kind: isGarp(data, off) ? KIND_GARP : KIND_OTHER, vlan };
    case ETH_P_IPV6:
      return { kind: isUnsolicitedNa(data, off) ? KIND_NA : KIND_OTHER, vlan };
  }
  return { kind: KIND_OTHER, vlan };
}
