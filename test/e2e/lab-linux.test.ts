// The core promise with a real guest: Debian's kernel in QEMU (TCG), e1000 and virtio-net, live-
// migrated from host A to host B while the client pings it every 200 ms, bridgewatch running in
// host B. With B's tap joining the bridge 1.2 s after the migration, pings must be back within
// 500 ms of the join; with the tap on time, bridgewatch must send nothing. Precondition, checked
// from `bridge monitor fdb` in host B (not from bridgewatch): B's own bridge had learned the
// guest's MAC on its uplink while the guest ran on A, so B drops what arrives for it there until
// something moves that entry.
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { LAB_DIR, stopKeptDaemon } from '../../src/lab/daemon.js';
import { findGuestImage, LAB_NICS, type GuestImage, type LabNic } from '../../src/lab/guest-image.js';
import { linuxScenario } from '../../src/lab/linux-scenario.js';
import { Progress } from '../../src/lab/progress.js';
import { findExecutable, QEMU_BINARY, stopAllQemu } from '../../src/lab/qemu.js';
import type { ScenarioResult } from '../../src/lab/report.js';
import { destroyTopology, UPLINK } from '../../src/lab/topology.js';
import { labSkip, leftovers } from '../helpers/lab-cli.js';

const image = findGuestImage();
const skip =
  labSkip ||
  (findExecutable(QEMU_BINARY) ? '' : `${QEMU_BINARY} not found in PATH (scripts/setup.sh --with-qemu installs Debian's qemu-system-x86)`) ||
  (typeof image === 'string' ? image : '');

/** The lab's progress lines, kept for the failure message instead of printed. */
function quietProgress(): { progress: Progress; lines: () => string } {
  let text = '';
  const out = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { progress: new Progress(out), lines: () => text.trim() };
}

async function run(nic: LabNic, tapOnTime: boolean): Promise<{ r: ScenarioResult; log: string }> {
  const { progress, lines } = quietProgress();
  const r = await linuxScenario({
    nic,
    image: image as GuestImage,
    tapOnTime,
    bridgewatch: true,
    label: `${nic}, tap ${tapOnTime ? 'on time' : 'late'}`,
    lateMs: 1200,
    capMs: 60_000,
    intervalMs: 200,
    keep: false,
    signal: new AbortController().signal,
    progress,
  }).finally(() => rmSync(LAB_DIR, { recursive: true, force: true })); // as `bridgewatch lab` does at its end
  return { r, log: lines() };
}

const numbers = (r: ScenarioResult): string =>
  `${r.pingsLost}/${r.pingsSent} pings lost, ${r.pingsLostAfterJoin} after the join, first reply ` +
  `${r.firstReplyAfterJoinMs === null ? 'none' : `${r.firstReplyAfterJoinMs!.toFixed(0)} ms`} after it; switch learned host B ` +
  `${r.switchLearnedAfterJoinMs === null ? 'never' : `${r.switchLearnedAfterJoinMs.toFixed(1)} ms`} after it; ` +
  `B's bridge had the guest on ${r.hostBFdbBeforeJoin}; verdict ${r.verdict}, ${r.rarpSent} RARPs (${r.rarpSentTotal} in metrics)`;

describe.for(LAB_NICS)('real Linux guest with %s, bridgewatch on host B', (nic) => {
  afterAll(async () => {
    await stopAllQemu();
    if (!labSkip && leftovers().length) {
      await stopKeptDaemon();
      destroyTopology();
    }
  });

  it('tap on time: verdict on_time and bridgewatch sends nothing', async (ctx) => {
    ctx.skip(!!skip, skip);
    const { r, log } = await run(nic, true);
    await ctx.annotate(numbers(r));
    expect(r.verdict, log).toBe('on_time');
    expect(r.rarpSent).toBe(0);
    expect(r.rarpSentTotal).toBe(0);
    // the guest itself is fine: only what the migration's downtime costs
    expect(r.pingsLostAfterJoin!).toBeLessThanOrEqual(3);
    expect(leftovers()).toEqual([]);
  }, 150_000);

  it('late tap: pings back within 500 ms of the join, at most 3 lost after it', async (ctx) => {
    ctx.skip(!!skip, skip);
    const { r, log } = await run(nic, false);
    await ctx.annotate(numbers(r));
    // what makes this test mean something: B's own bridge sent the guest's MAC to its uplink
    expect(r.hostBFdbBeforeJoin, `host B's bridge before the join\n${log}`).toBe(UPLINK);
    expect(r.framesBeforeForwarding!, 'guest frames bridgewatch saw on the unbridged tap').toBeGreaterThan(0);
    expect(r.verdict).toBe('late');
    expect(r.rarpSent!).toBeGreaterThan(0);
    expect(r.firstReplyAfterJoinMs, `first ping reply after the join: none within ${r.watchedAfterJoinMs.toFixed(0)} ms`).not.toBeNull();
    expect(r.firstReplyAfterJoinMs!, `first ping reply after the join (ms); ${numbers(r)}`).toBeLessThanOrEqual(500);
    expect(r.pingsLostAfterJoin!, `pings lost after the join; ${numbers(r)}`).toBeLessThanOrEqual(3);
    expect(leftovers()).toEqual([]);
  }, 150_000);
});
