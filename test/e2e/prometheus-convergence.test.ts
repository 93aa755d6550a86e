// The fabric never comes back for a late guest nobody healed (announce off): bridgewatch reports
// it unconverged, and a real Prometheus fires BridgewatchFabricNotConverged naming its VM.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/lab/qemu.js';
import type { MigrationPage } from '../../src/tracker/convergence-view.js';
import type { PortView } from '../../src/tracker/types.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { arp, mac } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';
import { repoFile } from '../helpers/prom-exprs.js';
import { PrometheusProcess, stopAllPrometheus } from '../helpers/prom-server.js';

const skip =
  cliMissing() ||
  missing.bpf ||
  missing.tun ||
  missing.bridge ||
  (['prometheus', 'curl'].filter((b) => !findExecutable(b)).join(' and ') && 'prometheus or curl not in PATH (scripts/setup.sh installs them)');

const PORT = 9726;
const INSTANCE = `127.0.0.1:${PORT}`;
const M = '52:54:00:9b:00:01';
let dir = '';
let guest: Guest | undefined;

afterAll(async () => {
  await stopAllPrometheus();
  await killAllDaemons();
  guest?.close();
  cleanupAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!!skip)('BridgewatchFabricNotConverged in a real Prometheus', () => {
  let ns: TestNetns;
  let d: DaemonProcess;
  let prom: PrometheusProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bwt-promconv-'));
    ns = new TestNetns('promconv');
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0');
    ns.ip('link', 'set', 'br0', 'up');
    ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p');
    ns.ip('link', 'set', 'up0', 'master', 'br0');
    ns.ip('link', 'set', 'up0', 'up');
    ns.ip('link', 'set', 'up0p', 'up');
    const identity = join(dir, 'identity.json');
    writeFileSync(identity, JSON.stringify([{ port: 'tap-lost', vm: 'db-2', vm_uuid: 'u-2', vm_namespace: 'prod' }]));
    d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--announce', 'off', '--converge-timeout', '2s', '--identity-file', identity], { port: PORT });
    prom = await PrometheusProcess.start(ns, { dir, targets: [INSTANCE], job: 'bridgewatch', ruleFiles: [repoFile('grafana/alerts.yml')], interval: '1s' });
  }, 60_000);

  it('a late guest whose traffic goes out unanswered is unconverged, and the alert fires naming its VM', async () => {
    guest = new Guest(ns, 'tap-lost', mac(M));
    const port = (ok: (p: PortView) => boolean, what: string) =>
      until(`tap-lost: ${what}`, () => d.get('/api/v1/ports/tap-lost'), (r) => r.status === 200 && ok(r.json as PortView), 10_000);
    await port((p) => p.bridge === '', 'watched');
    guest.announce(5); // QEMU's burst, into a tap in no bridge
    await sleep(300);
    ns.ip('link', 'set', 'tap-lost', 'master', 'br0');
    await port((p) => p.state === 'forwarding' && p.verdict === 'late', 'late, forwarding');
    // the guest's own traffic: who-has for its gateway, every half second, never answered
    const timer = setInterval(() => guest!.send(arp(mac(M), 1, '10.9.1.7', '10.9.1.1')), 500);
    try {
      const v = await until(
        'unconverged in the API',
        async () => ((await d.get('/api/v1/migrations')).json as MigrationPage).migrations.find((x) => x.mac === M),
        (x) => x?.state === 'unconverged',
        10_000,
      );
      expect(v).toMatchObject({ port: 'tap-lost', bridge: 'br0', vm: { name: 'db-2', namespace: 'prod' }, firstFabricUnicast: null });
      expect(v!.firstUplinkOut?.uplink).toBe('up0');
      const firing = await until(
        'BridgewatchFabricNotConverged firing',
        () => prom.alerts(),
        (as) => as.some((a) => a.labels.alertname === 'BridgewatchFabricNotConverged' && a.state === 'firing'),
        60_000,
        1000,
      );
      const a = firing.find((x) => x.labels.alertname === 'BridgewatchFabricNotConverged')!;
      expect(a.labels).toEqual({ alertname: 'BridgewatchFabricNotConverged', job: 'bridgewatch', instance: INSTANCE, bridge: 'br0', severity: 'critical' });
      expect(a.annotations.description).toContain(`Unconverged: tap-lost (${M}).`);
      expect(a.annotations.description).toContain('VMs: db-2 (prod) on tap-lost.');
    } finally {
      clearInterval(timer);
    }
  }, 90_000);
});
