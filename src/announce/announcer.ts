// Re-announces a guest the way QEMU would have, when its port became able to forward after
// the guest's own announcements died on it. Every decision is logged and counted.
import { isUnicastMac, rarpFrame, withVlanTag } from './frames.js';
import { announceOffsets, type AnnounceParameters } from './schedule.js';
import { uplinkEgress, type PortVlans } from './vlans.js';
import type { Clock } from '../tracker/types.js';
import type { ReplayFrame, ReplayKind } from './replay.js';

export type AnnounceMode = 'on' | 'dry-run' | 'off';
export type Reason = 'late_attach' | 'manual';

export interface UplinkPort {
  ifindex: number;
  name: string;
}

export interface AnnouncerDeps {
  mode: AnnounceMode;
  params: AnnounceParameters;
  holdoffMs: number;
  ratePerSec: number;
  clock: Clock;
  send(ifindex: number, frame: Buffer): void;
  /** the bridge's uplinks right now */
  uplinks(bridge: string): UplinkPort[];
  vlanFiltering(bridge: string): boolean;
  vlans(): Promise<Map<string, PortVlans>>;
  /** other local ports where this MAC is active now (conflict check) */
  activeElsewhere(mac: string, ifindex: number): number[];
  metrics: {
    rarpSent(bridge: string, reason: Reason, n?: number): void;
    rarpError(bridge: string): void;
    announceSuppressed(reason: string): void;
    reannounceLatency(bridge: string, sec: number): void;
    macConflict(bridge: string): void;
    announcementReplayed?(bridge: string, kind: ReplayKind): void;
    replayError?(bridge: string): void;
  };
  onSent?(ifindex: number, mac: string, tsNs: bigint, detail: string): void;
  /** one of the guest's own kept announcements went out again */
  onReplayed?(ifindex: number, mac: string, tsNs: bigint, kind: ReplayKind, detail: string): void;
  /**
   * Before a schedule's first frame: make the local bridge deliver the MAC to the guest's port
   * (`vid`: the guest's VLAN on a vlan_filtering bridge). Failures are the callee's to count.
   */
  beforeFirstRound?(t: AnnounceTarget, vid: number | undefined): Promise<void>;
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

export interface AnnounceTarget {
  ifindex: number;
  port: string;
  bridge: string;
  mac: string;
  /** when the port reached forwarding (for the latency metric), if this is a late attach */
  forwardingNs?: bigint;
  /**
   * the guest's own gARP/NA frames that died on this port (replay.ts), sent again after the RARP
   * in every round, byte for byte, under the same rules (rate cap, VLAN egress)
   */
  replay?: readonly ReplayFrame[];
}

export type Decision = { ok: true } | { ok: false; reason: 'off' | 'dry_run' | 'group_mac' | 'holdoff' | 'conflict' | 'no_bridge' | 'no_uplink' };

export class Announcer {
  private readonly d: AnnouncerDeps;
  private readonly lastSchedule = new Map<string, number>(); // mac -> wall ms
  /** the rounds still to send, per MAC: one schedule per MAC at a time */
  private readonly timers = new Map<string, Set<NodeJS.Timeout>>();
  private tokens: number;
  private refillMs: number;
  stopped = false;

  constructor(deps: AnnouncerDeps) {
    this.d = deps;
    this.tokens = deps.ratePerSec;
    this.refillMs = deps.clock.wallMs();
  }

  get mode(): AnnounceMode {
    return this.d.mode;
  }

  /** Decide, and if allowed start QEMU's schedule for this MAC on the bridge's uplinks. */
  announce(t: AnnounceTarget, reason: Reason): Decision {
    const decision = this.decide(t, reason);
    const log = { port: t.port, bridge: t.bridge, mac: t.mac, reason };
    if (!decision.ok) {
      this.d.metrics.announceSuppressed(decision.reason);
      if (decision.reason === 'conflict') this.d.metrics.macConflict(t.bridge);
      this.d.log.info({ ...log, suppressed: decision.reason }, 'announce suppressed');
      return decision;
    }
    const now = this.d.clock.wallMs();
    // forget schedules past their holdoff, so this map holds only MACs announced lately
    for (const [mac, at] of this.lastSchedule) if (now - at >= this.d.holdoffMs) this.lastSchedule.delete(mac);
    this.lastSchedule.set(t.mac, now);
    // logged once the first round is out: a log line is a synchronous write (~0.1 ms here)
    const scheduled = () =>
      this.d.log.info({ ...log, rounds: this.d.params.rounds, ...(t.replay?.length && { replay: t.replay.map((f) => f.kind) }) }, 'announce scheduled');
    // a new schedule replaces one still running for this MAC, as QEMU's announce-self does
    const running = this.timers.get(t.mac);
    if (running) {
      for (const timer of running) clearTimeout(timer);
      this.d.log.info(log, 'announce restarted');
    }
    const mine = new Set<NodeJS.Timeout>();
    this.timers.set(t.mac, mine);
    // in order even when a round waits (the FDB repair, a VLAN read) past the next one's offset
    let chain: Promise<void> = Promise.resolve();
    announceOffsets(this.d.params).forEach((offset, round) => {
      const run = () => this.round(t, reason, round, mine);
      // the first round at once (a microtask, after the caller's work): a 0 ms setTimeout
      // waits for the next timers phase, 1 ms or more, on the way to the first RARP
      if (offset === 0) {
        chain = chain.then(run, run).then(() => {
          scheduled();
          if (!mine.size && this.timers.get(t.mac) === mine) this.timers.delete(t.mac);
        });
        return;
      }
      const timer = setTimeout(() => {
        mine.delete(timer);
        if (!mine.size && this.timers.get(t.mac) === mine) this.timers.delete(t.mac);
        chain = chain.then(run, run);
      }, offset);
      mine.add(timer);
    });
    return decision;
  }

