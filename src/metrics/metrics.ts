// Prometheus metrics on one injected Registry. Point-in-time values are read in collect();
// counters are fed by the tracker (TrackerSink) and the announcer. Guest MACs and port names
// never label a counter or histogram: they live in port_info and the HTTP API.
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { KINDS, type Kind } from '../bpf/abi.js';
import type { TrackerSink } from '../tracker/types.js';
import { MOVE_DIRECTIONS, type MoveDirection } from '../tracker/moves.js';
import { IDENTITY_SOURCES } from '../identity/types.js';
import { NOT_KEPT_REASONS, REPLAY_KINDS, type NotKeptReason, type ReplayKind } from '../announce/replay.js';

/** 1 ms .. 60 s, with QEMU's announce instants (0.05, 0.2, 0.45, 0.8 s) as exact bounds. */
export const DELAY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.45, 0.8, 1, 2.5, 5, 10, 30, 60];

/**
 * The reasons the daemon counts, exported at 0 from the start (a series that appears only when
 * the first one happens leaves its dashboard panel empty and makes increase() miss that first one).
 */
export const SUPPRESS_REASONS = ['off', 'dry_run', 'group_mac', 'no_bridge', 'conflict', 'holdoff', 'rate_limit', 'delivered_since', 'unknown_vlan', 'no_uplink'] as const;
export const ATTACH_ERROR_REASONS = ['device_gone', 'permission', 'unsupported', 'kernel'] as const;
export const UNRECORDED_REASONS = ['bad_source', 'port_full', 'insert_fail'] as const;
/** why a guest's bridge FDB entry was not moved to its port: the entry's kind, dry-run, or a failure */
export const FDB_SKIP_REASONS = ['static', 'permanent', 'extern_learn', 'sticky', 'dry_run', 'error'] as const;
/** why an arrival's convergence was not measured (src/tracker/convergence.ts) */
export const UNJUDGED_REASONS = ['quiet', 'gone', 'not_watched'] as const;

export interface BridgeFacts {
  name: string;
  stpEnabled: boolean;
  forwardDelaySec: number;
}
export interface PortFacts {
  name: string;
  bridge: string;
  kind: string;
}
/** the VM behind a guest port (src/identity/) */
export interface GuestFacts {
  port: string;
  mac: string;
  vm: string;
  vm_uuid: string;
  vm_namespace: string;
  source: string;
}

/** What collect() reads; implemented by the daemon over the BPF maps, watcher and tracker. */
export interface MetricsSource {
  /** Once per scrape, before anything else: read kernel maps, sync tracker counters. */
  refresh(): void;
  ports(): PortFacts[];
  bridges(): BridgeFacts[];
  macCount(): number;
  maps(): { name: string; entries: number; max: number }[];
  programsAttached(): number;
  bpfEventsDropped(): number;
  /** frames whose MAC the capture did not record, by reason (kernel counters, monotonic) */
  bpfUnrecorded?(): Record<(typeof UNRECORDED_REASONS)[number], number>;
  /** rtnetlink health (monotonic) */
  netlink?(): { resyncs: number; badMessages: number };
  /** guest ports whose VM is known, one entry each */
  guests?(): GuestFacts[];
  /** identity source failures (bad XML, vanished files, unreadable /proc entries), monotonic */
  identityErrors?(): Record<(typeof IDENTITY_SOURCES)[number], number>;
  ready(): boolean;
  refused(): { ports: number; macs: number; timeline: number };
  /** guests awaiting the fabric per bridge, and the unconverged ones */
  convergence?(): { counts: Map<string, { awaiting: number; unconverged: number }>; unconverged: { bridge: string; port: string; mac: string }[] };
  /** guest announcements (gARP/NA) not kept for replay, by reason, kernel and user space (monotonic) */
  announcementsNotKept?(): Record<NotKeptReason, number>;
}

export type AnnounceMode = 'on' | 'dry-run' | 'off';

export interface BuildInfo {
  version: string;
  kernel: string;
  mode: 'ebpf' | 'pcap';
}

const P = 'bridgewatch_';

export class Metrics implements TrackerSink {
  readonly registry: Registry;
  private readonly src: MetricsSource;
  private bridgesKnown = new Set<string>();
  /** the ports port_info's series were built from */
  private portInfoOf: PortFacts[] | undefined;
  private lastDropped = 0;
  private readonly lastUnrecorded: Record<string, number> = {}; // last source values, by name
  private readonly c;

