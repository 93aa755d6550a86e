// What the port watcher tells the rest of bridgewatch. Every event carries tsNs: CLOCK_MONOTONIC
// nanoseconds at receipt, the clock bpf_ktime_get_ns() uses, so port and frame times compare.
import type { PortState } from './attrs.js';

export type { PortState } from './attrs.js';

export interface WatchedLink {
  ifindex: number;
  name: string;
  /** IFLA_INFO_KIND: 'tun' (taps too), 'veth', 'macvtap', ...; '' for physical NICs and Xen vifs */
  kind: string;
  /** aa:bb:cc:dd:ee:ff, or null when the device has no L2 address */
  mac: string | null;
  /** IFLA_MASTER ifindex (a bridge, or a bond/VRF/...), null when none */
  master: number | null;
  masterName: string | null;
  /** master is a bridge */
  bridged: boolean;
  /** bridge port state, null unless bridged */
  state: PortState | null;
  /** IFF_UP */
  up: boolean;
  /** IFLA_CARRIER: for a tap, a process (QEMU) holds it open */
  carrier: boolean;
  /** IFF_RUNNING */
  operUp: boolean;
  /** a VM's NIC rather than an uplink */
  guest: boolean;
}

export interface BridgeInfo {
  ifindex: number;
  name: string;
  /** IFLA_BR_STP_STATE != 0 (kernel or user-space STP) */
  stpEnabled: boolean;
  /** IFLA_BR_FORWARD_DELAY, kernel centiseconds -> seconds */
  forwardDelaySec: number;
  vlanFiltering: boolean;
}

interface PortEventBase {
  tsNs: bigint;
  ifindex: number;
  /** name now (for 'renamed', the new name) */
  name: string;
  /** the link after this change (for 'deleted' and 'unwatched', as last seen) */
  link: WatchedLink;
  /** learned from a dump after a netlink overrun: tsNs is when we noticed, not when it happened */
  resync: boolean;
}

/**
 * Per ifindex, events come bracketed: 'created' first, then any of joined/left/state/carrier/
 * renamed, and last 'deleted' or 'unwatched' (after which a later 'created' may start again).
 * A device deleted while bridged gets 'deleted' only (the kernel sends no separate leave).
 * 'created' reports the link as it is: it may already be bridged (found by the dump at start,
 * or an uplink that became watched by joining a bridge); then link.bridged/state stand for the
 * join, and no 'joined' follows.
 */
export type PortEvent =
  | (PortEventBase & { type: 'created'; /** found by the dump at start() */ initial: boolean })
  | (PortEventBase & { type: 'joined'; bridge: string; bridgeIndex: number; /** state at join */ state: PortState | null })
  | (PortEventBase & { type: 'left'; bridge: string; bridgeIndex: number })
  | (PortEventBase & { type: 'state'; bridge: string; state: PortState; prev: PortState | null })
  /** any change of carrier, operUp or admin up */
  | (PortEventBase & { type: 'carrier'; carrier: boolean; operUp: boolean; up: boolean })
  | (PortEventBase & { type: 'renamed'; oldName: string })
  | (PortEventBase & { type: 'deleted' })
  | (PortEventBase & { type: 'unwatched' });

export type PortEventType = PortEvent['type'];

export interface BridgeEvent {
  tsNs: bigint;
  /** found by the dump at start() */
  initial: boolean;
  resync: boolean;
  bridge: BridgeInfo;
  /** null when first seen */
  prev: BridgeInfo | null;
}

export interface BridgeDeletedEvent {
  tsNs: bigint;
  ifindex: number;
  name: string;
  resync: boolean;
  /** 'unwatched': renamed out of the rules */
  reason: 'deleted' | 'unwatched';
}

export interface PortWatcherEvents {
  port: [PortEvent];
  bridge: [BridgeEvent];
  bridgeDeleted: [BridgeDeletedEvent];
  /** the socket failed beyond repair (only emitted when someone listens) */
  error: [Error];
}

export interface WatcherStats {
  /** link messages applied */
  messages: number;
  /** malformed or unexpected netlink messages, skipped */
  badMessages: number;
  /** fresh dumps after an overrun (ENOBUFS) or an interrupted dump */
  resyncs: number;
  /** socket errors (ENOBUFS is the expected one) */
  socketErrors: number;
  /** SO_RCVBUF actually granted, bytes */
  rcvbufBytes: number;
}
