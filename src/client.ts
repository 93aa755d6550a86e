// `bridgewatch status` and `bridgewatch announce`: small clients of a running daemon's API.
import type { OptionDecls, Values } from './args.js';
import { readTokenFile } from './config.js';
import { BridgewatchError } from './errors.js';
import type { PortView } from './tracker/types.js';
import type { Milestone, MigrationPage, MigrationView } from './tracker/convergence-view.js';

const URL_OPTION = { type: 'string', value: 'URL', help: 'the daemon\'s HTTP address [$BRIDGEWATCH_URL or http://127.0.0.1:9725]' } as const;

export const STATUS_OPTIONS: OptionDecls = {
  url: URL_OPTION,
  json: { type: 'boolean', help: 'the API\'s JSON instead of the table' },
};

export const ANNOUNCE_OPTIONS: OptionDecls = {
  port: { type: 'string', value: 'PORT', help: 'the guest\'s port (tap, vif, vnet), required' },
  mac: { type: 'string', value: 'MAC', help: 'only this guest MAC (default: every MAC seen on the port)' },
  url: URL_OPTION,
  token: { type: 'string', value: 'T', help: 'the daemon\'s --api-token [$BRIDGEWATCH_API_TOKEN]; visible in ps, prefer --token-file' },
  'token-file': { type: 'string', value: 'FILE', help: 'read the token from FILE [$BRIDGEWATCH_API_TOKEN_FILE]' },
};