  stop(): void {
    this.stopped = true;
    for (const set of this.timers.values()) for (const t of set) clearTimeout(t);
    this.timers.clear();
  }

  private decide(t: AnnounceTarget, reason: Reason): Decision {
    if (this.d.mode === 'off') return { ok: false, reason: 'off' };
    if (!isUnicastMac(t.mac)) return { ok: false, reason: 'group_mac' };
    if (!t.bridge) return { ok: false, reason: 'no_bridge' };
    if (!this.d.uplinks(t.bridge).length) return { ok: false, reason: 'no_uplink' };
    if (this.d.activeElsewhere(t.mac, t.ifindex).length) return { ok: false, reason: 'conflict' };
    const last = this.lastSchedule.get(t.mac);
    if (reason === 'late_attach' && last !== undefined && this.d.clock.wallMs() - last < this.d.holdoffMs)
      return { ok: false, reason: 'holdoff' };
    if (this.d.mode === 'dry-run') return { ok: false, reason: 'dry_run' };
    return { ok: true };
  }

  private take(): boolean {
    const now = this.d.clock.wallMs();
    this.tokens = Math.min(this.d.ratePerSec, this.tokens + ((now - this.refillMs) * this.d.ratePerSec) / 1000);
    this.refillMs = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private async round(t: AnnounceTarget, reason: Reason, round: number, schedule: Set<NodeJS.Timeout>): Promise<void> {
    if (this.stopped) return;
    const filtering = this.d.vlanFiltering(t.bridge);
    let vlans = new Map<string, PortVlans>();
    if (filtering) {
      try {
        vlans = await this.d.vlans(); // the port's VLANs at this moment
      } catch (e) {
        this.d.log.warn({ err: (e as Error).message }, 'read vlans failed');
      }
    }
    // stopped, or replaced by a newer schedule for this MAC while the VLANs were read
    if (this.stopped || (this.timers.has(t.mac) && this.timers.get(t.mac) !== schedule)) return;
    const base = rarpFrame(t.mac);
    const pvid = filtering ? vlans.get(t.port)?.pvid : undefined;
    if (filtering && pvid === undefined) {
      // untagged on a trunk would land in the native VLAN: better nothing, and say so
      this.d.metrics.announceSuppressed('unknown_vlan');
      this.d.log.warn({ port: t.port, mac: t.mac, round: round + 1 }, 'guest port has no PVID on a vlan_filtering bridge; round not sent');
      return;
    }
    if (round === 0 && this.d.beforeFirstRound) {
      await this.d.beforeFirstRound(t, pvid);
      if (this.stopped || (this.timers.has(t.mac) && this.timers.get(t.mac) !== schedule)) return;
    }
    const uplinks = this.d.uplinks(t.bridge);
    if (!uplinks.length) {
      // the uplink went away mid-schedule (the schedule itself was counted when it started)
      this.d.log.warn({ port: t.port, bridge: t.bridge, mac: t.mac, round: round + 1 }, 'no uplink on the bridge; round not sent');
      return;
    }
    let sent = 0;
    for (const up of uplinks) {
      const egress = uplinkEgress(pvid, filtering ? vlans.get(up.name) : undefined);
      if (!egress.send) continue;
      if (!this.take()) {
        this.d.metrics.announceSuppressed('rate_limit');
        continue;
      }
      const via = `round ${round + 1} via ${up.name}${egress.vid ? ` vlan ${egress.vid}` : ''} (${reason})`;
      try {
        this.d.send(up.ifindex, egress.vid ? withVlanTag(base, egress.vid) : base);
        sent++;
        const ts = this.d.clock.monoNs();
        if (round === 0 && sent === 1 && t.forwardingNs !== undefined)
          this.d.metrics.reannounceLatency(t.bridge, Number(ts - t.forwardingNs) / 1e9);
        this.d.onSent?.(t.ifindex, t.mac, ts, via);
      } catch (e) {
        this.d.metrics.rarpError(t.bridge);
        this.d.log.warn({ port: t.port, mac: t.mac, uplink: up.name, err: (e as Error).message }, 'rarp send failed');
      }
      // the guest's own L3 announcements, as it sent them, tagged as the bridge would tag them
      for (const f of t.replay ?? []) {
        if (!this.take()) {
          this.d.metrics.announceSuppressed('rate_limit');
          continue;
        }
        try {
          this.d.send(up.ifindex, egress.vid ? withVlanTag(f.data, egress.vid) : f.data);
          this.d.metrics.announcementReplayed?.(t.bridge, f.kind);
          this.d.onReplayed?.(t.ifindex, t.mac, this.d.clock.monoNs(), f.kind, via);
        } catch (e) {
          this.d.metrics.replayError?.(t.bridge);
          this.d.log.warn({ port: t.port, mac: t.mac, uplink: up.name, kind: f.kind, err: (e as Error).message }, 'replay send failed');
        }
      }
    }
    if (sent) this.d.metrics.rarpSent(t.bridge, reason, sent);
  }
}
