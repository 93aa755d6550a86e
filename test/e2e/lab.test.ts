// `bridgewatch lab` end to end through the real CLI: the simulated-guest migration with a late tap
// join, without and with bridgewatch, on real ARP and FDB timers (the run without bridgewatch
// waits tens of seconds for the client's ARP entry to go stale). Then --keep, the refusal to
// build over a kept lab, and --down. Nothing may be left behind.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { LabSummary } from '../../src/lab/report.js';
import { ALL_NS, NS } from '../../src/lab/topology.js';
import { lab, labSkip, leftovers, why } from '../helpers/lab-cli.js';

const skip = labSkip;

describe('bridgewatch lab (simulated guest)', () => {
  afterAll(async () => {
    if (!skip && leftovers().length) await lab(['--down'], 30_000);
  });

  it('shows the original bug without bridgewatch and its cure with it, and leaves nothing behind', async (ctx) => {
    ctx.skip(!!skip, skip);
    const r = await lab(['--json', '--interval-ms', '200'], 240_000);
    expect(r.code, why(r)).toBe(0);
    const s = JSON.parse(r.stdout) as LabSummary;
    const without = s.scenarios.find((x) => !x.bridgewatch)!;
    const withBw = s.scenarios.find((x) => x.bridgewatch)!;
    await ctx.annotate(
      `without: ${without.pingsLost}/${without.pingsSent} lost, outage ${without.outageSeconds!.toFixed(2)} s; ` +
        `with: ${withBw.pingsLost}/${withBw.pingsSent} lost, outage ${withBw.outageSeconds!.toFixed(2)} s, switch learned host B ${withBw.switchLearnedAfterJoinMs?.toFixed(1)} ms after the join`,
    );
    expect(s.lateMs).toBe(1000);
    // as with a real guest, host B's own bridge had learned the guest on its uplink while it ran
    // on host A (its ARP request was flooded there): B drops what arrives for it on the uplink
    // until that entry moves
    for (const x of s.scenarios) expect(x.hostBFdbBeforeJoin, x.name).toBe('eth0');
    // the guest's own burst went into the tap before it was bridged: all 5, all lost
    expect(withBw.guestRarpSent).toBe(5);
    // and, as a virtio guest with GUEST_ANNOUNCE, a gARP and an NA in each round: lost too, then
    // replayed by bridgewatch byte for byte in each of its 5 rounds (one distinct frame of each kind)
    expect(withBw.guestL3Sent).toBe(10);
    expect(withBw.replayed).toBe(10);
    expect(without.replayed).toBeNull();
    expect(without.outageCapped).toBe(false);
    expect(withBw.outageCapped).toBe(false);
    expect(without.outageSeconds!).toBeGreaterThanOrEqual(10 * withBw.outageSeconds!);
    expect(without.pingsLost!).toBeGreaterThan(withBw.pingsLost!);
    // only a ping sent in the few ms between the join and the switch learning host B can be lost
    expect(withBw.pingsLostAfterJoin!).toBeLessThanOrEqual(1);
    expect(withBw.switchLearnedAfterJoinMs).not.toBeNull();
    expect(withBw.switchLearnedAfterJoinMs!).toBeLessThanOrEqual(100);
    expect(withBw.verdict).toBe('late');
    expect(withBw.rarpSent!).toBeGreaterThan(0);
    expect(without.verdict).toBeNull();
    // bridgewatch's own figure: the fabric's first unicast (a ping) reached B's uplink after the
    // join (before it, the switch sent everything to host A), within a few ping intervals of the
    // switch learning host B
    expect(without.convergenceState).toBeNull();
    expect(withBw.convergenceState).toBe('converged');
    expect(withBw.convergenceSeconds!).toBeGreaterThanOrEqual(withBw.joinAfterResumeMs / 1000 - 0.05);
    expect(withBw.convergenceSeconds!).toBeLessThanOrEqual((withBw.joinAfterResumeMs + withBw.switchLearnedAfterJoinMs! + 3 * 200) / 1000);
    expect(r.stderr).toMatch(/bridgewatch saw the fabric deliver to the guest again \d+\.\d+ s after its first frame on host B \(the client's outage: /);
    // the table is on stderr with --json; stdout is the JSON alone
    expect(r.stderr).toMatch(/without bridgewatch +\d+ +\d+/);
    // verdict, RARPs, convergence, then the guest's own gARP/NA sent and replayed
    expect(r.stderr).toMatch(/with bridgewatch .* late +\d+ +\d+\.\d+ s +10 +10$/m);
    expect(r.stderr).toContain('gARP/NA replayed by bridgewatch');
    expect(leftovers()).toEqual([]);
  }, 300_000);

  it('--keep leaves bridgewatch serving in host B, a second lab refuses to start, --down removes it all', async (ctx) => {
    ctx.skip(!!skip, skip);
    // a short cap: this test is about the lab's lifecycle, not the outage
    const kept = await lab(['--keep', '--cap-s', '3'], 120_000);
    expect(kept.code, why(kept)).toBe(0);
    expect(kept.stdout).toContain(`ip netns exec ${NS.b} curl -s 127.0.0.1:9725/metrics`);
    for (const ns of ALL_NS) expect(existsSync(`/run/netns/${ns}`), ns).toBe(true);
    const metrics = await new Promise<string>((resolve, reject) =>
      execFile('ip', ['netns', 'exec', NS.b, 'curl', '-s', '127.0.0.1:9725/metrics'], (e, out) => (e ? reject(e) : resolve(out))),
    );
    expect(metrics).toMatch(/^bridgewatch_rarp_sent_total\{bridge="br0",reason="late_attach"\} [1-9]/m);

    const again = await lab([], 30_000);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/namespace .*bwlab-.* already exists.*bridgewatch lab --down/);

    const down = await lab(['--down'], 30_000);
    expect(down.code, why(down)).toBe(0);
    expect(down.stdout).toMatch(/removed the bridgewatch daemon and namespaces/);
    expect(leftovers()).toEqual([]);
    const twice = await lab(['--down'], 30_000);
    expect(twice.stdout).toMatch(/no lab to remove/);
  }, 240_000);
});
