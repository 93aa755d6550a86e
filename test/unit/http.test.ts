// The HTTP API through app.inject(): every route's happy path and its bad inputs. Nothing here
// is a stub of the server or of what it serves: the deps are a real (unstarted) Daemon's
// httpDeps(), over its real Tracker, Metrics and prom-client Registry, fed with the facts
// netlink and the kernel would have given it. Only /readyz's "ready" answer is stood in for,
// since being ready means BPF loaded in a kernel (test/e2e/daemon.test.ts checks that one).
// The watcher never started, so no bridge has an uplink here: an announce that passes every
// check is refused as no_uplink. What a 202 sends is checked on the wire in
// test/e2e/announce-api.test.ts.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import type { BpfEvent } from '../../src/bpf/abi.js';
import { loadConfig } from '../../src/config.js';
import { Daemon } from '../../src/daemon.js';
import { buildServer, type HttpDeps } from '../../src/http/server.js';
import type { Clock, FactView, PortView } from '../../src/tracker/types.js';
import { bpfEvent } from '../helpers/events.js';

const MS = 1_000_000n;
const T0 = 5_000n * MS; // monotonic time of the first fact
const WALL = Date.UTC(2026, 0, 2, 3, 4, 5);

class TestClock implements Clock {
  now = T0;
  monoNs(): bigint {
    return this.now;
  }
  wallMs(): number {
    return WALL + Number(this.now / MS);
  }
}

const TOKEN = 's3cret-token';
const LATE_MAC = '52:54:00:00:00:0a';
const ONTIME_MAC = '52:54:00:00:00:0b';
const TAP0 = 7; // late: the guest's RARP burst died on it
const TAP1 = 8; // on time
const UPLINK = 9;
const TAP2 = 10; // no bridge, no frames

const ev = (atMs: number, o: Partial<BpfEvent>): BpfEvent => bpfEvent(T0 + BigInt(atMs) * MS, TAP0, LATE_MAC, o);

const apps: FastifyInstance[] = [];
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
  for (const d of daemons.splice(0)) d.healer.stop(); // never started: nothing else to release
});

/** A daemon that saw: tap0 late (5 RARPs before joining br0), tap1 on time, an uplink, tap2 idle. */
function fixture(flags: Record<string, string> = {}): { daemon: Daemon; deps: HttpDeps; clock: TestClock } {
  const clock = new TestClock();
  const config = loadConfig({ flags: { 'api-token': TOKEN, ...flags } });
  const daemon = new Daemon({ config, log: pino({ level: 'silent' }), clock });
  daemons.push(daemon);
  const t = daemon.tracker;
  const at = (ms: number) => T0 + BigInt(ms) * MS;
  daemon.metrics.bridgeSeen('br0');
  const base = { kind: 'tun', guest: true, carrier: true, initial: false, state: 'none' as const, bridge: '' };
  // tap0: created, the guest's QEMU burst while in no bridge, joins at 1000 ms and forwards
  t.portAppeared({ ...base, ifindex: TAP0, name: 'tap0', tsNs: at(0) });
  [0, 50, 200, 450, 800].forEach((d, i) => t.frame(ev(10 + d, { first: i === 0 })));
  t.portJoined(TAP0, 'br0', at(1000));
  t.portState(TAP0, 'forwarding', at(1000));
  // tap1: joins and forwards first, then the guest talks
  t.portAppeared({ ...base, ifindex: TAP1, name: 'tap1', tsNs: at(2000) });
  t.portJoined(TAP1, 'br0', at(2000));
  t.portState(TAP1, 'forwarding', at(2000));
  t.frame(ev(2100, { ifindex: TAP1, mac: ONTIME_MAC, first: true, forwarding: true, bridgePort: true, portState: 3 }));
  // an uplink, and a tap that never joined
  t.portAppeared({ ...base, ifindex: UPLINK, name: 'up0', kind: 'veth', guest: false, bridge: 'br0', state: 'forwarding', tsNs: at(0) });
  t.portAppeared({ ...base, ifindex: TAP2, name: 'tap2', tsNs: at(3000) });
  clock.now = at(4000);
  return { daemon, deps: { ...daemon.httpDeps() }, clock };
}

function app(deps: HttpDeps): FastifyInstance {
  const a = buildServer(deps);
  apps.push(a);
  return a;
}

