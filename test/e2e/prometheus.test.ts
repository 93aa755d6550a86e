// A real Prometheus in the loop: Debian's `prometheus` scrapes the built daemon (`bridgewatch
// run`), both inside a namespace of our own, while guests on a bridge there attach late, on time
// and silently. Then, only through Prometheus's HTTP API (from inside the namespace): the target
// is up, the late-attach and silent-guest alerts go off for br0 and no other alert does, every
// rule loads and evaluates without error, and every PromQL expression of the Grafana dashboard
// and of the alert rules parses and returns data, as a panel would draw it. The exposition is
// also checked against the metric contract, both ways.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarpFrame } from '../../src/announce/frames.js';
import { announceOffsets, ANNOUNCE_DEFAULTS } from '../../src/announce/schedule.js';
import { findExecutable } from '../../src/lab/qemu.js';
import { netnsExists } from '../../src/sys/netns.js';
import type { PortView } from '../../src/tracker/types.js';
import { type Sample } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { ether, ipv4Frame, mac } from '../helpers/frames.js';
import { PacketSocket } from '../../src/sys/packet.js';
import { Guest } from '../helpers/guest.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { contractSeries, METRIC_CONTRACT, NODEJS_PREFIX, PROCESS_METRICS, promqlSelectors } from '../helpers/metric-contract.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';
import { alertNamesOf, dashboardExprs, repoFile, ruleExprs, substitute, type Expr, type GrafanaVars } from '../helpers/prom-exprs.js';
import { PrometheusProcess, stopAllPrometheus, type PromSeries } from '../helpers/prom-server.js';

const skip =
  cliMissing() ||
  kernelMissing.bpf ||
  kernelMissing.tun ||
  kernelMissing.bridge ||
  kernelMissing.bridgeBtf ||
  (['prometheus', 'curl'].filter((b) => !findExecutable(b)).join(' and ') && 'prometheus or curl not in PATH (scripts/setup.sh installs them)');

const DAEMON_PORT = 9725;
const INSTANCE = `127.0.0.1:${DAEMON_PORT}`;
const SILENT_AFTER_MS = 2000;
const QEMU_OFFSETS = announceOffsets(ANNOUNCE_DEFAULTS); // 0, 50, 200, 450, 800 ms
/** how long after QEMU's burst the "hotplug script" enslaves the late tap */
const LATE_MS = 1000;

const GUESTS = {
  late: { tap: 'tap-late', mac: '52:54:00:9a:00:01' },
  onTime: { tap: 'tap-ontime', mac: '52:54:00:9a:00:02' },
  silent: { tap: 'tap-silent', mac: '52:54:00:9a:00:03' },
} as const;

/** the alerts this scenario must set off (for br0); every other alert must stay inactive */
const EXPECTED_ALERTS = ['BridgewatchLateAttach', 'BridgewatchSilentGuest'];

/** Grafana's variables, as a dashboard over the last 5 minutes would fill them in: all, and the real values */
const VARIANTS: [string, Partial<GrafanaVars>][] = [
  ['all', { rateInterval: '1m', interval: '15s', range: '5m', instance: '.*', bridge: '.*' }],
  ['selected', { rateInterval: '1m', interval: '15s', range: '5m', instance: INSTANCE, bridge: 'br0' }],
];

const guests = new Set<Guest>();
let dir = '';
let ns: TestNetns | undefined;
let daemon: DaemonProcess | undefined;
let prom: PrometheusProcess | undefined;
/** unix seconds: the range the dashboard queries cover (Prometheus up to the end of the scenario) */
let start = 0;
let end = 0;

function guestOn(n: TestNetns, tap: string, m: string): Guest {
  const g = new Guest(n, tap, mac(m));
  guests.add(g);
  return g;
}

/** QEMU's post-migration burst: its RARP at QEMU's offsets. */
async function qemuBurst(g: Guest): Promise<void> {
  let prev = 0;
  for (const off of QEMU_OFFSETS) {
    await sleep(off - prev);
    prev = off;
    g.send(rarpFrame(g.mac));
  }
}

