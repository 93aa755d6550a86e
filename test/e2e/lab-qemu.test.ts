// `bridgewatch lab --qemu` end to end through the real CLI: two real QEMU processes migrate, the
// destination's own RARP burst is lost to a late tap join, and the measure is the switch's FDB.
// Without bridgewatch the switch keeps sending the guest's traffic to host A; with it, it learns
// host B within 100 ms of the join. Nothing may be left behind.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LAB_DIR } from '../../src/lab/daemon.js';
import { findExecutable, QEMU_BINARY } from '../../src/lab/qemu.js';
import type { LabSummary } from '../../src/lab/report.js';
import { ALL_NS } from '../../src/lab/topology.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { missing as kernelMissing } from '../helpers/kernel.js';

const BIN = join(PACKAGE_ROOT, 'bin/bridgewatch.js');
const base =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces, taps, raw sockets)'
    : !existsSync(join(PACKAGE_ROOT, 'dist/src/lab/lab.js'))
      ? 'dist/ not built: run bash scripts/setup.sh'
      : (kernelMissing.bpf ?? kernelMissing.tun ?? kernelMissing.bridge ?? kernelMissing.bridgeBtf ?? '');
const skip = base || (findExecutable(QEMU_BINARY) ? '' : `${QEMU_BINARY} not found in PATH (scripts/setup.sh --with-qemu installs Debian's qemu-system-x86)`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function lab(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'lab', ...args], { cwd: PACKAGE_ROOT, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function leftovers(): string[] {
  const out = ALL_NS.filter((n) => existsSync(`/run/netns/${n}`)).map((n) => `netns ${n}`);
  if (existsSync(LAB_DIR)) out.push(LAB_DIR);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // exited meanwhile
    }
    if (cmd.includes(LAB_DIR) || /^bridge -n bwlab-/.test(cmd)) out.push(`process ${pid}: ${cmd.trim()}`);
  }
  return out;
}

const why = (r: Run): string => `exit ${r.code}\nstderr:\n${r.stderr.slice(-3000)}`;

describe('bridgewatch lab --qemu', () => {
  afterAll(async () => {
    if (!base && leftovers().length) await lab(['--down'], 30_000);
  });

  it('without bridgewatch the switch never learns host B; with it, within 100 ms of the join', async (ctx) => {
    ctx.skip(!!skip, skip);
    const r = await lab(['--qemu', '--json'], 180_000);
    expect(r.code, why(r)).toBe(0);
    const s = JSON.parse(r.stdout) as LabSummary;
    expect(s.mode).toBe('qemu');
    const without = s.scenarios.find((x) => !x.bridgewatch)!;
    const withBw = s.scenarios.find((x) => x.bridgewatch)!;
    await ctx.annotate(
      `QEMU ${s.qemuVersion}: without, switch learned host B: ${without.switchLearnedAfterJoinMs ?? `not within ${Math.floor(without.watchedAfterJoinMs / 1000)} s`}; ` +
        `with, ${withBw.switchLearnedAfterJoinMs?.toFixed(1)} ms after the join, ${withBw.rarpSent} RARPs sent`,
    );
    expect(without.switchLearnedAfterJoinMs).toBeNull();
    expect(without.watchedAfterJoinMs).toBeGreaterThanOrEqual(s.capSeconds * 1000);
    expect(withBw.switchLearnedAfterJoinMs).not.toBeNull();
    expect(withBw.switchLearnedAfterJoinMs!).toBeLessThanOrEqual(100);
    expect(withBw.verdict).toBe('late');
    expect(withBw.rarpSent!).toBeGreaterThan(0);
    // bridgewatch saw QEMU's burst on the unbridged tap: that is what made the port late
    expect(withBw.framesBeforeForwarding!).toBeGreaterThan(0);
    expect(leftovers()).toEqual([]);
  }, 240_000);

  it('without qemu-system-x86_64 it names the package to install and exits 2', async (ctx) => {
    ctx.skip(!!base, base);
    // a PATH with every tool the lab needs except QEMU
    const dir = mkdtempSync(join(tmpdir(), 'bwt-path-'));
    try {
      for (const tool of ['ip', 'bridge', 'curl']) symlinkSync(findExecutable(tool)!, join(dir, tool));
      const r = await lab(['--qemu'], 30_000, { ...process.env, PATH: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/qemu-system-x86_64 not found.*qemu-system-x86/);
      expect(leftovers()).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
