// POST /api/v1/announce accepted (202), checked where it matters: on the wire. The built daemon
// runs in a namespace of our own with br0, a veth uplink whose peer tcpdump watches, and a guest
// tap carrying two MACs; each accepted request must put exactly its RARPs, QEMU's bytes, out of
// the uplink, and a dry run none. (The refusals, 4xx, are in test/unit/http.test.ts.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announceOffsets, ANNOUNCE_DEFAULTS } from '../../src/announce/schedule.js';
import { findExecutable } from '../../src/lab/qemu.js';
import type { PortView } from '../../src/tracker/types.js';
import { startCapture, stopAllCaptures } from '../fixtures/pcap.js';
import { sampleValue } from '../helpers/daemon-metrics.js';
import { cliMissing, DaemonProcess, killAllDaemons, until } from '../helpers/daemon-process.js';
import { ipv4Frame, mac, qemuRarp } from '../helpers/frames.js';
import { Guest } from '../helpers/guest.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, bridgeWithUplink, TestNetns, tempStateDir } from '../helpers/netns.js';

const missingTools = ['curl', 'tcpdump'].filter((b) => !findExecutable(b));
const skip =
  cliMissing() ||
  kernelMissing.bpf ||
  kernelMissing.tun ||
  kernelMissing.bridge ||
  (missingTools.length ? `${missingTools.join(' and ')} not in PATH (scripts/setup.sh installs them)` : '');

const TOKEN = 'announce-e2e-token';
const ROUNDS = 3; // --announce-rounds: the answer and the wire must both say 3
const LAST_MS = announceOffsets({ ...ANNOUNCE_DEFAULTS, rounds: ROUNDS }).at(-1)!;
const M1 = '52:54:00:a1:00:01';
const M2 = '52:54:00:a1:00:02';
const AUTH = { authorization: `Bearer ${TOKEN}` };

let dir = '';
const guests: Guest[] = [];

interface Rig {
  ns: TestNetns;
  d: DaemonProcess;
}

/** br0 with uplink up0 (peer up0p outside it), tap0 joined first and then carrying M1 and M2: on time, nothing to heal. */
async function rig(tag: string, args: string[]): Promise<Rig> {
  const ns = bridgeWithUplink(tag);
  const tokenFile = join(dir, `token-${tag}`);
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--api-token-file', tokenFile, '--announce-rounds', String(ROUNDS), ...args]);
  const g = new Guest(ns, 'tap0', mac(M1));
  guests.push(g);
  ns.ip('link', 'set', 'tap0', 'master', 'br0');
  await until('tap0 forwarding', () => d.get('/api/v1/ports/tap0'), (r) => r.status === 200 && (r.json as PortView).state === 'forwarding');
  g.send(ipv4Frame(mac(M1)), ipv4Frame(mac(M2)));
  const p = await until('tap0: two MACs, on time', () => d.get('/api/v1/ports/tap0'), (r) => r.status === 200 && (r.json as PortView).macs.length === 2);
  expect((p.json as PortView).macs.map((m) => m.verdict)).toEqual(['on_time', 'on_time']);
  return { ns, d };
}

/** The RARPs that leave up0 while `act` runs and the schedules it started finish, by source MAC. */
async function rarpsOut(r: Rig, act: () => Promise<void>): Promise<Record<string, string[]>> {
  const cap = await startCapture(r.ns.name, 'up0p', join(dir, `up0p-${Date.now()}.pcap`), ['rarp'], 'in');
  await act();
  await sleep(LAST_MS + 400);
  const out: Record<string, string[]> = {};
  for (const p of (await cap.stop()).packets) {
    const src = [...p.data.subarray(6, 12)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    (out[src] ??= []).push(p.data.toString('hex'));
  }
  return out;
}

const rarps = (m: string, n: number) => Array.from({ length: n }, () => qemuRarp(mac(m)).toString('hex'));
const manualSent = async (d: DaemonProcess) => sampleValue(await d.metrics(), 'bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'manual' });

beforeAll(() => {
  if (!skip) dir = mkdtempSync(join(tmpdir(), 'bwt-announce-'));
});

afterAll(async () => {
  await killAllDaemons();
  await stopAllCaptures();
  for (const g of guests) g.close();
  cleanupAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!!skip)('POST /api/v1/announce: what a 202 sends', () => {
  let on: Rig;
  beforeAll(async () => {
    on = await rig('ann', []);
  }, 30_000);

  it('for the port: every MAC seen on it, each RARP leaving the uplink once per round, QEMU\'s bytes', async () => {
    let answer: unknown;
    const out = await rarpsOut(on, async () => {
      const r = await on.d.post('/api/v1/announce', { port: 'tap0' }, AUTH);
      expect(r.status, r.body).toBe(202);
      answer = r.json;
    });
    expect(answer).toMatchObject({ port: 'tap0', mode: 'on', rounds: ROUNDS });
    expect([...(answer as { macs: string[] }).macs].sort()).toEqual([M1, M2]);
    expect(out).toEqual({ [M1]: rarps(M1, ROUNDS), [M2]: rarps(M2, ROUNDS) });
    expect(await manualSent(on.d)).toBe(2 * ROUNDS);
  }, 15_000);

  it('for one MAC, named in any case: only that one', async () => {
    const before = await manualSent(on.d);
    const out = await rarpsOut(on, async () => {
      const r = await on.d.post('/api/v1/announce', { port: 'tap0', mac: M2.toUpperCase() }, { authorization: `bearer ${TOKEN}` });
      expect(r.status, r.body).toBe(202);
      expect(r.json).toEqual({ port: 'tap0', macs: [M2], mode: 'on', rounds: ROUNDS });
    });
    expect(out).toEqual({ [M2]: rarps(M2, ROUNDS) });
    expect((await manualSent(on.d))! - before!).toBe(ROUNDS);
  }, 15_000);

  it('is not held off by a recent one (QEMU announce-self neither): two requests, two full schedules', async () => {
    const out = await rarpsOut(on, async () => {
      expect((await on.d.post('/api/v1/announce', { port: 'tap0', mac: M1 }, AUTH)).status).toBe(202);
      await sleep(LAST_MS + 200); // the first schedule has ended
      expect((await on.d.post('/api/v1/announce', { port: 'tap0', mac: M1 }, AUTH)).status).toBe(202);
    });
    expect(out).toEqual({ [M1]: rarps(M1, 2 * ROUNDS) });
  }, 15_000);

  it('--announce dry-run: 202 saying dry-run, counted, and nothing on the wire', async () => {
    const dry = await rig('anndry', ['--announce', 'dry-run']);
    const out = await rarpsOut(dry, async () => {
      const r = await dry.d.post('/api/v1/announce', { port: 'tap0' }, AUTH);
      expect(r.status, r.body).toBe(202);
      expect(r.json).toMatchObject({ port: 'tap0', mode: 'dry-run', rounds: ROUNDS });
    });
    expect(out).toEqual({});
    const s = await dry.d.metrics();
    expect(sampleValue(s, 'bridgewatch_announce_suppressed_total', { reason: 'dry_run' })).toBe(2); // one per MAC
    expect(sampleValue(s, 'bridgewatch_rarp_sent_total', { bridge: 'br0', reason: 'manual' })).toBe(0);
  }, 40_000);
});
