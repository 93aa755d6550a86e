// The classifier's frame table, shared by the kernel test (BPF_PROG_TEST_RUN) and the unit test
// of its TypeScript twin (src/capture/classify.ts), so both are held to the same cases.
import type { Kind } from '../../src/bpf/abi.js';
import { arp, BROADCAST, ether, ipv4Frame, legacyRarp, mac, neighbour, qemuRarp, tagged } from './frames.js';

export const GUEST = mac('52:54:00:12:34:56');
const LL = 'fe80::5054:ff:fe12:3456';

export const garp = arp(GUEST, 1, '192.0.2.10', '192.0.2.10');
export const na = neighbour(GUEST, LL);

export interface ClassifierCase {
  name: string;
  frame: Buffer;
  kind: Kind;
  vlan?: number;
}

export const CLASSIFIER_CASES: ClassifierCase[] = [
  { name: "QEMU's 60-byte RARP", frame: qemuRarp(GUEST), kind: 'rarp' },
  { name: 'gratuitous ARP request', frame: garp, kind: 'garp' },
  { name: 'gratuitous ARP reply', frame: arp(GUEST, 2, '192.0.2.10', '192.0.2.10'), kind: 'garp' },
  { name: 'ordinary ARP request', frame: arp(GUEST, 1, '192.0.2.10', '192.0.2.1'), kind: 'other' },
  { name: 'unsolicited IPv6 NA to ff02::1', frame: na, kind: 'na' },
  { name: 'NA to a unicast address', frame: neighbour(GUEST, LL, { dst: 'fe80::1' }), kind: 'other' },
  { name: 'neighbour solicitation to ff02::1', frame: neighbour(GUEST, LL, { type: 135 }), kind: 'other' },
  { name: 'legacy ethertype 0x0835', frame: legacyRarp(GUEST), kind: 'legacy' },
  { name: '802.1Q-tagged RARP', frame: tagged(qemuRarp(GUEST), { tpid: 0x8100, vid: 42 }), kind: 'rarp', vlan: 42 },
  {
    name: 'QinQ (802.1ad + 802.1Q) gARP records the outer VLAN',
    frame: tagged(garp, { tpid: 0x88a8, vid: 100 }, { tpid: 0x8100, vid: 200 }),
    kind: 'garp',
    vlan: 100,
  },
  { name: 'ordinary IPv4 frame', frame: ipv4Frame(GUEST), kind: 'other' },
  { name: '1514-byte IPv4 frame', frame: ipv4Frame(GUEST, 1514), kind: 'other' },
  { name: '14-byte header-only ARP frame', frame: ether(BROADCAST, GUEST, 0x0806), kind: 'other' },
  { name: 'gARP cut at 20 bytes', frame: garp.subarray(0, 20), kind: 'other' },
  { name: 'gARP one byte short of its 28-byte header', frame: garp.subarray(0, 41), kind: 'other' },
  // untagged IPv4/IPv6 with a cut L3 header never reach a test run (the kernel answers EINVAL);
  // tagged, they do. The untagged case goes through a real tap in the kernel test.
  {
    name: '802.1Q-tagged NA with a cut IPv6 header',
    frame: tagged(na, { tpid: 0x8100, vid: 5 }).subarray(0, 44),
    kind: 'other',
    vlan: 5,
  },
  { name: 'NA without its ICMPv6 type byte', frame: na.subarray(0, 54), kind: 'other' },
  { name: 'NA cut right after its ICMPv6 type byte', frame: na.subarray(0, 55), kind: 'na' },
  { name: 'VLAN tag cut in half', frame: tagged(garp, { tpid: 0x8100, vid: 7 }).subarray(0, 16), kind: 'other' },
];
