// What the lab measured, as the JSON summary (--json) and as the closing table.

export interface ScenarioResult {
  name: string;
  bridgewatch: boolean;
  /** the tap joined host B's bridge this long after the guest resumed there */
  joinAfterResumeMs: number;
  /**
   * where host B's own bridge had the guest MAC just before the join (`eth0`: learned on the
   * uplink while the guest ran on host A, so B's bridge drops traffic for it from the uplink until
   * the guest itself sends); null: not learned
   */
  hostBFdbBeforeJoin: string | null;
  /** the switch mapped the guest MAC to host B's port this long after the join; null: not seen */
  switchLearnedAfterJoinMs: number | null;
  /** how long the lab watched after the join (for "not within N s") */
  watchedAfterJoinMs: number;
  /** RARPs the simulated guest itself sent on host B, all before the join; null for QEMU */
  guestRarpSent: number | null;
  /** guest frames bridgewatch saw on B's tap before it could forward; null without it */
  framesBeforeForwarding: number | null;
  /** bridgewatch's verdict for the guest MAC on host B's tap, and RARPs it sent; null without it */
  verdict: string | null;
  rarpSent: number | null;
  /**
   * bridgewatch's own figure: the guest's first frame on host B to the first unicast frame for
   * it from the fabric on B's uplink; null without bridgewatch or when it did not converge
   */
  convergenceSeconds: number | null;
  /** bridgewatch's state for that arrival (converged, unconverged, ...); null without it */
  convergenceState: string | null;
  /** gARP and NA frames the simulated guest itself sent on host B (virtio GUEST_ANNOUNCE); null for QEMU and Linux */
  guestL3Sent?: number | null;
  /** the guest's own gARP/NA frames bridgewatch replayed (bridgewatch_announcements_replayed_total); null without it */
  replayed: number | null;
  // simulated guest only
  pingsSent?: number;
  pingsLost?: number;
  /** lost among those sent after the join: what a stale switch costs */
  pingsLostAfterJoin?: number;
  /** longest gap between two ping replies */
  outageSeconds?: number;
  /** pings never came back for good within the cap: outageSeconds is a lower bound */
  outageCapped?: boolean;
  // real Linux guest only
  /** host B's tap was in the bridge before the migration; "after the join" then means after the resume */
  tapOnTime?: boolean;
  /** the first ping reply after the join; null: none within the cap */
  firstReplyAfterJoinMs?: number | null;
  /** all RARPs bridgewatch sent (bridgewatch_rarp_sent_total); null without it */
  rarpSentTotal?: number | null;
  /** QEMU's migration total time and downtime */
  migrationMs?: number | null;
  downtimeMs?: number | null;
}

export interface LabSummary {
  /** guest: simulated guest; qemu: QEMU without a guest OS; linux: QEMU running Debian's kernel */
  mode: 'guest' | 'qemu' | 'linux';
  /** linux: the guest NIC (e1000, virtio) and kernel */
  nic?: string;
  kernelVersion?: string;
  mac: string;
  ip: string;
  lateMs: number;
  intervalMs: number | null;
  capSeconds: number;
  qemuVersion?: string;
  scenarios: ScenarioResult[];
}

