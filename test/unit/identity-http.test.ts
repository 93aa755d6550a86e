// The VM of a guest port as the daemon shows it, through a real (unstarted) Daemon's HTTP deps
// and Registry, with its IdentityResolver reading a real --identity-file: the API's `vm`
// (serialized through the response schema), bridgewatch_guest_info, identity_errors_total at 0
// for every source, and `bridgewatch status`'s VM column.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { formatPorts } from '../../src/client.js';
import { loadConfig } from '../../src/config.js';
import { Daemon } from '../../src/daemon.js';
import { buildServer } from '../../src/http/server.js';
import type { PortView } from '../../src/tracker/types.js';
import { parseExposition, sampleValue, seriesOf } from '../helpers/daemon-metrics.js';
import { bpfEvent } from '../helpers/events.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function fixture() {
  const dir = mkdtempSync(join(tmpdir(), 'bwt-identity-http-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'identity.json');
  writeFileSync(file, JSON.stringify([{ port: 'tap0', vm: 'web-7', vm_uuid: 'u-7', vm_namespace: 'shop' }, { mac: '52:54:00:00:00:0b', vm: 'db-1' }]));
  const config = loadConfig({ flags: { 'identity-file': file, 'libvirt-dir': join(dir, 'no-libvirt'), kubevirt: 'off' } });
  const daemon = new Daemon({ config, log: pino({ level: 'silent' }) });
  await daemon.identity.start();
  cleanup.push(() => (daemon.identity.stop(), daemon.healer.stop()));
  const t = daemon.tracker;
  const base = { kind: 'tun', guest: true, carrier: true, initial: true, state: 'forwarding' as const, bridge: 'br0', tsNs: 1n };
  t.portAppeared({ ...base, ifindex: 7, name: 'tap0' }); // named by port
  t.portAppeared({ ...base, ifindex: 8, name: 'tap1' }); // named by the MAC its guest sends from
  t.frame(bpfEvent(2n, 8, '52:54:00:00:00:0b', { first: true, forwarding: true, bridgePort: true, portState: 3 }));
  t.portAppeared({ ...base, ifindex: 9, name: 'tap2' }); // nobody knows it
  t.portAppeared({ ...base, ifindex: 10, name: 'up0', kind: 'veth', guest: false }); // an uplink: no VM
  const app = buildServer(daemon.httpDeps());
  cleanup.push(() => app.close());
  return { daemon, app };
}

describe('a guest port\'s VM in the API, the metrics and `bridgewatch status`', () => {
  it('GET /api/v1/ports: vm on guest ports (null when unknown), none on uplinks', async () => {
    const { app } = await fixture();
    const ports: PortView[] = (await app.inject({ method: 'GET', url: '/api/v1/ports' })).json().ports;
    const by = Object.fromEntries(ports.map((p) => [p.name, p]));
    expect(by.tap0.vm).toEqual({ name: 'web-7', uuid: 'u-7', namespace: 'shop', source: 'file' });
    expect(by.tap1.vm).toEqual({ name: 'db-1', uuid: '', namespace: '', source: 'file' });
    expect(by.tap2.vm).toBeNull();
    expect('vm' in by.up0).toBe(false);
    const one = await app.inject({ method: 'GET', url: '/api/v1/ports/tap0' });
    expect(one.json().vm).toEqual(by.tap0.vm);
  });

  it('bridgewatch_guest_info per identified guest port; identity_errors_total at 0 for every source', async () => {
    const { app } = await fixture();
    const s = parseExposition((await app.inject({ method: 'GET', url: '/metrics' })).body);
    expect(seriesOf(s, 'bridgewatch_guest_info').map((x) => x.labels)).toEqual([
      { port: 'tap0', mac: '', vm: 'web-7', vm_uuid: 'u-7', vm_namespace: 'shop', source: 'file' },
      { port: 'tap1', mac: '52:54:00:00:00:0b', vm: 'db-1', vm_uuid: '', vm_namespace: '', source: 'file' },
    ]);
    for (const source of ['libvirt', 'kubevirt', 'file']) expect(sampleValue(s, 'bridgewatch_identity_errors_total', { source }), source).toBe(0);
  });

  it('the VM column of `bridgewatch status`: namespace/name, the name alone, or -', async () => {
    const { app } = await fixture();
    const ports: PortView[] = (await app.inject({ method: 'GET', url: '/api/v1/ports' })).json().ports;
    const rows = formatPorts(ports).split('\n').map((l) => l.split(/\s{2,}/));
    expect(rows[0].slice(0, 3)).toEqual(['PORT', 'VM', 'BRIDGE']);
    expect(Object.fromEntries(rows.slice(1).map((r) => [r[0], r[1]]))).toEqual({ tap0: 'shop/web-7', tap1: 'db-1', tap2: '-', up0: '-' });
  });
});