async function call(a: FastifyInstance, opts: InjectOptions) {
  const res = await a.inject(opts);
  const json = /json/.test(String(res.headers['content-type'])) ? res.json() : undefined;
  return { status: res.statusCode, headers: res.headers, body: res.body, json };
}

const get = (a: FastifyInstance, url: string) => call(a, { method: 'GET', url });
const announce = (a: FastifyInstance, payload: unknown, auth: string | null = `Bearer ${TOKEN}`, headers: Record<string, string> = {}) =>
  call(a, {
    method: 'POST',
    url: '/api/v1/announce',
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}), ...headers },
  });

/** Every error is JSON {error, statusCode} with a message and the status it came with. */
function expectError(r: Awaited<ReturnType<typeof call>>, status: number, message?: RegExp): void {
  expect(r.status, r.body).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  expect(r.json).toMatchObject({ statusCode: status, error: expect.any(String) });
  expect(r.json.error.length).toBeGreaterThan(0);
  if (message) expect(r.json.error).toMatch(message);
}

describe('GET /metrics', () => {
  it('serves the registry in the Prometheus text format, with the tracker facts in it', async () => {
    const { daemon, deps } = fixture();
    const r = await get(app(deps), '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(daemon.registry.contentType);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    const lines = r.body.split('\n');
    expect(lines).toContain('bridgewatch_late_attach_total{bridge="br0"} 1');
    expect(lines).toContain('bridgewatch_port_joins_total{bridge="br0"} 2');
    expect(lines).toContain('bridgewatch_attach_delay_seconds_count{bridge="br0"} 1');
    expect(lines).toContain('bridgewatch_first_frame_delay_seconds_count{bridge="br0"} 1');
    expect(lines).toContain('bridgewatch_guest_macs_tracked 2');
    expect(lines).toContain('bridgewatch_port_info{bridge="br0",port="tap0",kind="tun"} 1');
    expect(lines).toContain('bridgewatch_port_info{bridge="",port="tap2",kind="tun"} 1');
    expect(lines).toContain('bridgewatch_ports_watched{bridge="br0"} 3');
    expect(lines).toContain('bridgewatch_ready 0');
    // attach delay: first unforwarded frame at 10 ms, forwarding at 1000 ms -> the 1 s bucket
    expect(lines).toContain('bridgewatch_attach_delay_seconds_bucket{le="0.8",bridge="br0"} 0');
    expect(lines).toContain('bridgewatch_attach_delay_seconds_bucket{le="1",bridge="br0"} 1');
    expect(r.body).toMatch(/^# HELP bridgewatch_late_attach_total .+$/m);
    expect(r.body).toMatch(/^# TYPE bridgewatch_late_attach_total counter$/m);
  });

  it('HEAD answers like GET without a body', async () => {
    const r = await call(app(fixture().deps), { method: 'HEAD', url: '/metrics' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
  });
});

describe('GET /healthz and /readyz', () => {
  it('/healthz: the process is alive', async () => {
    const r = await get(app(fixture().deps), '/healthz');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: 'ok' });
  });

  it('/readyz: 503 with the reason while capture is not running (the daemon was never started)', async () => {
    const { daemon, deps } = fixture();
    const r = await get(app(deps), '/readyz');
    expect(r.status).toBe(503);
    expect(r.json).toEqual({ status: 'not ready', reason: daemon.ready().reason });
    expect(r.json.reason).toMatch(/\S/);
  });

  it('/readyz: 200 once ready; 503 "starting" when not ready and no reason is known', async () => {
    const { deps } = fixture();
    expect((await get(app({ ...deps, ready: () => ({ ok: true }) }), '/readyz')).json).toEqual({ status: 'ready' });
    expect((await get(app({ ...deps, ready: () => ({ ok: true }) }), '/readyz')).status).toBe(200);
    const r = await get(app({ ...deps, ready: () => ({ ok: false }) }), '/readyz');
    expect(r.status).toBe(503);
    expect(r.json).toEqual({ status: 'not ready', reason: 'starting' });
  });
});

describe('GET /api/v1/ports', () => {
  it('lists every watched port with bridge, state, verdict, MACs and timeline', async () => {
    const r = await get(app(fixture().deps), '/api/v1/ports');
    expect(r.status).toBe(200);
    const ports = r.json.ports as PortView[];
    expect(ports.map((p) => [p.name, p.bridge, p.state, p.verdict, p.guest])).toEqual([
      ['tap0', 'br0', 'forwarding', 'late', true],
      ['tap1', 'br0', 'forwarding', 'on_time', true],
      ['up0', 'br0', 'forwarding', 'pending', false],
      ['tap2', '', 'none', 'pending', true],
    ]);
    const tap0 = ports[0];
    expect(tap0).toMatchObject({
      ifindex: TAP0,
      kind: 'tun',
      carrier: true,
      createdAt: new Date(WALL + 5000).toISOString(),
      forwardingSince: new Date(WALL + 6000).toISOString(),
    });
    expect(tap0.macs).toEqual([
      {
        mac: LATE_MAC,
        verdict: 'late',
        vlan: 0,
        firstFrameAt: new Date(WALL + 5010).toISOString(),
        announcements: 5,
        framesBeforeForwarding: 5,
        attachDelaySeconds: 0.99,
        firstFrameDelaySeconds: null,
        rarpSent: 0,
      },
    ]);
    expect(tap0.timeline.map((f) => f.type)).toEqual([
      'port_created',
      'first_frame',
      'announcement',
      'announcement',
      'announcement',
      'announcement',
      'announcement',
      'joined',
      'state',
      'verdict',
    ]);
    expect(ports[1].macs[0]).toMatchObject({ mac: ONTIME_MAC, verdict: 'on_time', firstFrameDelaySeconds: 0.1, attachDelaySeconds: null });
    expect(ports[3]).toMatchObject({ forwardingSince: null, macs: [] });
  });
});

describe('GET /api/v1/ports/:name', () => {
  it('one port, as in the list', async () => {
    const a = app(fixture().deps);
    const all = (await get(a, '/api/v1/ports')).json.ports as PortView[];
    const r = await get(a, '/api/v1/ports/tap0');
    expect(r.status).toBe(200);
    expect(r.json).toEqual(all[0]);
  });

  it.each([
    ['unknown port', '/api/v1/ports/tap9', 404, /^port tap9 is not watched$/],
    ['15 bytes, the longest name, unknown', `/api/v1/ports/${'x'.repeat(15)}`, 404, /is not watched/],
    ['16 bytes: longer than any interface name', `/api/v1/ports/${'x'.repeat(16)}`, 400, /name/],
    ['a name with /', '/api/v1/ports/a%2Fb', 400, /name/],
    ['a name with a space', '/api/v1/ports/a%20b', 400, /name/],
    ['a path below a port', '/api/v1/ports/tap0/x', 404, /no route GET \/api\/v1\/ports\/tap0\/x/],
  ])('%s -> %i', async (_name, url, status, message) => {
    expectError(await get(app(fixture().deps), url), status, message);
  });

  it('an empty name is refused, not served', async () => {
    const r = await get(app(fixture().deps), '/api/v1/ports/');
    expect([400, 404]).toContain(r.status);
    expectError(r, r.status);
  });
});

describe('GET /api/v1/events', () => {
  it('returns recent facts oldest first with a cursor; paging with since and limit visits each once', async () => {
    const a = app(fixture().deps);
    const all = await get(a, '/api/v1/events');
    expect(all.status).toBe(200);
    const events = all.json.events as FactView[];
    expect(events.length).toBeGreaterThan(10);
    expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((x, y) => x - y));
    expect(all.json.next).toBe(events[events.length - 1].seq);
    expect(all.json.dropped).toBe(0);
    expect(events.find((e) => e.type === 'verdict' && e.port === 'tap0')).toMatchObject({ mac: LATE_MAC, verdict: 'late' });

    const paged: FactView[] = [];
    let since = 0;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(50);
      const r = await get(a, `/api/v1/events?since=${since}&limit=3`);
      expect(r.status).toBe(200);
      expect(r.json.events.length).toBeLessThanOrEqual(3);
      if (!r.json.events.length) {
        expect(r.json.next).toBe(since); // at the end the cursor stays put
        break;
      }
      paged.push(...r.json.events);
      since = r.json.next;
    }
    expect(paged).toEqual(events);
  });

  it('a cursor past the end (from an earlier run) is not an error: it restarts at the oldest fact', async () => {
    const a = app(fixture().deps);
    const all = await get(a, '/api/v1/events?limit=1000');
    const r = await get(a, '/api/v1/events?since=100000&limit=1000');
    expect(r.status).toBe(200);
    expect(r.json).toEqual(all.json);
    expect(r.json.next).toBeLessThan(100000);
  });

  it('says how many facts the bounded log dropped', async () => {
    const { deps } = fixture({ 'max-events': '16' });
    const r = await get(app(deps), '/api/v1/events?limit=1000');
    expect(r.json.events).toHaveLength(16);
    expect(r.json.dropped).toBeGreaterThan(0);
    expect(r.json.events[0].seq).toBe(r.json.dropped + 1);
  });

  it.each([
    ['since=-1', /since/],
    ['since=1.5', /since/],
    ['since=abc', /since/],
    ['limit=0', /limit/],
    ['limit=1001', /limit/],
    ['limit=abc', /limit/],
    ['limit=', /limit/],
    ['limit=1&limit=2', /limit/],
    ['since=Infinity', /since/],
    ['since=9007199254740993', /since/],
    ['limit=Infinity', /limit/],
    ['cursor=3', /cursor|additional/],
    ['since=0&foo=1', /foo|additional/],
  ])('?%s -> 400', async (qs, message) => {
    expectError(await get(app(fixture().deps), `/api/v1/events?${qs}`), 400, message);
  });
});

describe('routes and methods that do not exist', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', '/api/v1'],
    ['GET', '/api/v2/ports'],
    ['POST', '/metrics'],
    ['DELETE', '/api/v1/ports/tap0'],
    ['PUT', '/api/v1/announce'],
    ['GET', '/api/v1/announce'],
  ] as const)('%s %s -> 404 JSON naming the route', async (method, url) => {
    const r = await call(app(fixture().deps), { method, url: `${url}?x=1` });
    expectError(r, 404, new RegExp(`^no route ${method} ${url.replace(/\//g, '\\/')}$`));
  });
});

