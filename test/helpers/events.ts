// Ring-buffer events for tracker tests; default: an unforwarded RARP on a device in no bridge.
import type { BpfEvent } from '../../src/bpf/abi.js';

export const bpfEvent = (tsNs: bigint, ifindex: number, mac: string, o: Partial<BpfEvent> = {}): BpfEvent => ({
  tsNs,
  ifindex,
  mac,
  kind: 'rarp',
  first: false,
  forwarding: false,
  bridgePort: false,
  vlan: 0,
  portState: 0xff,
  len: 60,
  ...o,
});
