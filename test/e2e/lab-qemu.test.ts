// `bridgewatch lab --qemu` end to end through the real CLI: two real QEMU processes migrate, the
// destination's own RARP burst is lost to a late tap join, and the measure is the switch's FDB.
// Without bridgewatch the switch keeps sending the guest's traffic to host A; with it, it learns
// host B within 100 ms of the join. Nothing may be left behind.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable, QEMU_BINARY } from '../../src/lab/qemu.js';
import type { LabSummary } from '../../src/lab/report.js';
import { lab, labSkip, leftovers, why } from '../helpers/lab-cli.js';

const base = labSkip;
const skip = base || (findExecutable(QEMU_BINARY) ? '' : `${QEMU_BINARY} not found in PATH (scripts/setup.sh --with-qemu installs Debian's qemu-system-x86)`);

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
    // the cap runs from the hotplug command; the join is the kernel's notification, a little later
    expect(without.watchedAfterJoinMs).toBeGreaterThanOrEqual(s.capSeconds * 1000 - 100);
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
