// The VM of each guest port, as the API and the metrics show it.
import type { GuestFacts } from '../metrics/metrics.js';
import type { PortView } from '../tracker/types.js';
import type { IdentityResolver } from './resolver.js';
import type { VmIdentity, VmView } from './types.js';

export function vmView(id: VmIdentity): VmView {
  const { mac: _mac, ...view } = id;
  return view;
}

/** Set `vm` on guest port views: the VM, or null when no source knows it. */
export function withVm<T extends PortView | undefined>(view: T, identity: Pick<IdentityResolver, 'of'>): T {
  if (view?.guest) {
    const id = identity.of(view.name, view.macs.map((m) => m.mac));
    view.vm = id ? vmView(id) : null;
  }
  return view;
}

export interface GuestPorts {
  portList(): { ifindex: number; name: string }[];
  portInfo(ifindex: number): { name: string; guest: boolean; macs: string[] } | undefined;
}

/** One bridgewatch_guest_info series per guest port whose VM is known. */
export function guestFacts(identity: Pick<IdentityResolver, 'of'>, ports: GuestPorts): GuestFacts[] {
  const out: GuestFacts[] = [];
  for (const { ifindex } of ports.portList()) {
    const p = ports.portInfo(ifindex);
    if (!p?.guest) continue;
    const id = identity.of(p.name, p.macs);
    if (!id) continue;
    out.push({ port: p.name, mac: id.mac ?? p.macs[0] ?? '', vm: id.name, vm_uuid: id.uuid, vm_namespace: id.namespace, source: id.source });
  }
  return out;
}
