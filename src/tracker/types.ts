// What the tracker knows and shows: facts on a timeline, per port and per guest MAC.
import type { BR_STATES, Kind } from '../bpf/abi.js';
import type { Verdict } from './verdict.js';
import type { VmView } from '../identity/types.js';

export interface Clock {
  /** CLOCK_MONOTONIC ns: the same clock as bpf_ktime_get_ns */
  monoNs(): bigint;
  wallMs(): number;
}
export const systemClock: Clock = { monoNs: () => process.hrtime.bigint(), wallMs: () => Date.now() };

/** a bridge port's state (BR_STATE_*), or none: in no bridge */
export type PortState = 'none' | (typeof BR_STATES)[number];

export type FactType =
  | 'port_created'
  | 'port_found' // present when bridgewatch started
  | 'joined'
  | 'left'
  | 'state'
  | 'carrier'
  | 'renamed'
  | 'deleted'
  | 'first_frame'
  | 'announcement'
  | 'verdict'
  | 'rarp_sent'
  | 'announcement_replayed' // one of the guest's own gARP/NA, kept while its port could not forward, sent again
  | 'fdb_repaired'
  | 'fdb_move';

export interface Fact {
  seq: number;
  tsNs: bigint;
  ifindex: number;
  port: string;
  type: FactType;
  bridge?: string;
  state?: PortState;
  mac?: string;
  kind?: Kind;
  vlan?: number;
  delivered?: boolean;
  verdict?: Verdict;
  detail?: string;
}

/** Where verdicts and counts go (the metrics module implements it). */
export interface TrackerSink {
  portJoined(bridge: string): void;
  lateAttach(bridge: string, attachDelaySec: number): void;
  onTime(bridge: string, firstFrameDelaySec: number): void;
  silent(bridge: string): void;
  framesBeforeForwarding(bridge: string, kind: Kind, n: number): void;
  announcements(bridge: string, kind: Kind, delivered: boolean, n: number): void;
  /** a guest MAC judged late at the forwarding transition `atNs` (the announcer listens) */
  macLate?(ifindex: number, mac: string, atNs: bigint): void;
}

export interface PortInput {
  ifindex: number;
  name: string;
  kind: string; // link kind: tun, veth, ...
  guest: boolean;
  bridge: string; // '' when in no bridge
  state: PortState;
  carrier: boolean;
  tsNs: bigint;
  /** found in the initial dump rather than seen appearing */
  initial: boolean;
}

/** A fact as the API shows it: monotonic ns become a wall-clock time (and a string). */
export type FactView = Omit<Fact, 'tsNs' | 'ifindex'> & {
  at: string; // wall clock, ISO 8601
  monoNs: string;
};

export interface MacView {
  mac: string;
  verdict: Verdict;
  vlan: number;
  firstFrameAt: string;
  announcements: number;
  framesBeforeForwarding: number;
  attachDelaySeconds: number | null;
  firstFrameDelaySeconds: number | null;
  rarpSent: number;
}

export interface PortView {
  name: string;
  ifindex: number;
  bridge: string;
  kind: string;
  guest: boolean;
  state: PortState;
  carrier: boolean;
  verdict: Verdict;
  createdAt: string;
  forwardingSince: string | null;
  macs: MacView[];
  timeline: FactView[];
  /** guest ports: the VM (src/identity/), null when no identity source knows it */
  vm?: VmView | null;
}
