// One scenario's world: the topology, the switch FDB watch, bridgewatch on host B if asked, and
// everything else the scenario starts, released in reverse order whatever happened.
import { BridgewatchError } from '../errors.js';
import { LabDaemon } from './daemon.js';
import { FdbWatch, PortWatch } from './monitor.js';
import type { Progress } from './progress.js';
import type { ScenarioResult } from './report.js';
import { buildTopology, destroyTopology, GUEST_MAC, GUEST_TAP, NS, SWITCH_PORT } from './topology.js';
import { now } from './wait.js';

export interface ScenarioOptions {
  bridgewatch: boolean;
  /** the run's name in messages and the table; by default with or without bridgewatch */
  label?: string;
  lateMs: number;
  /** give up waiting for recovery this long after the migration */
  capMs: number;
  intervalMs: number;
  /** leave the topology and the daemon up at the end (if all went well) */
  keep: boolean;
  signal: AbortSignal;
  progress: Progress;
}

export class Stage {
  /** the switch's FDB entry for the guest */
  readonly fdb = new FdbWatch(NS.sw, GUEST_MAC);
  /** host B's bridge ports, for the moment the guest's tap starts forwarding */
  readonly portsB = new PortWatch(NS.b);
  /** host B's own bridge's FDB entry for the guest: learned on the uplink while it ran on A? */
  readonly fdbB = new FdbWatch(NS.b, GUEST_MAC);
  daemon: LabDaemon | null = null;
  private readonly undo: { fn: () => unknown; keepable: boolean }[] = [];

  constructor(readonly o: ScenarioOptions) {}

  /** The fields both scenarios report: join and switch timing, and bridgewatch's view of the guest. */
  async result(tResume: number, tJoin: number, guestRarpSent: number | null): Promise<ScenarioResult> {
    const learned = this.fdb.learnedOn(SWITCH_PORT.b, tResume);
    const view = this.daemon ? await this.daemon.macView(GUEST_TAP, GUEST_MAC) : null;
    const arrival = this.daemon ? await this.daemon.arrival(GUEST_MAC) : null;
    return {
      name: this.label,
      bridgewatch: this.o.bridgewatch,
      joinAfterResumeMs: tJoin - tResume,
      hostBFdbBeforeJoin: this.fdbB.before(tJoin) ?? null,
      switchLearnedAfterJoinMs: learned === undefined ? null : learned - tJoin,
      watchedAfterJoinMs: now() - tJoin,
      guestRarpSent,
      framesBeforeForwarding: view?.framesBeforeForwarding ?? null,
      verdict: this.daemon ? (view?.verdict ?? 'none') : null,
      rarpSent: this.daemon ? (view?.rarpSent ?? 0) : null,
      convergenceSeconds: arrival?.convergenceSeconds ?? null,
      convergenceState: this.daemon ? (arrival?.state ?? 'none') : null,
      replayed: this.daemon ? await this.daemon.replayedTotal() : null,
    };
  }

  get label(): string {
    return this.o.label ?? (this.o.bridgewatch ? 'with bridgewatch' : 'without bridgewatch');
  }

  async open(): Promise<void> {
    const p = this.o.progress;
    buildTopology();
    this.defer(() => {
      const errors = destroyTopology();
      if (errors.length) throw new BridgewatchError('EKERNEL', errors.join('; '));
    }, true);
    p.say(`[${this.label}] topology up: namespaces ${Object.values(NS).join(', ')}`);
    if (this.o.bridgewatch) {
      const d = new LabDaemon(NS.b);
      this.defer(() => d.stop(), true);
      await d.start();
      this.daemon = d;
      p.say(`[${this.label}] bridgewatch running in ${NS.b}, ready`);
    }
    for (const m of [this.fdb, this.portsB, this.fdbB]) {
      await m.start();
      this.defer(() => m.stop());
    }
  }

  /**
   * When B's tap started forwarding, from the kernel's own notification; `issued` (just before
   * the hotplug command ran) if that was not seen.
   */
  joinedAt(issued: number): number {
    return this.portsB.forwardingAt(GUEST_TAP, issued) ?? issued;
  }

  /** Run fn at close(), before what was deferred earlier; `keepable`: skipped by close(keep). */
  defer(fn: () => unknown, keepable = false): void {
    this.undo.push({ fn, keepable });
  }

  /**
   * Release everything; with `keep`, leave the topology and the daemon running. Errors are
   * collected so one failure does not leave the rest behind; the first is rethrown.
   */
  async close(keep = false): Promise<void> {
    if (keep) this.daemon?.release();
    let first: unknown;
    for (const { fn, keepable } of this.undo.reverse()) {
      if (keep && keepable) continue;
      try {
        await fn();
      } catch (e) {
        first ??= e;
      }
    }
    this.undo.length = 0;
    if (first) throw first;
  }

  /** close() at a scenario's end: after a failure, a cleanup error is shown, not thrown over it. */
  async closeAfter(ok: boolean, keep: boolean): Promise<void> {
    try {
      await this.close(keep);
    } catch (e) {
      if (ok) throw e;
      this.o.progress.say(`[${this.label}] clean up: ${(e as Error).message}`);
    }
  }
}
