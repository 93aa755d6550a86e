// `bridgewatch status` and `bridgewatch announce`: small clients of a running daemon's API.
import { BridgewatchError } from './errors.js';
import type { PortView } from './tracker/types.js';

const url = (flags: Record<string, string | boolean>) =>
  String(flags.url ?? process.env.BRIDGEWATCH_URL ?? 'http://127.0.0.1:9725').replace(/\/$/, '');

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
const vmCell = (p: PortView) => (p.vm ? (p.vm.namespace ? `${p.vm.namespace}/${p.vm.name}` : p.vm.name) : '-');

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
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd()).join('\n');
}

export async function status(flags: Record<string, string | boolean>): Promise<number> {
  const r = await call('GET', `${url(flags)}/api/v1/ports`);
  if (r.status !== 200) throw new BridgewatchError('EKERNEL', `GET /api/v1/ports: HTTP ${r.status} ${r.json.error ?? ''}`);
  if (flags.json) console.log(JSON.stringify(r.json, null, 2));
  else console.log(r.json.ports.length ? formatPorts(r.json.ports) : 'no watched ports');
  return 0;
}

export async function announce(flags: Record<string, string | boolean>): Promise<number> {
  if (typeof flags.port !== 'string') throw new BridgewatchError('ECONFIG', 'announce --port: required (the guest\'s tap, e.g. vnet3)');
  const token = String(flags.token ?? process.env.BRIDGEWATCH_API_TOKEN ?? '');
  const body = { port: flags.port, ...(typeof flags.mac === 'string' ? { mac: flags.mac } : {}) };
  const r = await call('POST', `${url(flags)}/api/v1/announce`, body, token || undefined);
  if (r.status !== 202) {
    console.error(`bridgewatch: announce on ${flags.port}: HTTP ${r.status}: ${r.json.error ?? 'failed'}`);
    return r.status === 400 ? 2 : 1;
  }
  console.log(`announcing ${r.json.macs.join(', ')} on ${r.json.port}: ${r.json.rounds} RARP rounds (${r.json.mode})`);
  return 0;
}
