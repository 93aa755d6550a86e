// GET /api/v1/migrations: an arrival's milestones as wall-clock times and as seconds after the
// guest's first frame here, which is what an operator reads an outage from.
import type { VmView } from '../identity/types.js';
import type { Arrival, ConvergenceState } from './convergence.js';
import type { Clock } from './types.js';
import { wallTime } from './views.js';

export interface Milestone {
  at: string;
  /** seconds after the guest's first frame on this host (negative: before it) */
  afterFirstFrame: number;
  /** the uplink, for the uplink milestones */
  uplink?: string;
}

export interface MigrationView {
  seq: number;
  port: string;
  bridge: string;
  mac: string;
  vm: VmView | null;
  state: ConvergenceState;
  /** first frame → first unicast from the fabric; null until converged */
  convergenceSeconds: number | null;
  firstFrameAt: string;
  firstAnnouncement: Milestone | null;
  joined: Milestone | null;
  forwarding: Milestone | null;
  firstRarpSent: Milestone | null;
  /** the guest's first frame out of an uplink */
  firstUplinkOut: Milestone | null;
  /** the fabric's first unicast frame to the guest, into an uplink */
  firstFabricUnicast: Milestone | null;
  endedAt: string | null;
  detail: string | null;
}

export function migrationView(a: Arrival, clock: Clock, uplinkName: (ifindex: number | undefined) => string | undefined, vm: VmView | null): MigrationView {
  const m = (ns: bigint | undefined, uplink?: number): Milestone | null =>
    ns === undefined
      ? null
      : { at: wallTime(clock, ns), afterFirstFrame: Number(ns - a.firstFrameNs) / 1e9, ...(uplink !== undefined ? { uplink: uplinkName(uplink) } : {}) };
  return {
    seq: a.seq,
    port: a.port,
    bridge: a.bridge,
    mac: a.mac,
    vm,
    state: a.state,
    convergenceSeconds: a.state === 'converged' && a.inNs !== undefined ? Math.max(0, Number(a.inNs - a.firstFrameNs) / 1e9) : null,
    firstFrameAt: wallTime(clock, a.firstFrameNs),
    firstAnnouncement: m(a.firstAnnouncementNs),
    joined: m(a.joinedNs),
    forwarding: m(a.forwardingNs),
    firstRarpSent: m(a.firstRarpNs),
    firstUplinkOut: m(a.outNs, a.outUplink),
    firstFabricUnicast: m(a.inNs, a.inUplink),
    endedAt: a.endNs === undefined ? null : wallTime(clock, a.endNs),
    detail: a.detail ?? null,
  };
}

export interface MigrationPage {
  /** false: convergence is off (--converge-timeout 0, or libpcap capture) */
  enabled: boolean;
  migrations: MigrationView[];
  next: number;
  dropped: number;
}