function url(flags: Values, command: string): string {
  const u = String(flags.url ?? process.env.BRIDGEWATCH_URL ?? 'http://127.0.0.1:9725').replace(/\/$/, '');
  const field = flags.url !== undefined ? `${command} --url` : 'BRIDGEWATCH_URL';
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw new BridgewatchError('ECONFIG', `${field}: invalid URL ${JSON.stringify(u)} (e.g. http://127.0.0.1:9725)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new BridgewatchError('ECONFIG', `${field}: ${JSON.stringify(u)} is not an http(s) URL`);
  return u;
}

/** --token or --token-file, else BRIDGEWATCH_API_TOKEN or BRIDGEWATCH_API_TOKEN_FILE; never two of one pair. */
function token(flags: Values, env: NodeJS.ProcessEnv): string | undefined {
  const pick = (value: string | undefined, file: string | undefined, names: [string, string]): string | undefined => {
    if (value && file) throw new BridgewatchError('ECONFIG', `${names[1]}: cannot be used with ${names[0]} (give the token one way)`);
    return file ? readTokenFile(file, names[1]) : value || undefined;
  };
  const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : undefined);
  return (
    pick(str(flags.token), str(flags['token-file']), ['announce --token', 'announce --token-file']) ??
    pick(env.BRIDGEWATCH_API_TOKEN, env.BRIDGEWATCH_API_TOKEN_FILE, ['BRIDGEWATCH_API_TOKEN', 'BRIDGEWATCH_API_TOKEN_FILE'])
  );
}

async function call(method: string, u: string, body?: unknown, token?: string): Promise<{ status: number; json: any }> {
  let res: Response;
  try {
    res = await fetch(u, {
      method,
      headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(5000),
    });
  } catch (e) {
    throw new BridgewatchError('EKERNEL', `${method} ${u}: ${(e as Error).cause ? String((e as Error & { cause: Error }).cause.message) : (e as Error).message} (is bridgewatch run listening there?)`);
  }
  return { status: res.status, json: await res.json().catch(() => ({})) };
}

/** the VM column: namespace/name (Kubernetes, OpenStack project), or the name */
const vmCell = (p: Pick<PortView, 'vm'>) => (p.vm ? (p.vm.namespace ? `${p.vm.namespace}/${p.vm.name}` : p.vm.name) : '-');

const table = (rows: string[][]): string => {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n');
};

/** Arrivals and their convergence; milestones in seconds after the guest's first frame here. */
export function formatMigrations(ms: MigrationView[]): string {
  const t = (m: Milestone | null) => (m ? `${m.afterFirstFrame >= 0 ? '+' : ''}${m.afterFirstFrame.toFixed(3)}` : '-');
  const rows = [['MAC', 'PORT', 'VM', 'BRIDGE', 'STATE', 'CONVERGENCE', 'FIRST-FRAME', 'ANNOUNCED', 'JOINED', 'FORWARDING', 'RARP', 'OUT', 'FABRIC']];
  for (const m of ms)
    rows.push([
      m.mac,
      m.port,
      vmCell(m),
      m.bridge || '-',
      m.state,
      m.convergenceSeconds != null ? `${m.convergenceSeconds.toFixed(3)}s` : '-',
      m.firstFrameAt,
      t(m.firstAnnouncement),
      t(m.joined),
      t(m.forwarding),
      t(m.firstRarpSent),
      m.firstUplinkOut ? `${t(m.firstUplinkOut)} ${m.firstUplinkOut.uplink ?? ''}`.trimEnd() : '-',
      m.firstFabricUnicast ? `${t(m.firstFabricUnicast)} ${m.firstFabricUnicast.uplink ?? ''}`.trimEnd() : '-',
    ]);
  return table(rows);
}

/** how many recent arrivals `status` shows */
const STATUS_ARRIVALS = 20;

export function formatPorts(ports: PortView[]): string {
  const rows = [['PORT', 'VM', 'BRIDGE', 'STATE', 'VERDICT', 'MAC', 'ANNOUNCED', 'BEFORE-FWD', 'ATTACH-DELAY', 'RARP-SENT']];
  for (const p of ports) {
    const macs = p.macs.length ? p.macs : [null];
    for (const m of macs)
      rows.push([
        p.name,
        vmCell(p),
        p.bridge || '-',
        p.state,
        m ? m.verdict : p.verdict,
        m?.mac ?? '-',
        m ? String(m.announcements) : '-',
        m ? String(m.framesBeforeForwarding) : '-',
        m?.attachDelaySeconds != null ? `${m.attachDelaySeconds.toFixed(3)}s` : '-',
        m ? String(m.rarpSent) : '-',
      ]);
  }
  return table(rows);
}

export async function status(flags: Values): Promise<number> {
  const r = await call('GET', `${url(flags, 'status')}/api/v1/ports`);
  if (r.status !== 200) throw new BridgewatchError('EKERNEL', `GET /api/v1/ports: HTTP ${r.status} ${r.json.error ?? ''}`);
  // the most recent arrivals: page through from the start (the daemon keeps a bounded log)
  const arrivals: MigrationView[] = [];
  for (let since = 0, i = 0; i < 100; i++) {
    const m = await call('GET', `${url(flags, 'status')}/api/v1/migrations?since=${since}&limit=1000`);
    if (m.status !== 200) break; // an older daemon: no convergence
    const page = m.json as MigrationPage;
    arrivals.push(...page.migrations);
    if (!page.migrations.length || page.next === since) break;
    since = page.next;
  }
  const recent = arrivals.slice(-STATUS_ARRIVALS);
  if (flags.json) {
    console.log(JSON.stringify({ ...r.json, migrations: recent }, null, 2));
    return 0;
  }
  console.log(r.json.ports.length ? formatPorts(r.json.ports) : 'no watched ports');
  if (recent.length) console.log(`\narrivals (the last ${recent.length}; milestones in seconds after the guest's first frame here):\n${formatMigrations(recent)}`);
  return 0;
}

export async function announce(flags: Values): Promise<number> {
  if (typeof flags.port !== 'string' || !flags.port) throw new BridgewatchError('ECONFIG', 'announce --port: required (the guest\'s tap, e.g. vnet3)');
  const body = { port: flags.port, ...(typeof flags.mac === 'string' ? { mac: flags.mac } : {}) };
  const r = await call('POST', `${url(flags, 'announce')}/api/v1/announce`, body, token(flags, process.env));
  if (r.status !== 202) {
    console.error(`bridgewatch: announce on ${flags.port}: HTTP ${r.status}: ${r.json.error ?? 'failed'}`);
    return r.status === 400 ? 2 : 1;
  }
  console.log(`announcing ${r.json.macs.join(', ')} on ${r.json.port}: ${r.json.rounds} RARP rounds (${r.json.mode})`);
  return 0;
}
