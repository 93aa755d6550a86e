// A real live migration between two QEMU processes in two namespaces of our own, driven through
// src/lab/qemu.ts: the destination's tap must carry exactly QEMU's RARP burst, on QEMU's schedule,
// byte-identical to rarpFrame().
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rarpFrame } from '../../src/announce/frames.js';
import { ANNOUNCE_DEFAULTS, announceOffsets, validateAnnounceParameters } from '../../src/announce/schedule.js';
import { findExecutable, Qemu, QEMU_BINARY, stopAllQemu } from '../../src/lab/qemu.js';
import { addNetns, delNetns, ip } from '../../src/sys/netns.js';
import { offsetsMs, startCapture, stopAllCaptures, type Pcap } from '../fixtures/pcap.js';

const NS_A = `bwt-qemu-a${process.pid}`;
const NS_B = `bwt-qemu-b${process.pid}`;
const MAC = '52:54:00:12:34:56';
const skipReason =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces, taps)'
    : !findExecutable(QEMU_BINARY)
      ? `${QEMU_BINARY} not found in PATH (scripts/setup.sh --with-qemu installs Debian's qemu-system-x86)`
      : !findExecutable('tcpdump')
        ? 'tcpdump not found in PATH'
        : '';

// Tolerance for each gap between consecutive RARPs, measured at the tap vs computed: QEMU re-arms
// its timer from a millisecond clock it truncates (a gap can be ~1 ms short) and capture timestamps
// jitter, hence -3 ms; its main loop can be late on a loaded machine, hence +40 ms. Gaps differ
// by 100 ms (defaults: 50, 150, 250, 350), so a wrong schedule cannot pass.
const EARLY_MS = 3;
const LATE_MS = 40;

let dir = '';
let source: Qemu | null = null;
let destination: Qemu | null = null;

function host(ns: string, tap: string): void {
  delNetns(ns);
  addNetns(ns);
  ip(ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap'); // persistent: QEMU attaches, and it is up
  ip(ns, 'link', 'set', tap, 'up');
}

function expectSchedule(pcap: Pcap, offsets: number[]): number[] {
  expect(pcap.packets).toHaveLength(offsets.length);
  const frame = rarpFrame(MAC).toString('hex');
  for (const p of pcap.packets) expect(p.data.toString('hex')).toBe(frame);
  const measured = offsetsMs(pcap.packets);
  for (let i = 1; i < offsets.length; i++) {
    const gap = measured[i] - measured[i - 1];
    const want = offsets[i] - offsets[i - 1];
    expect(gap, `gap ${i} measured ${gap.toFixed(1)} ms, computed ${want} ms`).toBeGreaterThanOrEqual(want - EARLY_MS);
    expect(gap, `gap ${i} measured ${gap.toFixed(1)} ms, computed ${want} ms`).toBeLessThanOrEqual(want + LATE_MS);
  }
  return measured;
}

describe('real QEMU live migration (TCG, no guest OS)', () => {
  beforeAll(async () => {
    if (skipReason) return;
    dir = mkdtempSync(join(tmpdir(), 'bwt-qemu-'));
    host(NS_A, 'tapA');
    host(NS_B, 'tapB');
    const common = { mac: MAC, memoryMb: 64 };
    source = await Qemu.start({ ...common, name: 'source', netns: NS_A, tap: 'tapA', qmpSocket: join(dir, 'src.qmp') });
    destination = await Qemu.start({ ...common, name: 'destination', netns: NS_B, tap: 'tapB', qmpSocket: join(dir, 'dst.qmp'), incoming: `unix:${join(dir, 'mig.sock')}` });
  });

  afterAll(async () => {
    await stopAllQemu();
    await stopAllCaptures();
    delNetns(NS_A);
    delNetns(NS_B);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the driver runs QEMU itself (the pid it kills is QEMU) in the namespace asked for', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    for (const q of [source!, destination!]) {
      expect(readFileSync(`/proc/${q.pid}/comm`, 'utf8').trim()).toBe('qemu-system-x86');
      expect(q.version).toMatch(/^\d+\.\d+\.\d+$/);
    }
    expect(await source!.status()).toBe('running');
    expect(await destination!.status()).toBe('inmigrate');
  });

  it('after migration the destination tap carries exactly 5 RARPs, byte-identical, on QEMU default schedule', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    const capB = await startCapture(NS_B, 'tapB', join(dir, 'dst.pcap'), [], 'in');
    const capA = await startCapture(NS_A, 'tapA', join(dir, 'src.pcap'), [], 'in');
    const t0 = Date.now();
    const info = await source!.migrate(`unix:${join(dir, 'mig.sock')}`);
    expect(info.status).toBe('completed');
    await destination!.waitForStatus('running');
    expect(await source!.status()).toBe('postmigrate');
    const migrateMs = Date.now() - t0;
    await sleep(800 + 600); // the whole burst, and then some, to see that nothing more comes
    const dst = await capB.stop();
    const src = await capA.stop();
    // everything the destination QEMU wrote to its tap: the burst and nothing else
    const measured = expectSchedule(dst, announceOffsets(ANNOUNCE_DEFAULTS));
    expect(src.packets).toHaveLength(0); // the source never announces
    await ctx.annotate(`migration ${migrateMs} ms (QEMU total-time ${info['total-time']} ms); RARP offsets measured ${measured.map((m) => m.toFixed(1)).join(', ')} ms, computed 0, 50, 200, 450, 800`);
  });

  it('announce-self repeats the burst with the parameters given, max capping the gaps as computed', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    const p = validateAnnounceParameters({ initial: 100, max: 150, rounds: 4, step: 100 });
    expect(announceOffsets(p)).toEqual([0, 100, 250, 400]);
    const cap = await startCapture(NS_B, 'tapB', join(dir, 'announce.pcap'), [], 'in');
    await destination!.announceSelf(p);
    await sleep(400 + 500);
    const measured = expectSchedule(await cap.stop(), announceOffsets(p));
    await ctx.annotate(`announce-self offsets measured ${measured.map((m) => m.toFixed(1)).join(', ')} ms, computed 0, 100, 250, 400`);
  });

  it('stop() ends QEMU and reaps it; a failed start says why and leaves no process', async (ctx) => {
    ctx.skip(!!skipReason, skipReason);
    const pid = source!.pid;
    await source!.stop();
    expect(source!.running).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    await expect(
      Qemu.start({ name: 'nowhere', netns: 'bwt-qemu-does-not-exist', tap: 'tapX', mac: MAC, qmpSocket: join(dir, 'x.qmp') }),
    ).rejects.toThrow(/^start qemu nowhere: exited .*before QMP answered: .*bwt-qemu-does-not-exist/s);
  });
});
