// Pure frame builders for announcing a guest MAC the way QEMU does after a live migration.
// No I/O here: the bytes are checked field by field against a frame captured from a real QEMU
// (test/fixtures/qemu-rarp.pcap).
import { macFromString, macToString } from '../bpf/abi.js';
import { BridgewatchError } from '../errors.js';

export const ETH_ALEN = 6;
export const ETH_P_RARP = 0x8035;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
/** Ethernet minimum frame length without the FCS: what QEMU pads its RARP to. */
export const ETH_ZLEN = 60;
export const RARP_FRAME_LEN = ETH_ZLEN;

const ARP_HTYPE_ETH = 0x0001;
const ARP_PTYPE_IP = 0x0800;
const ARP_OP_REQUEST_REV = 3;
const VLAN_TPIDS: readonly number[] = [ETH_P_8021Q, ETH_P_8021AD, 0x9100];

/** A MAC as 6 bytes, from a Buffer of exactly 6 bytes or a `52:54:00:12:34:56` string. */
export function toMac(mac: Buffer | string): Buffer {
  if (typeof mac === 'string') {
    try {
      return macFromString(mac);
    } catch (e) {
      throw new BridgewatchError('ECONFIG', (e as Error).message);
    }
  }
  if (mac.length !== ETH_ALEN) throw new BridgewatchError('ECONFIG', `parse mac: expected ${ETH_ALEN} bytes, got ${mac.length}`);
  return Buffer.from(mac);
}

/** True for a MAC one station may own: the group (I/G) bit clear and not all zeros. False for
 *  anything that does not parse as a MAC. */
export function isUnicastMac(mac: Buffer | string): boolean {
  let b: Buffer;
  try {
    b = toMac(mac);
  } catch {
    return false;
  }
  return (b[0] & 0x01) === 0 && b.some((x) => x !== 0);
}

/**
 * The MAC as 6 bytes if it may be announced; otherwise an ECONFIG error saying why. A group
 * address (multicast or broadcast) or 00:00:00:00:00:00 is never a guest's own address, and
 * announcing it would teach every switch on the segment a nonsense FDB entry.
 */
export function assertUnicastMac(mac: Buffer | string): Buffer {
  const b = toMac(mac);
  const s = macToString(b);
  if (b[0] & 0x01) {
    const kind = b.every((x) => x === 0xff) ? 'broadcast' : 'multicast';
    throw new BridgewatchError('ECONFIG', `announce mac ${s}: group (${kind}) address, only a unicast guest MAC can be announced`);
  }
  if (b.every((x) => x === 0)) throw new BridgewatchError('ECONFIG', `announce mac ${s}: all-zero address, only a unicast guest MAC can be announced`);
  return b;
}

/**
 * QEMU's self-announcement, byte for byte (qemu/qemu net/announce.c `announce_self_create`;
 * the same in QEMU 7.2 and current master):
 *
 *   0  ff:ff:ff:ff:ff:ff  destination         22  mac      sender hardware address
 *   6  mac                source              28  0.0.0.0  sender protocol address
 *  12  0x8035             ethertype RARP      32  mac      target hardware address
 *  14  0x0001             htype Ethernet      38  0.0.0.0  target protocol address
 *  16  0x0800             ptype IPv4          42  18 zero bytes of padding, 60 bytes in all
 *  18  6, 4               hlen, plen              (the FCS is the NIC's business)
 *  20  0x0003             op reverse request
 */
export function rarpFrame(mac: Buffer | string): Buffer {
  const m = assertUnicastMac(mac);
  const b = Buffer.alloc(RARP_FRAME_LEN); // zero-filled: spa, tpa and padding
  b.fill(0xff, 0, 6);
  m.copy(b, 6);
  b.writeUInt16BE(ETH_P_RARP, 12);
  b.writeUInt16BE(ARP_HTYPE_ETH, 14);
  b.writeUInt16BE(ARP_PTYPE_IP, 16);
  b.writeUInt8(ETH_ALEN, 18);
  b.writeUInt8(4, 19);
  b.writeUInt16BE(ARP_OP_REQUEST_REV, 20);
  m.copy(b, 22);
  m.copy(b, 32);
  return b;
}

/**
 * A copy of `frame` with an 802.1Q (or, with tpid 0x88a8, 802.1ad) tag inserted after the
 * source MAC: TCI = pcp << 13 | vid, DEI 0. The padding stays, so a tagged RARP is 64 bytes and
 * untags back to exactly QEMU's 60. Applying it twice builds a QinQ frame (outer tag last).
 */
export function withVlanTag(frame: Buffer, vid: number, tpid = ETH_P_8021Q, pcp = 0): Buffer {
  if (frame.length < 14) throw new BridgewatchError('ECONFIG', `tag frame: ${frame.length} bytes is shorter than an Ethernet header`);
  if (!Number.isInteger(vid) || vid < 1 || vid > 4094) throw new BridgewatchError('ECONFIG', `tag frame: vlan id ${vid} is not an integer from 1 to 4094`);
  if (!VLAN_TPIDS.includes(tpid)) throw new BridgewatchError('ECONFIG', `tag frame: tpid 0x${tpid.toString(16)} is not 0x8100, 0x88a8 or 0x9100`);
  if (!Number.isInteger(pcp) || pcp < 0 || pcp > 7) throw new BridgewatchError('ECONFIG', `tag frame: priority ${pcp} is not an integer from 0 to 7`);
  const out = Buffer.alloc(frame.length + 4);
  frame.copy(out, 0, 0, 12);
  out.writeUInt16BE(tpid, 12);
  out.writeUInt16BE((pcp << 13) | vid, 14);
  frame.copy(out, 16, 12);
  return out;
}
