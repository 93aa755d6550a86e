// The lab's network: a switch, two hypervisor hosts and a client, each in a namespace of its own.
//
//   bwlab-client           bwlab-sw                     bwlab-a / bwlab-b
//   eth0 10.77.0.1 ── to-client ┐
//                               sw0 (the physical switch: learning, default ageing)
//                     to-a ─────┤── eth0 ── br0 (STP off, forward_delay 0) ── tapvm0 (guest)
//                     to-b ─────┘── eth0 ── br0                            ── tapvm0 (after migration)
//
// Nothing is routed: no namespace has a default route or a link to the root namespace.
import { writeFileSync } from 'node:fs';
import { BridgewatchError } from '../errors.js';
import { addNetns, delNetns, inNetns, ip, netnsExists } from '../sys/netns.js';

export const NS = { sw: 'bwlab-sw', a: 'bwlab-a', b: 'bwlab-b', client: 'bwlab-client' } as const;
export const ALL_NS: readonly string[] = [NS.sw, NS.a, NS.b, NS.client];

export const SWITCH_BRIDGE = 'sw0';
export const HOST_BRIDGE = 'br0';
export const UPLINK = 'eth0';
/** a tap* name: bridgewatch watches such devices before they join a bridge */
export const GUEST_TAP = 'tapvm0';
/** the switch port toward each host (and the client) */
export const SWITCH_PORT = { a: 'to-a', b: 'to-b', client: 'to-client' } as const;

export const SUBNET_PREFIX = 24;
export const CLIENT_IP = '10.77.0.1';
export const GUEST_IP = '10.77.0.100';
/** the guest's gateway, which no one in the lab has: asking for it is a broadcast nobody answers */
export const GATEWAY_IP = '10.77.0.254';
export const GUEST_MAC = '52:54:00:77:00:64';

export type Host = 'a' | 'b';

/** Lab namespaces that exist now. */
export const existingNamespaces = (): string[] => ALL_NS.filter(netnsExists);

export function assertNoLab(): void {
  const found = existingNamespaces();
  if (found.length)
    throw new BridgewatchError('ESTATE', `create lab: namespace ${found.join(', ')} already exists (a kept lab or a leftover); remove it with: bridgewatch lab --down`);
}

// Quiet namespaces: no IPv6 (no DAD, RS or MLD noise from the bridges), so every frame the
// switch sees is the lab's own.
function sysctls(ns: string): void {
  inNetns(ns, () => {
    for (const k of ['all', 'default']) writeFileSync(`/proc/sys/net/ipv6/conf/${k}/disable_ipv6`, '1');
  });
}

// STP off and forward_delay 0: a new port forwards at once, as a VM bridge must
// (RH bug 719294: with STP on, ports sit in listening/learning and drop the announcement).
function addBridge(ns: string, name: string): void {
  ip(ns, 'link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
  ip(ns, 'link', 'set', name, 'up');
}

/** A veth from the switch (port `swPort`) to `ns` (device eth0), both ends up. */
function cable(swPort: string, ns: string): void {
  ip(NS.sw, 'link', 'add', swPort, 'type', 'veth', 'peer', 'name', UPLINK, 'netns', ns);
  ip(NS.sw, 'link', 'set', swPort, 'master', SWITCH_BRIDGE, 'up');
  ip(ns, 'link', 'set', UPLINK, 'up');
}

/** Build the whole topology; on any failure, remove what was made and rethrow. */
export function buildTopology(): void {
  assertNoLab();
  try {
    for (const ns of ALL_NS) {
      addNetns(ns);
      sysctls(ns);
    }
    addBridge(NS.sw, SWITCH_BRIDGE);
    for (const h of ['a', 'b'] as const) {
      addBridge(NS[h], HOST_BRIDGE);
      cable(SWITCH_PORT[h], NS[h]);
      ip(NS[h], 'link', 'set', UPLINK, 'master', HOST_BRIDGE);
    }
    cable(SWITCH_PORT.client, NS.client);
    ip(NS.client, 'addr', 'add', `${CLIENT_IP}/${SUBNET_PREFIX}`, 'dev', UPLINK);
  } catch (e) {
    destroyTopology();
    throw new BridgewatchError('EKERNEL', `create lab topology: ${(e as Error).message}`);
  }
}

/** Delete every lab namespace (their veths, bridges and taps go with them). Idempotent. */
export function destroyTopology(): string[] {
  const errors: string[] = [];
  for (const ns of ALL_NS) {
    try {
      delNetns(ns);
    } catch (e) {
      errors.push(`delete netns ${ns}: ${(e as Error).message}`);
    }
  }
  return errors;
}

/**
 * The hypervisor's part of creating a guest NIC: a persistent tap, administratively up and in
 * no bridge, as libvirt leaves it before its hotplug step. Up matters: the kernel refuses a
 * write to a down tap (EIO), so a burst sent into one never enters the host at all.
 */
export function createTap(host: Host): void {
  ip(NS[host], 'tuntap', 'add', 'dev', GUEST_TAP, 'mode', 'tap');
  ip(NS[host], 'link', 'set', GUEST_TAP, 'up');
}

export function deleteTap(host: Host): void {
  ip(NS[host], 'link', 'del', GUEST_TAP);
}

/** The hotplug script: enslave the guest's tap to the host bridge. */
export function plugTap(host: Host): void {
  ip(NS[host], 'link', 'set', GUEST_TAP, 'master', HOST_BRIDGE, 'up');
}