const portView = (name: string, ok: (p: PortView) => boolean, what: string, ms = 10_000) =>
  until(`${name}: ${what}`, () => daemon!.get(`/api/v1/ports/${name}`), (r) => r.status === 200 && ok(r.json as PortView), ms).then((r) => r.json as PortView);

/** A value from Prometheus (instant query), or undefined when the query returns no series. */
async function promValue(expr: string): Promise<number | undefined> {
  const r = await prom!.result(expr);
  return r.length ? Number(r[0].value![1]) : undefined;
}
const promHas = (expr: string, want: number, ms = 20_000) =>
  until(`Prometheus: ${expr} == ${want}`, () => promValue(expr), (v) => v === want, ms);

const finite = (s: PromSeries[]): boolean =>
  s.some((x) => [...(x.values ?? []), ...(x.value ? [x.value] : [])].some(([, v]) => Number.isFinite(Number(v))));

/** For failure messages: every scrape of the scenario, as Prometheus recorded it. */
async function scrapeHistory(): Promise<string> {
  const r = await prom!.queryRange('up{job="bridgewatch"} * 1000 + scrape_duration_seconds{job="bridgewatch"}', start, end, '1s').catch((e) => ({ body: String(e) }));
  const t = await prom!.get('/api/v1/targets', { state: 'active' }).catch((e) => ({ body: String(e) }));
  return `scenario ${start.toFixed(3)} .. ${end.toFixed(3)}\nup*1000 + scrape seconds: ${r.body}\ntargets: ${t.body}`;
}

/** the guests: late (burst into an unbridged tap, joined 1 s later), on time, and silent */
async function scenario(n: TestNetns): Promise<void> {
  const late = guestOn(n, GUESTS.late.tap, GUESTS.late.mac);
  const onTime = guestOn(n, GUESTS.onTime.tap, GUESTS.onTime.mac);
  const silent = guestOn(n, GUESTS.silent.tap, GUESTS.silent.mac);
  for (const g of [late, onTime, silent]) await portView(g.tapName, (p) => p.bridge === '', 'watched before joining');

  // silent first: it takes --silent-after to be judged. Joined, forwarding, then frames that
  // are never an announcement
  n.ip('link', 'set', silent.tapName, 'master', 'br0');
  await portView(silent.tapName, (p) => p.state === 'forwarding', 'forwarding');
  silent.send(ipv4Frame(silent.mac), ipv4Frame(silent.mac));

  // late: QEMU's whole burst dies on a tap in no bridge; the hotplug script enslaves it after
  await qemuBurst(late);
  await portView(late.tapName, (p) => p.macs[0]?.framesBeforeForwarding === QEMU_OFFSETS.length, 'the burst seen before forwarding');
  await sleep(LATE_MS);
  n.ip('link', 'set', late.tapName, 'master', 'br0');

  // on time: joined and forwarding before the guest's first frame
  n.ip('link', 'set', onTime.tapName, 'master', 'br0');
  await portView(onTime.tapName, (p) => p.state === 'forwarding', 'forwarding');
  await sleep(100);
  await qemuBurst(onTime);
  // the fabric answers the on-time guest (a unicast frame into the uplink): it converged
  const fabric = n.run(() => new PacketSocket());
  try {
    const f = ether(onTime.mac, mac('02:fa:b0:00:00:01'), 0x0800, Buffer.alloc(46));
    f[14] = 0x45;
    fabric.send(n.ifindex('up0p'), f);
  } finally {
    fabric.close();
  }

  const l = await portView(late.tapName, (p) => p.verdict === 'late' && p.macs[0]?.rarpSent === QEMU_OFFSETS.length, 'late and healed');
  expect(l.macs[0]).toMatchObject({ mac: GUESTS.late.mac, verdict: 'late', framesBeforeForwarding: 5, announcements: 5 });
  await portView(onTime.tapName, (p) => p.verdict === 'on_time' && p.macs[0]?.announcements === QEMU_OFFSETS.length, 'on time');
  await portView(silent.tapName, (p) => p.verdict === 'silent', 'silent', SILENT_AFTER_MS + 8_000);
}