describe('POST /api/v1/announce', () => {
  it('409 naming no_uplink when the bridge has no port to send RARP out of (the watcher knows none)', async () => {
    const a = app(fixture().deps);
    expectError(await announce(a, { port: 'tap0' }), 409, /^announce 52:54:00:00:00:0a on tap0: suppressed \(no_uplink\)$/);
    // a MAC named in capitals is the same MAC, and reaches the same last check
    expectError(await announce(a, { port: 'tap1', mac: ONTIME_MAC.toUpperCase() }, `bearer ${TOKEN}`), 409, /^announce 52:54:00:00:00:0b on tap1: suppressed \(no_uplink\)$/);
  });

  it('403 when no token is configured, whatever the request carries', async () => {
    const { deps } = fixture({ 'api-token': '' });
    expect(deps.apiToken).toBeUndefined();
    const a = app(deps);
    expectError(await announce(a, { port: 'tap0' }), 403, /disabled.*--api-token/);
    expectError(await announce(a, { port: 'tap0' }, 'Bearer '), 403);
    expectError(await announce(a, { port: 'tap0' }, `Bearer ${TOKEN}`), 403);
  });

  it.each([
    ['no Authorization header', null],
    ['a wrong token', 'Bearer wrong'],
    ['the token with a suffix', `Bearer ${TOKEN}x`],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, -1)}`],
    ['Basic auth with the token', `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`],
    ['the bare token', TOKEN],
    ['Bearer and nothing', 'Bearer '],
    ['two tokens', `Bearer ${TOKEN} ${TOKEN}`],
  ])('401 with %s, and a Bearer challenge', async (_name, auth) => {
    const r = await announce(app(fixture().deps), { port: 'tap0' }, auth);
    expectError(r, 401, /bearer token/);
    expect(r.headers['www-authenticate']).toBe('Bearer');
  });

  it.each([
    ['not JSON', '{"port": '],
    ['an empty body', ''],
    ['a JSON array', [{ port: 'tap0' }]],
    ['a JSON string', '"tap0"'],
    ['no port', { mac: LATE_MAC }],
    ['port with /', { port: 'a/b' }],
    ['port longer than 15 bytes', { port: 'x'.repeat(16) }],
    ['an empty port', { port: '' }],
    ['a MAC with 5 octets', { port: 'tap0', mac: '52:54:00:00:00' }],
    ['a MAC with 7 octets', { port: 'tap0', mac: `${LATE_MAC}:00` }],
    ['a MAC that is not hex', { port: 'tap0', mac: '52:54:00:00:00:zz' }],
    ['a MAC with dashes', { port: 'tap0', mac: '52-54-00-00-00-0a' }],
    ['a MAC that is a number', { port: 'tap0', mac: 5 }],
    ['an unknown key', { port: 'tap0', vlan: 100 }],
  ])('400 for %s', async (_name, body) => {
    expectError(await announce(app(fixture().deps), body), 400);
  });

  it('a JSON number for port is read as its name (fastify coerces scalars), so it is just an unknown port', async () => {
    expectError(await announce(app(fixture().deps), { port: 7 }), 404, /^port 7 is not watched$/);
  });

  it('415 for a body that is not JSON at all', async () => {
    expectError(await announce(app(fixture().deps), 'port=tap0', `Bearer ${TOKEN}`, { 'content-type': 'application/x-www-form-urlencoded' }), 415);
  });

  it('413 for a body over 4 KiB, before anything reads it', async () => {
    const r = await announce(app(fixture().deps), { port: 'tap0', pad: 'x'.repeat(5000) });
    expectError(r, 413);
  });

  it('404 for a port that is not watched', async () => {
    expectError(await announce(app(fixture().deps), { port: 'tap9' }), 404, /^port tap9 is not watched$/);
  });

  it.each([
    ['a MAC never seen on the port', { port: 'tap0', mac: '52:54:00:99:99:99' }, /52:54:00:99:99:99 was never seen on tap0; refusing/],
    ['a MAC seen on another port only', { port: 'tap0', mac: ONTIME_MAC }, /never seen on tap0/],
    ['a group MAC (never a guest\'s own)', { port: 'tap0', mac: '01:00:5e:00:00:01' }, /never seen on tap0/],
    ['a port whose guest never sent a frame', { port: 'tap2' }, /no guest MAC seen on tap2/],
    ['a MAC on a port in no bridge', { port: 'up0' }, /no guest MAC seen on up0/],
  ])('409 for %s', async (_name, body, message) => {
    expectError(await announce(app(fixture().deps), body), 409, message);
  });

  it('off refuses with the reason, before looking for uplinks', async () => {
    expectError(await announce(app(fixture({ announce: 'off' }).deps), { port: 'tap0' }), 409, /suppressed \(off\)/);
  });
});

describe('never a 500', () => {
  const odd: InjectOptions[] = [
    { method: 'GET', url: '/api/v1/ports/%zz' },
    { method: 'GET', url: '/api/v1/events?since=%zz' },
    { method: 'GET', url: `/api/v1/events?since=${'9'.repeat(400)}` },
    { method: 'GET', url: '/api/v1/events?limit=1e2' },
    { method: 'GET', url: '/api/v1/events?since[]=1' },
    { method: 'GET', url: `/${'a'.repeat(5000)}` },
    { method: 'GET', url: '/api/v1/ports/%00' },
    { method: 'GET', url: '/metrics?format=json' },
    { method: 'OPTIONS', url: '/api/v1/ports' },
    { method: 'POST', url: '/api/v1/announce', payload: '{"port":"tap0"}', headers: { 'content-type': 'application/json; charset=latin1', authorization: `Bearer ${TOKEN}` } },
    { method: 'POST', url: '/api/v1/announce', payload: '{"port":"tap0"}', headers: { 'content-type': 'text/plain', authorization: `Bearer ${TOKEN}` } },
    { method: 'POST', url: '/api/v1/announce', payload: '{"__proto__":{"x":1},"port":"tap0"}', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } },
    { method: 'POST', url: '/api/v1/announce', payload: '{"constructor":{"prototype":{}},"port":"tap0"}', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } },
    { method: 'POST', url: '/api/v1/announce', payload: '\u0000\u0001', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } },
    { method: 'POST', url: '/api/v1/announce', headers: { authorization: `Bearer ${TOKEN}` } },
    { method: 'POST', url: '/api/v1/announce', payload: '{"port":"tap0"}', headers: { 'content-type': 'application/json', authorization: `Bearer ${'x'.repeat(3000)}` } },
  ];
  it.each(odd.map((o) => [`${o.method} ${String(o.url).slice(0, 60)} ${String(o.payload ?? '').slice(0, 40)} ${o.headers?.['content-type'] ?? ''}`, o]))(
    '%s',
    async (_name, o) => {
      const r = await call(app(fixture().deps), o);
      expect(r.status, r.body).toBeLessThan(500);
      if (r.status >= 400) expectError(r, r.status);
    },
  );
});
