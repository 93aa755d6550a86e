// Which devices we watch, and which of them are guest (VM) ports. Pure: names and kinds in,
// booleans out. Globs know `*` and `?` only, so a rule reads the same in config and in `ip link`.
import { BridgewatchError } from '../errors.js';

export interface WatchRules {
  /** bridges whose ports are watched */
  bridges: string[];
  excludeBridges: string[];
  /** devices watched while they are in no bridge (a tap is created before it joins one) */
  devices: string[];
  /** never watched, bridged or not: exclude wins */
  excludeDevices: string[];
  /** names that are guest ports even when their kind is not tun/tap */
  guests: string[];
  /** names that are never guest ports (veth/eth uplinks), whatever their kind */
  uplinks: string[];
}

export const GUEST_GLOBS: readonly string[] = ['tap*', 'vif*', 'vnet*', 'macvtap*'];
/** IFLA_INFO_KIND values of devices a hypervisor gives a guest */
export const GUEST_KINDS: readonly string[] = ['tun', 'tap', 'macvtap', 'ipvtap'];

export function defaultRules(): WatchRules {
  return {
    bridges: ['*'],
    excludeBridges: [],
    devices: [...GUEST_GLOBS],
    excludeDevices: [],
    guests: [...GUEST_GLOBS],
    uplinks: [],
  };
}

const FIELDS = ['bridges', 'excludeBridges', 'devices', 'excludeDevices', 'guests', 'uplinks'] as const;
const IFNAMSIZ = 16;

/** Why `glob` cannot be a rule, or null when it can. */
function globProblem(glob: unknown): string | null {
  if (typeof glob !== 'string') return `expected a string, got ${glob === null ? 'null' : typeof glob}`;
  if (glob === '') return 'empty glob';
  if (/[[\]{}\\]/.test(glob)) return 'only * and ? are supported';
  // the kernel refuses these in interface names (dev_valid_name), so such a glob never matches
  if (/[\s/]/.test(glob)) return 'interface names have no whitespace or /';
  if (!glob.includes('*') && glob.length > IFNAMSIZ - 1) return `longer than ${IFNAMSIZ - 1} bytes, the longest interface name`;
  return null;
}

/** Check untrusted input (config file, flags) and fill defaults; errors name the field. */
export function validateRules(input: unknown): WatchRules {
  const fail = (cause: string): never => {
    throw new BridgewatchError('ECONFIG', `validate watch rules: ${cause}`);
  };
  if (input === undefined) return defaultRules();
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('expected an object');
  const obj = input as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!(FIELDS as readonly string[]).includes(key)) fail(`unknown field ${key} (known: ${FIELDS.join(', ')})`);
  }
  const rules = defaultRules();
  for (const field of FIELDS) {
    const v = obj[field];
    if (v === undefined) continue;
    if (!Array.isArray(v)) fail(`${field}: expected an array of globs`);
    (v as unknown[]).forEach((g, i) => {
      const problem = globProblem(g);
      if (problem) fail(`${field}[${i}] ${JSON.stringify(g)}: ${problem}`);
    });
    rules[field] = [...(v as string[])];
  }
  return rules;
}

/** `*` is any run of characters (also none), `?` exactly one; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\*?]/g, (ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : `\\${ch}`));
  return new RegExp(`^${body}$`, 's');
}

export function globMatch(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}

/** An uplink of its bridge: a bridged port matching --uplinks, else any bridged non-guest port. */
export function isUplink(l: { name: string; bridged: boolean; guest: boolean }, uplinkGlobs: readonly string[]): boolean {
  return l.bridged && (uplinkGlobs.length ? uplinkGlobs.some((g) => globMatch(g, l.name)) : !l.guest);
}

/** What the matcher needs to know about a non-bridge device. */
export interface PortFacts {
  name: string;
  /** IFLA_INFO_KIND, '' for devices without one (physical NICs, Xen vifs) */
  kind: string;
  /** name of the bridge it is a port of, or null when it is in none */
  bridge: string | null;
  /** has an L2 address: a tap, not an L3 tun (both are IFLA_INFO_KIND "tun") */
  l2?: boolean;
}

export interface Matcher {
  readonly rules: WatchRules;
  /** is a bridge (and so its ports) in scope */
  bridge(name: string): boolean;
  /** is this device watched */
  port(p: PortFacts): boolean;
  /** guest port (VM NIC) rather than an uplink */
  guest(p: Pick<PortFacts, 'name' | 'kind'>): boolean;
}

/** Compile rules once; the watcher asks on every link message. */
export function compileRules(rules: WatchRules): Matcher {
  const checked = validateRules(rules);
  const any = (globs: string[]): ((name: string) => boolean) => {
    const res = globs.map(globToRegExp);
    return (name) => res.some((re) => re.test(name));
  };
  const bridgeIn = any(checked.bridges);
  const bridgeOut = any(checked.excludeBridges);
  const devIn = any(checked.devices);
  const devOut = any(checked.excludeDevices);
  const guestIn = any(checked.guests);
  const uplink = any(checked.uplinks);
  const bridge = (name: string): boolean => bridgeIn(name) && !bridgeOut(name);
  // a guest NIC by its kind, whatever a hotplug script named it: watched from its creation,
  // before it joins a bridge (its burst may come first); --devices names add to it
  const guestKind = (p: PortFacts): boolean => GUEST_KINDS.includes(p.kind) && p.l2 !== false && !uplink(p.name);
  return {
    rules: checked,
    bridge,
    port: (p) => !devOut(p.name) && (p.bridge !== null ? bridge(p.bridge) : devIn(p.name) || guestKind(p)),
    guest: (p) => !uplink(p.name) && (GUEST_KINDS.includes(p.kind) || guestIn(p.name)),
  };
}