beforeAll(() => {
  if (!skip) dir = mkdtempSync(join(tmpdir(), 'bwt-prom-'));
});

afterAll(async () => {
  const errors: unknown[] = [];
  const attempt = async (f: () => unknown) => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  await attempt(() => stopAllPrometheus());
  await attempt(async () => {
    if (daemon?.running) await daemon.stop();
  });
  await attempt(() => killAllDaemons());
  for (const g of guests) await attempt(() => g.close());
  guests.clear();
  await attempt(() => cleanupAll());
  if (dir) rmSync(dir, { recursive: true, force: true });
  // nothing left behind: our namespace and both processes are gone
  if (ns) expect(netnsExists(ns.name), ns.name).toBe(false);
  if (prom) expect(prom.running).toBe(false);
  if (daemon) expect(daemon.running).toBe(false);
  if (errors.length) throw errors[0];
}, 30_000);

describe.skipIf(!!skip)('a real Prometheus scraping bridgewatch through a late attach', () => {
  beforeAll(async () => {
    ns = new TestNetns('prom'); // bwt-prom-<pid>-<n>
    execFileSync('ip', ['netns', 'exec', ns.name, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    ns.ip('link', 'set', 'br0', 'up');
    // the uplink: a veth in br0 whose peer is up, so the re-announced RARP leaves the bridge
    // (and ends in this namespace: nothing goes outside it)
    ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p');
    ns.ip('link', 'set', 'up0', 'master', 'br0');
    ns.ip('link', 'set', 'up0', 'up');
    ns.ip('link', 'set', 'up0p', 'up');

    // the late guest's VM is known (an identity file): the alert names it through guest_info
    const identity = join(dir, 'identity.json');
    writeFileSync(identity, JSON.stringify([{ port: GUESTS.late.tap, vm: 'web-7', vm_uuid: 'u-7', vm_namespace: 'shop' }]));
    // --converge-timeout: the silent guest's frames go out unanswered; its own test is prometheus-convergence
    daemon = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--silent-after', `${SILENT_AFTER_MS / 1000}s`, '--identity-file', identity, '--converge-timeout', '10m'], { port: DAEMON_PORT });
    start = Date.now() / 1000;
    prom = await PrometheusProcess.start(ns, {
      dir,
      targets: [INSTANCE],
      job: 'bridgewatch', // the rules assume it
      ruleFiles: [repoFile('grafana/alerts.yml')],
      interval: '1s',
    });
    // a baseline before anything happens, so increase() sees every counter go up from 0
    await promHas(`up{job="bridgewatch", instance="${INSTANCE}"}`, 1);
    await promHas('bridgewatch_late_attach_total{bridge="br0"}', 0);
    await promHas('bridgewatch_silent_guests_total{bridge="br0"}', 0);

    await scenario(ns);

    // Prometheus has scraped the outcome and evaluated the rules over it
    await promHas('bridgewatch_late_attach_total{bridge="br0"}', 1);
    await promHas('bridgewatch_silent_guests_total{bridge="br0"}', 1);
    await promHas('bridgewatch_rarp_sent_total{bridge="br0", reason="late_attach"}', QEMU_OFFSETS.length);
    await promHas('bridgewatch_first_frame_delay_seconds_count{bridge="br0"}', 2); // on time and silent
    await promHas('bridgewatch_convergence_seconds_count{bridge="br0"}', 1); // the on-time guest
    await until(
      'Prometheus: the expected alerts active',
      () => prom!.alerts(),
      (as) => EXPECTED_ALERTS.every((n) => as.some((a) => a.labels.alertname === n && a.labels.bridge === 'br0')),
      20_000,
    );
    // a panel's range query has its steps aligned to its start: let a few more scrapes land, so
    // that steps after the last event see it (a step falls up to 1 s before the end)
    await sleep(3_000);
    end = Date.now() / 1000;
  }, 90_000);

  it('scrapes the daemon: the target is up, healthy, in job bridgewatch', async () => {
    const r = await prom!.get('/api/v1/targets', { state: 'active' });
    expect(r.status).toBe(200);
    const targets = r.json.data.activeTargets;
    expect(targets).toHaveLength(1);
    expect(targets[0]).toMatchObject({ health: 'up', lastError: '', labels: { job: 'bridgewatch', instance: INSTANCE }, scrapeUrl: `http://${INSTANCE}/metrics` });
    expect(await promValue('up{job="bridgewatch"}')).toBe(1);
    expect(await promValue('bridgewatch_ready')).toBe(1);
    expect((await prom!.result('bridgewatch_build_info'))[0].metric).toMatchObject({ mode: 'ebpf', job: 'bridgewatch', instance: INSTANCE });
  });

  it('loads every alert rule and evaluates each without error', async () => {
    const r = await prom!.get('/api/v1/rules');
    expect(r.status).toBe(200);
    const rules: { name: string; health: string; lastError?: string; type: string }[] = r.json.data.groups.flatMap((g: { rules: unknown[] }) => g.rules);
    expect(rules.map((x) => x.name).sort()).toEqual(alertNamesOf().sort());
    for (const x of rules) expect({ name: x.name, health: x.health, lastError: x.lastError ?? '' }).toEqual({ name: x.name, health: 'ok', lastError: '' });
  });

  it('sets off BridgewatchLateAttach and BridgewatchSilentGuest for br0, and no other alert', async () => {
    const alerts = await prom!.alerts();
    const late = alerts.filter((a) => a.labels.alertname === 'BridgewatchLateAttach');
    expect(late).toHaveLength(1);
    expect(late[0].labels).toEqual({ alertname: 'BridgewatchLateAttach', job: 'bridgewatch', instance: INSTANCE, bridge: 'br0', severity: 'warning' });
    expect(['pending', 'firing']).toContain(late[0].state);
    expect(late[0].state).toBe('firing'); // no `for:`: the first evaluation fires it
    expect(late[0].annotations.description).toMatch(/^1 port\(s\) on bridge br0 of 127\.0\.0\.1:9725 joined/);
    // the VM, through bridgewatch_guest_info joined with port_info in Prometheus
    expect(late[0].annotations.description).toMatch(/never reached the network\. VMs whose port appeared on that bridge in that time: web-7 \(shop\) on tap-late\.$/);
    expect(late[0].annotations.runbook).toMatch(/\S/);

    const silent = alerts.filter((a) => a.labels.alertname === 'BridgewatchSilentGuest');
    expect(silent).toHaveLength(1);
    expect(silent[0]).toMatchObject({ state: 'firing', labels: { bridge: 'br0', instance: INSTANCE, job: 'bridgewatch' } });
    expect(silent[0].annotations.description).toMatch(/^1 guest\(s\) on bridge br0/);

    // not even pending: down, not ready, pcap mode, lost-and-not-healed, send errors, STP, ...
    const others = alerts.filter((a) => !EXPECTED_ALERTS.includes(a.labels.alertname));
    expect(others.map((a) => `${a.labels.alertname} ${a.state}`)).toEqual([]);
    // and as the rules page shows them: only these two firing, every other rule inactive
    const r = await prom!.get('/api/v1/rules', { type: 'alert' });
    const states = Object.fromEntries(r.json.data.groups.flatMap((g: { rules: { name: string; state: string }[] }) => g.rules.map((x) => [x.name, x.state])));
    expect(states).toEqual(Object.fromEntries(alertNamesOf().map((n) => [n, EXPECTED_ALERTS.includes(n) ? 'firing' : 'inactive'])));
    for (const n of ['BridgewatchDown', 'BridgewatchNotReady', 'BridgewatchBpfUnavailable', 'BridgewatchAnnouncementsLostNotHealed', 'BridgewatchReannounceFailing'])
      expect(states[n], n).toBe('inactive');
  });

  it('evaluates every rule expression: the firing ones return data for br0, the others parse and return nothing', async () => {
    const problems: string[] = [];
    for (const e of ruleExprs()) {
      const r = await prom!.query(e.expr);
      if (r.status !== 200 || r.json?.status !== 'success') { problems.push(`${e.where}: HTTP ${r.status} ${r.body}`); continue; }
      const got: PromSeries[] = r.json.data.result;
      if (EXPECTED_ALERTS.includes(e.where)) {
        if (!got.some((s) => s.metric.bridge === 'br0' && Number(s.value![1]) > 0)) problems.push(`${e.where}: no data for br0: ${JSON.stringify(got)}`);
      } else if (got.length) problems.push(`${e.where}: would fire: ${JSON.stringify(got)}`);
      // and every metric it watches is one Prometheus has: an alert on a series that never
      // exists can never fire
      for (const s of promqlSelectors(e.expr)) {
        if ((await prom!.result(`group({__name__="${s.metric}", job="bridgewatch"})`)).length === 0) problems.push(`${e.where}: ${s.metric} has no series`);
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(VARIANTS)('runs every dashboard expression (variables: %s): it parses and returns data', async (_name, vars) => {
    const problems: string[] = [];
    const exprs: Expr[] = dashboardExprs();
    expect(exprs.length).toBeGreaterThanOrEqual(30);
    for (const e of exprs) {
      const expr = substitute(e.expr, vars);
      expect(expr, e.where).not.toMatch(/\$/);
      // instant query, as a stat panel's last value and Grafana's variable queries run
      const i = await prom!.query(expr);
      if (i.status !== 200 || i.json?.status !== 'success') { problems.push(`${e.where}: instant: HTTP ${i.status} ${i.body} for ${expr}`); continue; }
      // range query over the scenario, step 1 s, as a panel draws it
      const r = await prom!.queryRange(expr, start, end, '1s');
      if (r.status !== 200 || r.json?.status !== 'success') { problems.push(`${e.where}: range: HTTP ${r.status} ${r.body} for ${expr}`); continue; }
      // a panel of series that exist only while something is so (an unconverged guest): parsing is its test here
      const sels = promqlSelectors(expr).map((s) => METRIC_CONTRACT.find((m) => m.name === s.metric));
      const onlyWhile = sels.some((m) => m?.onlyWhile) && sels.every((m) => m?.onlyWhile || m?.name === 'bridgewatch_guest_info');
      if (!onlyWhile && !finite(r.json.data.result)) problems.push(`${e.where}: no data: ${expr} -> ${JSON.stringify(r.json.data.result).slice(0, 300)}`);
    }
    expect(problems, await scrapeHistory()).toEqual([]);
  }, 60_000);

  it('fills the dashboard variables as Grafana would (label values through the API)', async () => {
    const instances = await prom!.get('/api/v1/label/instance/values', { 'match[]': 'bridgewatch_build_info' });
    expect(instances.json.data).toEqual([INSTANCE]);
    const bridges = await prom!.get('/api/v1/label/bridge/values', { 'match[]': `bridgewatch_port_joins_total{instance=~"${INSTANCE}"}` });
    expect(bridges.json.data).toEqual(['br0']);
  });

  it('shows the scenario in the series the panels draw', async () => {
    const v = (e: string) => promValue(e);
    expect(await v('sum(bridgewatch_frames_before_forwarding_total{bridge="br0", kind="rarp"})')).toBe(5);
    expect(await v('sum(bridgewatch_announcements_total{bridge="br0", kind="rarp", delivered="false"})')).toBe(5);
    expect(await v('sum(bridgewatch_announcements_total{bridge="br0", kind="rarp", delivered="true"})')).toBe(5);
    expect(await v('bridgewatch_attach_delay_seconds_count{bridge="br0"}')).toBe(1);
    // joined after QEMU's last RARP (0.8 s) plus the hotplug script's wait
    expect(await v('bridgewatch_attach_delay_seconds_bucket{bridge="br0", le="0.8"}')).toBe(0);
    expect(await v('bridgewatch_attach_delay_seconds_sum{bridge="br0"}')).toBeGreaterThan((QEMU_OFFSETS.at(-1)! + LATE_MS) / 1000 - 0.8);
    expect(await v('bridgewatch_reannounce_latency_seconds_count{bridge="br0"}')).toBe(1);
    expect(await v('bridgewatch_rarp_send_errors_total{bridge="br0"}')).toBe(0);
    expect(await v('bridgewatch_port_joins_total{bridge="br0"}')).toBe(3);
    expect(await v('bridgewatch_ports_watched{bridge="br0"}')).toBe(4); // up0 and three taps
    expect(await v('bridgewatch_guest_macs_tracked')).toBe(3);
    expect(await v('bridgewatch_bridge_stp_enabled{bridge="br0"}')).toBe(0);
    expect(await v('bridgewatch_bridge_forward_delay_seconds{bridge="br0"}')).toBe(0);
    expect(await v('bridgewatch_announce_mode{mode="on"}')).toBe(1);
    // nothing was suppressed and no attach failed, yet their panels have series to draw (at 0)
    expect(await v('sum(bridgewatch_announce_suppressed_total)')).toBe(0);
    expect(await v('count(bridgewatch_announce_suppressed_total)')).toBeGreaterThanOrEqual(8);
    expect(await v('sum(bridgewatch_attach_errors_total)')).toBe(0);
    expect(await v('count(bridgewatch_attach_errors_total)')).toBeGreaterThanOrEqual(4);
    expect(await v('count(bridgewatch_tracker_refused_total)')).toBe(3);
  });

  it('would notice an expression that is broken or draws nothing (the checks are not vacuous)', async () => {
    expect((await prom!.query('sum(rate(bridgewatch_ready[1m])')).status).toBe(400);
    const none = await prom!.queryRange('sum by (bridge) (rate(bridgewatch_no_such_metric_total[1m]))', start, end, '1s');
    expect(none.json.status).toBe('success');
    expect(finite(none.json.data.result)).toBe(false);
    const nan = await prom!.queryRange('histogram_quantile(0.5, sum by (le) (rate(bridgewatch_no_such_seconds_bucket[1m])))', start, end, '1s');
    expect(finite(nan.json.data.result)).toBe(false);
  });

  it('exposes exactly the metric contract: every exposed name and label is in it (nodejs_* aside), every contract and process_* metric is exposed', async () => {
    const samples: Sample[] = await daemon!.metrics();
    const series = contractSeries();
    const problems: string[] = [];
    for (const s of samples) {
      if (s.name.startsWith(NODEJS_PREFIX)) continue; // the Node.js runtime's own, which vary with its version
      const c = series.get(s.name);
      if (!c) { problems.push(`${s.name}: not in the metric contract`); continue; }
      const want = [...c.labelNames].filter((l) => l !== 'instance' && l !== 'job').sort();
      if (JSON.stringify(Object.keys(s.labels).sort()) !== JSON.stringify(want)) problems.push(`${s.name}: labels ${Object.keys(s.labels)} (contract: ${want})`);
      for (const [l, allowed] of Object.entries(c.metric.labels)) {
        if (allowed && l in s.labels && !allowed.includes(s.labels[l])) problems.push(`${s.name}: ${l}="${s.labels[l]}" not in ${allowed}`);
      }
    }
    const exposed = new Set(samples.map((s) => s.name));
    expect([...exposed].filter((n) => n.startsWith(NODEJS_PREFIX))).toContain('nodejs_heap_size_used_bytes');
    for (const m of [...METRIC_CONTRACT, ...PROCESS_METRICS]) {
      if ('onlyWhile' in m && m.onlyWhile) continue; // not so in this scenario
      const names = m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
      for (const n of names) if (!exposed.has(n)) problems.push(`${n}: in the contract, not exposed`);
    }
    expect(problems).toEqual([]);

    // and what Prometheus stored for the job is the same set, plus its own per-target series and
    // the rule engine's alert state
    const r = await prom!.get('/api/v1/label/__name__/values', { 'match[]': '{job="bridgewatch"}' });
    const own = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'scrape_samples_post_metric_relabeling', 'scrape_series_added', 'ALERTS', 'ALERTS_FOR_STATE']);
    expect((r.json.data as string[]).filter((n) => !own.has(n)).sort()).toEqual([...exposed].sort());
  });
});
