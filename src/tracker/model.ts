// The tracker's internal records (not exported beyond src/tracker/).
import type { Ring } from './ring.js';
import type { Verdict } from './verdict.js';
import type { Fact, PortInput } from './types.js';

export interface MacTrack {
  mac: string;
  firstNs: bigint;
  vlan: number;
  verdict: Verdict;
  announcements: number;
  unfwdFrames: number; // frames the port could not forward (kernel count)
  unfwdNs: bigint | undefined; // first frame this cycle that the port could not forward
  lateAtNs: bigint | undefined; // the forwarding transition that last judged it late
  onTimeNs: bigint | undefined; // forwarded first frame whose forwarding transition netlink has not told yet
  countedNs: bigint; // kernel counts absorbed up to this frame time: older events are in them
  attachDelaySec: number | null;
  firstFrameDelaySec: number | null;
  silentCounted: boolean;
  rarpSent: number;
}

/** A port; only guest ports (`guest`) have MACs: an uplink carries other hosts' frames. */
export interface PortTrack extends Omit<PortInput, 'tsNs' | 'initial'> {
  live: boolean;
  createdNs: bigint;
  cycleStartNs: bigint; // since when the port could not forward (creation, or leaving forwarding)
  forwardingSinceNs: bigint | undefined;
  macs: Map<string, MacTrack>;
  refused: Set<string>; // MACs refused past maxMacsPerPort, remembered up to that many again
  timeline: Ring<Fact>;
  pending: Map<string, number>; // counts waiting for the port to join a bridge
  lateAtNs: bigint | undefined; // the forwarding transition last counted as a late attach
}
