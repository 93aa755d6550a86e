// Which VM a guest port belongs to, and where that knowledge came from.

export const IDENTITY_SOURCES = ['libvirt', 'kubevirt', 'file'] as const;
export type IdentitySource = (typeof IDENTITY_SOURCES)[number];

export interface VmIdentity {
  /** the name an operator knows: Nova's display name, the VMI name, the libvirt domain name */
  name: string;
  uuid: string;
  /** Kubernetes namespace, OpenStack project name; '' when the platform has none */
  namespace: string;
  source: IdentitySource;
  /** OpenStack project (Nova metadata) */
  project?: { uuid: string; name: string };
  /** libvirt domain name, when it differs from name (Nova: instance-0000002a) or name came from it */
  domain?: string;
  /** the guest MAC of this interface, when the source knows it */
  mac?: string;
}

/** As the API shows it (the MAC is the port's own business). */
export type VmView = Omit<VmIdentity, 'mac'>;

/** Error counts by source (monotonic). */
export type IdentityErrors = Record<IdentitySource, number>;

/** Label values are bounded: a 10 kB VM name must not bloat every scrape. */
export const MAX_LABEL = 256;
export const clip = (s: string): string => (s.length > MAX_LABEL ? s.slice(0, MAX_LABEL) : s);

export const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;
/** aa:bb:cc:dd:ee:ff in lower case, or undefined when s is not a MAC */
export function normalMac(s: string | undefined): string | undefined {
  const m = s?.trim().toLowerCase();
  return m && MAC_RE.test(m) ? m : undefined;
}

/** Linux interface names: 1..15 bytes, no '/', no whitespace (as the API's port parameter). */
export const PORT_RE = /^[^/\s]{1,15}$/;