  constructor(registry: Registry, src: MetricsSource, build: BuildInfo, announceMode: AnnounceMode = 'off') {
    this.registry = registry;
    this.src = src;
    const registers = [registry];
    const self = this;
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], collect?: (g: Gauge<L>) => void) =>
      new Gauge<L>({ name: P + name, help, labelNames, registers, ...(collect && { collect() { collect(this); } }) });
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Counter<L>({ name: P + name, help, labelNames, registers });
    const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
      new Histogram<L>({ name: P + name, help, labelNames, buckets: DELAY_BUCKETS, registers });

    // first registered, so its collect() runs first in every scrape
    const mapEntries = gauge('bpf_map_entries', 'Entries in a BPF map.', ['map'] as const, (g) => {
      self.scrapeStart = process.hrtime.bigint();
      self.refresh();
      g.reset();
      for (const m of src.maps()) g.set({ map: m.name }, m.entries);
    });
    this.c = {
      mapEntries,
      mapMax: gauge('bpf_map_max_entries', 'Capacity of a BPF map (LRU saturation when entries reach it).', ['map'] as const, (g) => {
        g.reset();
        for (const m of src.maps()) g.set({ map: m.name }, m.max);
      }),
      buildInfo: gauge('build_info', 'Build and runtime information; mode is ebpf or pcap.', ['version', 'kernel', 'mode'] as const),
      ready: gauge('ready', '1 when BPF is loaded and rtnetlink is subscribed.', [] as const, (g) => g.set(src.ready() ? 1 : 0)),
      portsWatched: gauge('ports_watched', 'Watched ports per bridge (bridge="" for a device in no bridge).', ['bridge'] as const, (g) => {
        g.reset();
        const n = new Map<string, number>();
        for (const p of src.ports()) n.set(p.bridge, (n.get(p.bridge) ?? 0) + 1);
        for (const b of self.bridgesKnown) if (!n.has(b)) n.set(b, 0);
        for (const [bridge, v] of n) g.set({ bridge }, v);
      }),
      portInfo: gauge('port_info', 'One series per watched port.', ['bridge', 'port', 'kind'] as const, (g) => {
        // rebuilt only when a port came, went or changed: at 1,000 ports the rebuild (label
        // objects, sorted-key hashes) was a third of what a scrape allocated
        const ports = src.ports();
        const last = self.portInfoOf;
        if (last && last.length === ports.length && ports.every((p, i) => p.bridge === last[i].bridge && p.name === last[i].name && p.kind === last[i].kind)) return;
        self.portInfoOf = ports;
        g.reset();
        for (const p of ports) g.set({ bridge: p.bridge, port: p.name, kind: p.kind || 'unknown' }, 1);
      }),
      guestInfo: gauge('guest_info', 'One series per guest port whose VM is known (libvirt, KubeVirt, --identity-file); join on (instance, port).', ['port', 'mac', 'vm', 'vm_uuid', 'vm_namespace', 'source'] as const, (g) => {
        g.reset();
        for (const f of src.guests?.() ?? []) g.set({ ...f }, 1);
      }),
      identityErrors: counter('identity_errors_total', 'Identity source failures: bad or huge libvirt XML, files gone mid-read, unreadable /proc entries, a bad --identity-file.', ['source'] as const),
      macs: gauge('guest_macs_tracked', 'Guest MACs tracked over all ports.', [] as const, (g) => g.set(src.macCount())),
      stp: gauge('bridge_stp_enabled', '1 when STP is enabled on the bridge (ports then sit in listening/learning).', ['bridge'] as const, (g) => {
        g.reset();
        for (const b of src.bridges()) g.set({ bridge: b.name }, b.stpEnabled ? 1 : 0);
      }),
      fwdDelay: gauge('bridge_forward_delay_seconds', 'Bridge forward delay.', ['bridge'] as const, (g) => {
        g.reset();
        for (const b of src.bridges()) g.set({ bridge: b.name }, b.forwardDelaySec);
      }),
      programs: gauge('bpf_programs_attached', 'TC programs attached by bridgewatch.', [] as const, (g) => g.set(src.programsAttached())),
      refused: counter('tracker_refused_total', 'Ports, MACs and timeline events the tracker refused or dropped to stay bounded.', ['what'] as const),
      announceMode: gauge('announce_mode', '1 for the configured announce mode (on, dry-run, off).', ['mode'] as const),
      scrape: gauge('scrape_duration_seconds', 'Time spent collecting metrics in the previous scrape.', [] as const),
      eventsDropped: counter('bpf_events_dropped_total', 'Kernel events dropped by rate limits or a full ring buffer.', [] as const),
      resyncs: counter('netlink_resyncs_total', 'Full re-reads of the links after the rtnetlink socket overflowed.', [] as const),
      badNetlink: counter('netlink_bad_messages_total', 'Malformed or unexpected rtnetlink messages, skipped.', [] as const),
      unrecorded: counter('bpf_frames_unrecorded_total', 'Frames whose source MAC was not recorded: group/zero MAC, port at --max-macs-per-port, map insert failure.', ['reason'] as const),
      attachErrors: counter('attach_errors_total', 'Failures to attach the TC program to a port.', ['reason'] as const),
      joins: counter('port_joins_total', 'Ports that joined the bridge.', ['bridge'] as const),
      late: counter('late_attach_total', 'Ports whose guest sent frames before the port could forward them.', ['bridge'] as const),
      before: counter('frames_before_forwarding_total', 'Guest frames that arrived while their port could not forward.', ['bridge', 'kind'] as const),
      announcements: counter('announcements_total', 'Guest announcements by kind, delivered (port forwarding) or not.', ['bridge', 'kind', 'delivered'] as const),
      silent: counter('silent_guests_total', 'Guests forwarding for --silent-after with frames but no announcement.', ['bridge'] as const),
      attachDelay: histogram('attach_delay_seconds', 'First guest frame to port forwarding, for late ports.', ['bridge'] as const),
      firstFrameDelay: histogram('first_frame_delay_seconds', 'Port forwarding to first guest frame, for on-time ports.', ['bridge'] as const),
      rarpSent: counter('rarp_sent_total', 'RARP frames sent on a guest\'s behalf.', ['bridge', 'reason'] as const),
      rarpErrors: counter('rarp_send_errors_total', 'RARP frames that failed to send.', ['bridge'] as const),
      suppressed: counter('announce_suppressed_total', 'Re-announcements not sent, by reason.', ['reason'] as const),
      reannounce: histogram('reannounce_latency_seconds', 'Port forwarding to first RARP sent on the guest\'s behalf.', ['bridge'] as const),
      readErrors: counter('kernel_read_errors_total', 'Failed reads of the kernel\'s BPF maps (at scrape, API read or port event); the values shown are the last ones read.', [] as const),
      fdbRepairs: counter('fdb_repairs_total', 'Bridge FDB entries of a healed guest moved from another port (the uplink) to the guest\'s port.', ['bridge'] as const),
      fdbMoves: counter('fdb_moves_total', 'A guest MAC\'s bridge FDB entry moved between a local guest port and an uplink (to_uplink: the guest left this host; to_guest: it is here).', ['bridge', 'direction'] as const),
      flaps: counter('mac_flaps_total', 'Guest MACs whose FDB entry crossed between guest port and uplink more than --flap-moves times within --flap-window.', ['bridge'] as const),
      fdbSkipped: counter('fdb_repair_skipped_total', 'Bridge FDB entries of a healed guest left where they were, by reason.', ['reason'] as const),
      convergence: histogram('convergence_seconds', 'Guest arrivals on this host: the guest\'s first frame to the first unicast frame for it from the fabric (uplink ingress).', ['bridge'] as const),
      unjudged: counter('convergence_unjudged_total', 'Guest arrivals whose convergence was not measured: quiet (no frame of theirs left by an uplink), gone (port deleted or guest left first), not_watched (watch list full).', ['bridge', 'reason'] as const),
      unconverged: gauge('guests_unconverged', 'Guests whose frames left by an uplink --converge-timeout ago or more with no unicast frame for them coming back.', ['bridge'] as const, (g) => {
        g.reset();
        const c = src.convergence?.().counts;
        for (const b of self.bridgesKnown) g.set({ bridge: b }, c?.get(b)?.unconverged ?? 0);
      }),
      awaiting: gauge('guests_awaiting_convergence', 'Arrived guests watched on the uplinks, not yet converged nor unconverged.', ['bridge'] as const, (g) => {
        g.reset();
        const c = src.convergence?.().counts;
        for (const b of self.bridgesKnown) g.set({ bridge: b }, c?.get(b)?.awaiting ?? 0);
      }),
      guestUnconverged: gauge('guest_unconverged', 'One series per unconverged guest (bounded by the watch list); join on (instance, port) with guest_info for the VM.', ['bridge', 'port', 'mac'] as const, (g) => {
        g.reset();
        for (const u of src.convergence?.().unconverged ?? []) g.set(u, 1);
      }),
      replayed: counter('announcements_replayed_total', 'The guest\'s own gratuitous ARP (garp) or unsolicited NA (na), lost on its port before it forwarded, sent again byte for byte with the RARPs.', ['bridge', 'kind'] as const),
      replayErrors: counter('replay_send_errors_total', 'Replayed guest announcements that failed to send.', ['bridge'] as const),
      notKept: counter('announcements_not_kept_total', 'Guest gARP/NA frames lost on a port that could not forward and not kept for replay, by reason.', ['reason'] as const),
      conflicts: counter('mac_conflicts_total', 'A guest MAC active on two local ports at once (no announcement sent).', ['bridge'] as const),
    };
    this.c.buildInfo.set({ ...build }, 1);
    for (const reason of SUPPRESS_REASONS) this.c.suppressed.inc({ reason }, 0);
    for (const reason of ATTACH_ERROR_REASONS) this.c.attachErrors.inc({ reason }, 0);
    for (const reason of UNRECORDED_REASONS) this.c.unrecorded.inc({ reason }, 0);
    for (const reason of FDB_SKIP_REASONS) this.c.fdbSkipped.inc({ reason }, 0);
    for (const reason of NOT_KEPT_REASONS) this.c.notKept.inc({ reason }, 0);
    for (const source of IDENTITY_SOURCES) this.c.identityErrors.inc({ source }, 0);
    for (const what of ['ports', 'macs', 'timeline']) this.c.refused.inc({ what }, 0);
    for (const m of ['on', 'dry-run', 'off'] as const) this.c.announceMode.set({ mode: m }, m === announceMode ? 1 : 0);
    // the process's own health (process_*: CPU, memory, fds, start time; nodejs_*: heap, event
    // loop, GC), read at scrape time like the rest, on this registry and not the global one
    collectDefaultMetrics({ register: registry });
    // prom-client names three gauges *_total, a suffix Prometheus reserves for counters (promtool
    // check metrics fails on them); each is the sum of the labelled gauge beside it
    for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(n);
  }

  private scrapeStart = 0n;

  private refresh(): void {
    try {
      this.src.refresh();
    } catch {
      // a failed map read must not fail the scrape: counted, and the gauges show what is known
      this.c.readErrors.inc();
    }
    const dropped = this.src.bpfEventsDropped();
    if (dropped > this.lastDropped) this.c.eventsDropped.inc(dropped - this.lastDropped);
    this.lastDropped = Math.max(this.lastDropped, dropped);
    const r = this.src.refused();
    for (const what of ['ports', 'macs', 'timeline'] as const) this.grow(this.c.refused, `refused_${what}`, r[what], { what });
    const nl = this.src.netlink?.();
    if (nl) {
      this.grow(this.c.resyncs, 'resyncs', nl.resyncs);
      this.grow(this.c.badNetlink, 'badMessages', nl.badMessages);
    }
    const idErrors = this.src.identityErrors?.();
    if (idErrors) for (const source of IDENTITY_SOURCES) this.grow(this.c.identityErrors, `identity_${source}`, idErrors[source], { source });
    const notKept = this.src.announcementsNotKept?.();
    if (notKept) for (const reason of NOT_KEPT_REASONS) this.grow(this.c.notKept, `not_kept_${reason}`, notKept[reason], { reason });
    const unrecorded = this.src.bpfUnrecorded?.();
    for (const reason of UNRECORDED_REASONS) {
      const v = unrecorded?.[reason] ?? 0;
      const last = this.lastUnrecorded[reason] ?? 0;
      if (v > last) this.c.unrecorded.inc({ reason }, v - last);
      this.lastUnrecorded[reason] = Math.max(last, v);
    }
  }

  /** Follow a monotonic source count with a counter. */
  private grow(c: Counter<string>, key: string, v: number, labels: Record<string, string> = {}): void {
    const last = this.lastUnrecorded[key] ?? 0;
    if (v > last) c.inc(labels, v - last);
    this.lastUnrecorded[key] = Math.max(last, v);
  }

  /** The exposition text; records how long it took for the next scrape. */
  async scrape(): Promise<string> {
    const text = await this.registry.metrics();
    if (this.scrapeStart) this.c.scrape.set(Number(process.hrtime.bigint() - this.scrapeStart) / 1e9);
    return text;
  }

  /** A bridge's series exist at 0 from the moment it is seen, so rate() and alerts work at once. */
  bridgeSeen(bridge: string): void {
    if (this.bridgesKnown.has(bridge)) return;
    this.bridgesKnown.add(bridge);
    const b = { bridge };
    for (const ctr of [this.c.joins, this.c.late, this.c.silent, this.c.rarpErrors, this.c.replayErrors, this.c.conflicts, this.c.fdbRepairs, this.c.flaps]) ctr.inc(b, 0);
    for (const kind of REPLAY_KINDS) this.c.replayed.inc({ bridge, kind }, 0);
    for (const direction of MOVE_DIRECTIONS) this.c.fdbMoves.inc({ bridge, direction }, 0);
    for (const kind of KINDS) {
      this.c.before.inc({ bridge, kind }, 0);
      if (kind !== 'other') for (const delivered of ['true', 'false']) this.c.announcements.inc({ bridge, kind, delivered }, 0);
    }
    for (const reason of ['late_attach', 'manual']) this.c.rarpSent.inc({ bridge, reason }, 0);
    for (const reason of UNJUDGED_REASONS) this.c.unjudged.inc({ bridge, reason }, 0);
    for (const h of [this.c.attachDelay, this.c.firstFrameDelay, this.c.reannounce, this.c.convergence]) h.zero(b);
  }

  bridgeGone(bridge: string): void {
    if (!this.bridgesKnown.delete(bridge)) return;
    const b = { bridge };
    for (const direction of MOVE_DIRECTIONS) this.c.fdbMoves.remove({ bridge, direction });
    for (const kind of REPLAY_KINDS) this.c.replayed.remove({ bridge, kind });
    for (const m of [this.c.joins, this.c.late, this.c.silent, this.c.rarpErrors, this.c.replayErrors, this.c.conflicts, this.c.fdbRepairs, this.c.flaps, this.c.attachDelay, this.c.firstFrameDelay, this.c.reannounce, this.c.convergence])
      m.remove(b);
    for (const reason of UNJUDGED_REASONS) this.c.unjudged.remove({ bridge, reason });
    for (const kind of KINDS) {
      this.c.before.remove({ bridge, kind });
      for (const delivered of ['true', 'false']) this.c.announcements.remove({ bridge, kind, delivered });
    }
    for (const reason of ['late_attach', 'manual']) this.c.rarpSent.remove({ bridge, reason });
  }

  /** The capture mode is known only once the backend started. */
  setBuild(build: BuildInfo): void {
    this.c.buildInfo.reset();
    this.c.buildInfo.set({ ...build }, 1);
  }

  kernelReadError(): void {
    this.c.readErrors.inc();
  }

  attachError(reason: string): void {
    this.c.attachErrors.inc({ reason });
  }

  // ---- TrackerSink ----
  portJoined(bridge: string): void {
    this.c.joins.inc({ bridge });
  }
  lateAttach(bridge: string, attachDelaySec: number): void {
    this.c.late.inc({ bridge });
    this.c.attachDelay.observe({ bridge }, attachDelaySec);
  }
  onTime(bridge: string, firstFrameDelaySec: number): void {
    this.c.firstFrameDelay.observe({ bridge }, firstFrameDelaySec);
  }
  silent(bridge: string): void {
    this.c.silent.inc({ bridge });
  }
  framesBeforeForwarding(bridge: string, kind: Kind, n: number): void {
    this.c.before.inc({ bridge, kind }, n);
  }
  announcements(bridge: string, kind: Kind, delivered: boolean, n: number): void {
    this.c.announcements.inc({ bridge, kind, delivered: String(delivered) }, n);
  }

  // ---- announcer ----
  rarpSent(bridge: string, reason: 'late_attach' | 'manual', n = 1): void {
    this.c.rarpSent.inc({ bridge, reason }, n);
  }
  rarpError(bridge: string): void {
    this.c.rarpErrors.inc({ bridge });
  }
  announceSuppressed(reason: string): void {
    this.c.suppressed.inc({ reason });
  }
  reannounceLatency(bridge: string, sec: number): void {
    this.c.reannounce.observe({ bridge }, sec);
  }
  announcementReplayed(bridge: string, kind: ReplayKind): void {
    this.c.replayed.inc({ bridge, kind });
  }
  replayError(bridge: string): void {
    this.c.replayErrors.inc({ bridge });
  }
  macConflict(bridge: string): void {
    this.c.conflicts.inc({ bridge });
  }
  fdbMove(bridge: string, direction: MoveDirection, flap: boolean): void {
    this.c.fdbMoves.inc({ bridge, direction });
    if (flap) this.c.flaps.inc({ bridge });
  }
  fdbRepaired(bridge: string): void {
    this.c.fdbRepairs.inc({ bridge });
  }
  fdbRepairSkipped(reason: (typeof FDB_SKIP_REASONS)[number]): void {
    this.c.fdbSkipped.inc({ reason });
  }

  // ---- ConvergenceSink ----
  converged(bridge: string, seconds: number): void {
    this.c.convergence.observe({ bridge }, seconds);
  }
  ended(bridge: string, reason: (typeof UNJUDGED_REASONS)[number]): void {
    this.c.unjudged.inc({ bridge, reason });
  }
}