const sec = (ms: number): string => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 1000).toFixed(2)} s`);
const dash = (v: unknown): string => (v === null || v === undefined ? '-' : String(v));

export function learnedText(r: ScenarioResult): string {
  if (r.switchLearnedAfterJoinMs === null) return `not within ${Math.floor(r.watchedAfterJoinMs / 1000)} s`;
  const ms = r.switchLearnedAfterJoinMs;
  if (ms < 1) return '< 1 ms'; // the two notifications arrived together
  return ms < 1000 ? `${ms.toFixed(1)} ms` : sec(ms);
}

export function outageText(r: ScenarioResult): string {
  if (r.outageSeconds === undefined) return '-';
  return `${r.outageCapped ? '≥ ' : ''}${sec(r.outageSeconds * 1000)}`;
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '─'.repeat(n))), ...rows.map(line)].join('\n');
}

export function convergenceText(r: ScenarioResult): string {
  if (r.convergenceState === null) return '-';
  return r.convergenceSeconds === null ? r.convergenceState : sec(r.convergenceSeconds * 1000);
}

export function firstReplyText(r: ScenarioResult): string {
  if (r.firstReplyAfterJoinMs === undefined) return '-';
  if (r.firstReplyAfterJoinMs === null) return `none within ${Math.floor(r.watchedAfterJoinMs / 1000)} s`;
  return sec(r.firstReplyAfterJoinMs);
}

export function renderTable(s: LabSummary): string {
  const bw = (r: ScenarioResult) => [dash(r.verdict), dash(r.rarpSent), convergenceText(r)];
  if (s.mode === 'linux') {
    return table(
      ['run', 'pings sent', 'lost', 'lost after join', 'first reply after join', 'outage', 'switch learned host B after join', "B's bridge had guest on", 'bridgewatch verdict', 'RARPs sent by bridgewatch', 'converged (bridgewatch)', 'gARP/NA replayed'],
      s.scenarios.map((r) => [
        r.name, dash(r.pingsSent), dash(r.pingsLost), dash(r.pingsLostAfterJoin), firstReplyText(r), outageText(r), learnedText(r), dash(r.hostBFdbBeforeJoin), ...bw(r), dash(r.replayed),
      ]),
    );
  }
  if (s.mode === 'qemu') {
    return table(
      ['scenario', 'switch learned host B after join', 'bridgewatch verdict', 'RARPs sent by bridgewatch', 'converged (bridgewatch)'],
      s.scenarios.map((r) => [r.name, learnedText(r), ...bw(r)]),
    );
  }
  return table(
    ['scenario', 'pings sent', 'lost', 'lost after join', 'outage', 'switch learned host B after join', "B's bridge had guest on", 'bridgewatch verdict', 'RARPs sent by bridgewatch', 'converged (bridgewatch)', 'gARP/NA sent by guest', 'gARP/NA replayed by bridgewatch'],
    s.scenarios.map((r) => [r.name, dash(r.pingsSent), dash(r.pingsLost), dash(r.pingsLostAfterJoin), outageText(r), learnedText(r), dash(r.hostBFdbBeforeJoin), ...bw(r), dash(r.guestL3Sent), dash(r.replayed)]),
  );
}

/** One sentence comparing the two runs, in the terms of the original bug report. */
export function verdictLine(s: LabSummary): string {
  if (s.mode === 'linux') return linuxVerdictLine(s);
  const [without, withBw] = [s.scenarios.find((r) => !r.bridgewatch), s.scenarios.find((r) => r.bridgewatch)];
  if (!without || !withBw) return '';
  if (s.mode === 'qemu') {
    const when = (r: ScenarioResult) =>
      r.switchLearnedAfterJoinMs === null ? `had not learned host B ${Math.floor(r.watchedAfterJoinMs / 1000)} s after the join` : `learned host B ${learnedText(r)} after the join`;
    return `Without bridgewatch the switch ${when(without)}; with it, it ${when(withBw)}.`;
  }
  const ratio = withBw.outageSeconds && without.outageSeconds ? without.outageSeconds / withBw.outageSeconds : 0;
  return (
    `Red Hat bug 719294 lost 30–40 pings instead of 1–2; here, one ping every ${s.intervalMs} ms: ${without.pingsLost} lost without bridgewatch, ` +
    `${withBw.pingsLost} with it (outage ${outageText(without)} vs ${outageText(withBw)}${ratio ? `, ${ratio.toFixed(0)}× shorter` : ''}). ` +
    `bridgewatch saw the fabric deliver to the guest again ${convergenceText(withBw)} after its first frame on host B` +
    (withBw.convergenceSeconds === null ? '.' : ` (the client's outage: ${outageText(withBw)}).`)
  );
}

function linuxVerdictLine(s: LabSummary): string {
  const onTime = s.scenarios.find((r) => r.tapOnTime);
  const late = s.scenarios.filter((r) => !r.tapOnTime);
  const part = (r: ScenarioResult) => `${r.pingsLostAfterJoin} lost after the join, first reply ${firstReplyText(r)} after it, ${r.name}`;
  return (
    `Linux ${s.kernelVersion} guest with ${s.nic}, one ping every ${s.intervalMs} ms: ` +
    [onTime ? `tap on time: ${onTime.pingsLost} lost in all` : '', ...late.map(part)].filter(Boolean).join('; ') +
    '.'
  );
}
