// Configuration: one table of options drives parsing (defaults < config file < BRIDGEWATCH_*
// environment < flags), validation with field-named errors, --help, and the README reference.
import { readFileSync } from 'node:fs';
import { BridgewatchError } from './errors.js';

type Kind = 'string' | 'int' | 'duration' | 'list' | 'enum' | 'bool' | 'listen';

export interface OptionSpec {
  key: keyof Config;
  flag: string;
  kind: Kind;
  default: unknown;
  help: string;
  allowed?: readonly string[];
  min?: number;
  max?: number;
}

export interface Config {
  listen: { host: string; port: number };
  bridges: string[];
  excludeBridges: string[];
  devices: string[];
  excludeDevices: string[];
  uplinks: string[];
  guests: string[];
  observeUplinks: boolean;
  silentAfterMs: number;
  logLevel: string;
  attach: 'auto' | 'tcx' | 'tc';
  capture: 'auto' | 'ebpf' | 'pcap';
  bpfPortState: 'auto' | 'kernel' | 'netlink';
  announce: 'on' | 'dry-run' | 'off';
  announceInitial: number;
  announceMax: number;
  announceRounds: number;
  announceStep: number;
  announceHoldoffMs: number;
  announceRatePerSec: number;
  apiToken: string;
  apiTokenFile: string;
  maxPorts: number;
  maxMacsPerPort: number;
  bpfMaxMacs: number;
  maxEvents: number;
  stateDir: string;
  flapMoves: number;
  flapWindowMs: number;
  convergeTimeoutMs: number;
  libvirtDir: string;
  kubevirt: 'auto' | 'off';
  identityFile: string;
  identityIntervalMs: number;
  config: string;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const OPTIONS: readonly OptionSpec[] = [
  { key: 'config', flag: 'config', kind: 'string', default: '', help: 'JSON config file; its keys are the option names in camelCase (e.g. "silentAfter": "10s")' },
  { key: 'listen', flag: 'listen', kind: 'listen', default: '0.0.0.0:9725', help: 'HTTP address for /metrics, /healthz, /readyz and /api/v1' },
  { key: 'bridges', flag: 'bridges', kind: 'list', default: ['*'], help: 'watch ports of bridges matching these globs' },
  { key: 'excludeBridges', flag: 'exclude-bridges', kind: 'list', default: [], help: 'never watch ports of these bridges' },
  { key: 'devices', flag: 'devices', kind: 'list', default: ['tap*', 'vif*', 'vnet*', 'macvtap*'], help: 'also watch unbridged devices matching these globs (tun/tap and macvtap devices are watched from creation whatever their name)' },
  { key: 'excludeDevices', flag: 'exclude-devices', kind: 'list', default: [], help: 'never watch these devices' },
  { key: 'uplinks', flag: 'uplinks', kind: 'list', default: [], help: 'bridge ports that are uplinks (RARP goes out there); default: every non-guest port' },
  { key: 'guests', flag: 'guests', kind: 'list', default: ['tap*', 'vif*', 'vnet*', 'macvtap*'], help: 'names of guest (VM) ports, besides tun/tap/macvtap devices' },
  { key: 'observeUplinks', flag: 'observe-uplinks', kind: 'bool', default: false, help: 'also run the TC program on uplinks (costs a program run per frame on the physical NIC; guests are always observed)' },
  { key: 'silentAfterMs', flag: 'silent-after', kind: 'duration', default: '10s', help: 'a guest forwarding this long with frames but no announcement is silent', min: 100, max: 86_400_000 },
  { key: 'logLevel', flag: 'log-level', kind: 'enum', default: 'info', allowed: LOG_LEVELS, help: 'JSON log level' },
  { key: 'attach', flag: 'attach', kind: 'enum', default: 'auto', allowed: ['auto', 'tcx', 'tc'], help: 'TC attach: clsact filters (tc), tcx links (kernel 6.6+; each holds rtnl for an RCU grace period), or auto (clsact, else tcx)' },
  { key: 'capture', flag: 'capture', kind: 'enum', default: 'auto', allowed: ['auto', 'ebpf', 'pcap'], help: 'observe frames with eBPF (exact), libpcap (fallback: forwarding state from netlink), or eBPF falling back to libpcap' },
  { key: 'bpfPortState', flag: 'bpf-port-state', kind: 'enum', default: 'auto', allowed: ['auto', 'kernel', 'netlink'], help: 'how the program knows a port forwards: read in the kernel (Linux 6.3+), from a map kept from rtnetlink, or kernel falling back to netlink' },
  { key: 'announce', flag: 'announce', kind: 'enum', default: 'on', allowed: ['on', 'dry-run', 'off'], help: 'send RARP on the guest\'s behalf when its port joined late' },
  { key: 'announceInitial', flag: 'announce-initial', kind: 'int', default: 50, min: 1, max: 100_000, help: 'QEMU announce-initial: first delay between rounds, ms' },
  { key: 'announceMax', flag: 'announce-max', kind: 'int', default: 550, min: 1, max: 100_000, help: 'QEMU announce-max: longest delay between rounds, ms' },
  { key: 'announceRounds', flag: 'announce-rounds', kind: 'int', default: 5, min: 1, max: 1000, help: 'QEMU announce-rounds: RARPs per schedule' },
  { key: 'announceStep', flag: 'announce-step', kind: 'int', default: 100, min: 0, max: 10_000, help: 'QEMU announce-step: delay increase per round, ms' },
  { key: 'announceHoldoffMs', flag: 'announce-holdoff', kind: 'duration', default: '10s', min: 0, max: 86_400_000, help: 'at most one schedule per MAC within this time' },
  { key: 'announceRatePerSec', flag: 'announce-rate', kind: 'int', default: 200, min: 1, max: 100_000, help: 'global cap on RARP frames sent per second' },
  { key: 'apiToken', flag: 'api-token', kind: 'string', default: '', help: 'bearer token enabling POST /api/v1/announce (disabled when empty); visible in ps, prefer --api-token-file' },
  { key: 'apiTokenFile', flag: 'api-token-file', kind: 'string', default: '', help: 'read the bearer token from this file at start (trimmed; not with --api-token)' },
  { key: 'maxPorts', flag: 'max-ports', kind: 'int', default: 4096, min: 1, max: 1_000_000, help: 'ports tracked at most' },
  { key: 'maxMacsPerPort', flag: 'max-macs-per-port', kind: 'int', default: 64, min: 1, max: 65_536, help: 'MACs recorded per port, in the kernel and the tracker (a MAC-flooding guest is capped and counted)' },
  { key: 'bpfMaxMacs', flag: 'bpf-max-macs', kind: 'int', default: 16_384, min: 64, max: 4_194_304, help: 'capacity of the kernel {port, MAC} LRU map' },
  { key: 'maxEvents', flag: 'max-events', kind: 'int', default: 4096, min: 16, max: 1_000_000, help: 'recent timeline events kept for /api/v1/events' },
  { key: 'stateDir', flag: 'state-dir', kind: 'string', default: '/run/bridgewatch', help: 'runtime state (clsact hooks created, for crash cleanup)' },
  { key: 'flapMoves', flag: 'flap-moves', kind: 'int', default: 3, min: 1, max: 1000, help: 'a guest MAC flaps when its bridge FDB entry moves between a guest port and an uplink more than this many times within --flap-window' },
  { key: 'convergeTimeoutMs', flag: 'converge-timeout', kind: 'duration', default: '30s', min: 0, max: 3_600_000, help: 'a guest whose frames went out of an uplink this long ago with no unicast frame for it coming back is unconverged (0: no convergence watch, no uplink programs)' },
  { key: 'flapWindowMs', flag: 'flap-window', kind: 'duration', default: '60s', min: 1000, max: 86_400_000, help: 'the window of --flap-moves' },
  { key: 'libvirtDir', flag: 'libvirt-dir', kind: 'string', default: '/run/libvirt/qemu', help: 'libvirt status XML directory: VM names of guest ports (used when it exists; off: never)' },
  { key: 'kubevirt', flag: 'kubevirt', kind: 'enum', default: 'auto', allowed: ['auto', 'off'], help: 'name guest ports after the KubeVirt VMI whose virt-launcher (in /proc: needs the host PID namespace) shares their network namespace' },
  { key: 'identityFile', flag: 'identity-file', kind: 'string', default: '', help: 'JSON file [{port or mac, vm, vm_uuid, vm_namespace}] naming VMs no other source knows (wins over them)' },
  { key: 'identityIntervalMs', flag: 'identity-interval', kind: 'duration', default: '10s', min: 1000, max: 3_600_000, help: 'identity sources are looked at again this often (besides watching for changes)' },
];

const envName = (o: OptionSpec) => 'BRIDGEWATCH_' + o.flag.toUpperCase().replace(/-/g, '_');
const fileKey = (o: OptionSpec) => o.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export const optionNames = (o: OptionSpec) => ({ flag: `--${o.flag}`, env: envName(o), file: fileKey(o) });

const fail = (field: string, msg: string): never => {
  throw new BridgewatchError('ECONFIG', `config ${field}: ${msg}`);
};

/** Duration in ms from a number (ms) or a string like 500ms, 10s, 2m. */
export function parseDuration(v: unknown, field: string): number {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim()) : null;
  if (!m) return fail(field, `invalid duration ${JSON.stringify(v)} (allowed: milliseconds, or a number with ms, s, m or h, e.g. 10s)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'];
}

function parseListen(v: unknown, field: string): { host: string; port: number } {
  const m = typeof v === 'string' ? /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(v.trim()) : null;
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) return fail(field, `invalid address ${JSON.stringify(v)} (allowed: host:port, e.g. 0.0.0.0:9725, 127.0.0.1:9725 or [::]:9725)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function coerce(o: OptionSpec, v: unknown, field: string): unknown {
  switch (o.kind) {
    case 'string':
      if (typeof v !== 'string') return fail(field, `expected a string, got ${JSON.stringify(v)}`);
      return v;
    case 'listen':
      return parseListen(v, field);
    case 'list': {
      const items = Array.isArray(v) ? v : typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : null;
      if (!items || items.some((x) => typeof x !== 'string' || !/^[\w.*?:@-]+$/.test(x)))
        return fail(field, `invalid list ${JSON.stringify(v)} (allowed: comma-separated names or globs with * and ?)`);
      return items;
    }
    case 'enum':
      if (typeof v !== 'string' || !o.allowed!.includes(v)) return fail(field, `invalid value ${JSON.stringify(v)} (allowed: ${o.allowed!.join(', ')})`);
      return v;
    case 'bool':
      if (v === true || v === 'true' || v === '1') return true;
      if (v === false || v === 'false' || v === '0') return false;
      return fail(field, `invalid value ${JSON.stringify(v)} (allowed: true, false)`);
    case 'int':
    case 'duration': {
      const n = o.kind === 'duration' ? parseDuration(v, field) : typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
      if (!Number.isInteger(n) && o.kind === 'int') return fail(field, `invalid integer ${JSON.stringify(v)} (allowed: ${o.min}..${o.max})`);
      if ((o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max))
        return fail(field, `${JSON.stringify(v)} out of range (allowed: ${o.min}..${o.max}${o.kind === 'duration' ? ' ms' : ''})`);
      return n;
    }
  }
}

export interface ConfigSources {
  flags?: Record<string, string | boolean>;
  env?: NodeJS.ProcessEnv;
  readFile?: (path: string) => string;
}

/** Build and validate the config; throws BridgewatchError('ECONFIG') naming the field. */
export function loadConfig(src: ConfigSources = {}): Config {
  const flags = src.flags ?? {};
  const env = src.env ?? {};
  const known = new Set(OPTIONS.map((o) => o.flag));
  for (const f of Object.keys(flags)) if (!known.has(f)) fail(`--${f}`, `unknown option (see bridgewatch run --help)`);
  // before the file is read: `--config` without a path must not be read as a file named "true"
  for (const o of OPTIONS) if (flags[o.flag] === true && o.kind !== 'bool') fail(`--${o.flag}`, 'needs a value');

  const out: Record<string, unknown> = {};
  /** where each key's value came from, as the user wrote it (for errors that involve two keys) */
  const from: Partial<Record<keyof Config, string>> = {};
  for (const o of OPTIONS) out[o.key] = coerce(o, o.default, `${o.flag} default`);

  const path = (flags.config as string | undefined) ?? env.BRIDGEWATCH_CONFIG;
  if (path) {
    let file: unknown;
    try {
      file = JSON.parse((src.readFile ?? ((p) => readFileSync(p, 'utf8')))(path));
    } catch (e) {
      fail(path, `cannot read JSON config: ${(e as Error).message}`);
    }
    if (!file || typeof file !== 'object' || Array.isArray(file)) fail(path, 'expected a JSON object');
    const byFileKey = new Map(OPTIONS.map((o) => [fileKey(o), o]));
    for (const [k, v] of Object.entries(file as object)) {
      const o = byFileKey.get(k);
      if (!o || o.key === 'config') fail(`${path}: ${k}`, `unknown key (allowed: ${[...byFileKey.keys()].filter((x) => x !== 'config').join(', ')})`);
      out[o!.key] = coerce(o!, v, `${path}: ${k}`);
      from[o!.key] = `${path}: ${k}`;
    }
  }
  for (const o of OPTIONS) {
    const e = env[envName(o)];
    if (e === undefined || e === '') continue;
    out[o.key] = coerce(o, e, envName(o));
    from[o.key] = envName(o);
  }
  for (const o of OPTIONS) {
    const f = flags[o.flag];
    if (f === undefined) continue;
    out[o.key] = coerce(o, f, `--${o.flag}`);
    from[o.key] = `--${o.flag}`;
  }
  const cfg = out as unknown as Config;
  cfg.config = path ?? '';
  if (cfg.apiToken && cfg.apiTokenFile) fail(from.apiTokenFile!, `cannot be used with ${from.apiToken} (give the token one way)`);
  if (cfg.apiToken) checkToken(cfg.apiToken, from.apiToken!);
  if (cfg.apiTokenFile) cfg.apiToken = readTokenFile(cfg.apiTokenFile, from.apiTokenFile!, src.readFile);
  return cfg;
}

const checkToken = (token: string, field: string): string =>
  /^[\x21-\x7e]+$/.test(token) ? token : fail(field, 'the token must be printable ASCII without spaces (it is sent as "Authorization: Bearer <token>")');

/** A bearer token from a file, trimmed (a file ends with a newline); throws ECONFIG naming `field`. */
export function readTokenFile(path: string, field: string, readFile: (p: string) => string = (p) => readFileSync(p, 'utf8')): string {
  let token: string;
  try {
    token = readFile(path).trim();
  } catch (e) {
    return fail(field, `cannot read the token file: ${(e as Error).message}`);
  }
  if (!token) fail(field, `${path} is empty`);
  return checkToken(token, `${field} (${path})`);
}

/** The `run` options as help text lines. */
export function optionsHelp(): string {
  return OPTIONS.map((o) => {
    const def = Array.isArray(o.default) ? o.default.join(',') : String(o.default);
    const allowed = o.allowed ? ` (${o.allowed.join('|')})` : '';
    return `  --${o.flag.padEnd(20)} ${o.help}${allowed}${def ? ` [${def}]` : ''}\n  ${''.padEnd(22)} env ${envName(o)}`;
  }).join('\n');
}
