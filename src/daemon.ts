// The daemon's wiring and lifecycle. start() acquires in order (BPF, ring buffer, rtnetlink,
// announcer); stop() releases in reverse. Every attachment it makes is released by stop().
import { release } from 'node:os';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { EbpfBackend, type ObserveBackend } from './backend.js';
import { BR_STATES, macFromString, type MacEntry } from './bpf/abi.js';
import { routeLibbpfPrint } from './bpf/libbpf.js';
import { BridgewatchError } from './errors.js';
import { Tracker } from './tracker/timeline.js';
import { systemClock, type Clock, type PortState as TrackerState } from './tracker/types.js';
import { Metrics, type MetricsSource } from './metrics/metrics.js';
import { PortWatcher } from './ports/watcher.js';
import type { PortEvent } from './ports/types.js';
import { defaultRules, isUplink, validateRules } from './ports/match.js';
import { ConvergenceTracker } from './tracker/convergence.js';
import { migrationView, type MigrationPage } from './tracker/convergence-view.js';
import { vmView } from './identity/present.js';
import type { BpfEvent } from './bpf/abi.js';
import { Healer } from './announce/healer.js';
import { lockNetns } from './sys/netns-lock.js';
import { PacketSocket } from './sys/packet.js';
import { RtnlRequester } from './sys/rtnl-request.js';
import { ERRNO } from './sys/errno.js';
import { c } from './sys/libc.js';
import { FdbWatch, type FdbNotice } from './ports/fdb-watch.js';
import { MoveTracker } from './tracker/moves.js';
import { VERSION } from './paths.js';
import type { Config } from './config.js';
import type { HttpDeps } from './http/server.js';
import { IdentityResolver } from './identity/resolver.js';
import { guestFacts, withVm } from './identity/present.js';

export interface DaemonOptions {
  config: Config;
  log: Logger;
  clock?: Clock;
  bpfObject?: string;
}

/** API reads fold in kernel counts at most this often */
const API_SYNC_MS = 1000;

const attachReason = (e: unknown): string => {
  const errno = (e as BridgewatchError).errno;
  if (errno === ERRNO.ENODEV || errno === ERRNO.ENXIO) return 'device_gone';
  if (errno === ERRNO.EPERM || errno === ERRNO.EACCES) return 'permission';
  if ((e as BridgewatchError).code === 'ENOTSUP') return 'unsupported';
  return 'kernel';
};

const vmOrNull = (id: Parameters<typeof vmView>[0] | undefined) => (id ? vmView(id) : null);

export class Daemon {
  readonly registry = new Registry();
  readonly tracker: Tracker;
  readonly metrics: Metrics;
  readonly watcher: PortWatcher;
  readonly healer: Healer;
  readonly identity: IdentityResolver;
  bpf: ObserveBackend | undefined;
  private packet: PacketSocket | undefined;
  private rtnl: RtnlRequester | undefined;
  private fdbWatch: FdbWatch | undefined;
  private readonly moves: MoveTracker;
  /** per-arrival convergence (undefined: --converge-timeout 0, or no eBPF) */
  convergence: ConvergenceTracker | undefined;
  private fdbBad = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly cfg: Config;
  private readonly log: Logger;
  private readonly clock: Clock;
  private bpfError = '';
  private subscribed = false;
  private lastEntries = 0;
  private lastSync = 0;
  /** kernel event drops at the last full map read (-1: never read) */
  private droppedAtScan = -1;
  private unlock: (() => void) | undefined;

  constructor(o: DaemonOptions) {
    this.cfg = o.config;
    this.log = o.log;
    this.clock = o.clock ?? systemClock;
    const c = this.cfg;
    this.tracker = new Tracker({
      clock: this.clock,
      silentAfterMs: c.silentAfterMs,
      maxPorts: c.maxPorts,
      maxMacsPerPort: c.maxMacsPerPort,
      maxEvents: c.maxEvents,
      facts: (f) => this.convergence?.fact(f),
      sink: {
        // forwards to metrics, created just below
        portJoined: (b) => this.metrics.portJoined(b),
        lateAttach: (b, s) => this.metrics.lateAttach(b, s),
        onTime: (b, s) => this.metrics.onTime(b, s),
        silent: (b) => this.metrics.silent(b),
        framesBeforeForwarding: (b, k, n) => this.metrics.framesBeforeForwarding(b, k, n),
        announcements: (b, k, d, n) => this.metrics.announcements(b, k, d, n),
        macLate: (ifindex, mac, atNs) => this.healer.lateMac(ifindex, mac, atNs),
      },
    });
    this.identity = new IdentityResolver({ cfg: c, log: this.log });
    this.metrics = new Metrics(this.registry, this.metricsSource(), { version: VERSION, kernel: release(), mode: 'ebpf' }, c.announce);
    const rules = validateRules({
      ...defaultRules(),
      bridges: c.bridges,
      excludeBridges: c.excludeBridges,
      devices: c.devices,
      excludeDevices: c.excludeDevices,
      uplinks: c.uplinks,
      guests: c.guests,
    });
    this.moves = new MoveTracker({ flapMoves: c.flapMoves, flapWindowMs: c.flapWindowMs, maxMacs: c.maxPorts * c.maxMacsPerPort });
    this.watcher = new PortWatcher({ rules, clock: () => this.clock.monoNs(), log: this.log });
    this.healer = new Healer({
      cfg: c,
      clock: this.clock,
      log: this.log,
      metrics: this.metrics,
      tracker: this.tracker,
      watcher: this.watcher,
      backend: () => this.bpf,
      packet: () => this.packet,
      rtnl: () => this.rtnl,
    });
  }

  /** BPF loaded and rtnetlink subscribed. */
  ready(): { ok: boolean; reason?: string } {
    if (!this.bpf) return { ok: false, reason: this.bpfError ? `capture unavailable: ${this.bpfError}` : 'capture not started' };
    if (!this.subscribed) return { ok: false, reason: 'rtnetlink not subscribed' };
    return { ok: true };
  }

  async start(): Promise<void> {
    const { convergeTimeoutMs } = this.cfg;
    await this.identity.start(); // first: a bad --identity-file stops us before anything is attached
    this.unlock = lockNetns(); // before attaching anything: see netns-lock.ts
    this.bpf = await this.openBackend();
    const fabric = this.bpf?.fabric;
    if (fabric && convergeTimeoutMs > 0)
      this.convergence = new ConvergenceTracker({ clock: this.clock, watch: fabric.awaits, sink: this.metrics, timeoutMs: convergeTimeoutMs });
    else if (convergeTimeoutMs > 0 && this.bpf) this.log.warn('no convergence watch with libpcap capture (it needs the uplink programs)');
    this.bpf?.startEvents(
      (ev) => (ev.uplink ? this.onUplink(ev) : this.tracker.frame(ev)),
      (size, err) => this.log.error({ size, err: err instanceof Error ? err.stack : err }, 'event record not applied'),
    );
    this.bpf?.startFrames?.(
      (f) => this.healer.keepFrame(f),
      (size, err) => this.log.error({ size, err: err instanceof Error ? err.stack : err }, 'kept frame record not applied'),
    );
    if (this.bpf) this.metrics.setBuild({ version: VERSION, kernel: release(), mode: this.bpf.mode });
    this.packet = new PacketSocket();
    this.rtnl = new RtnlRequester();
    this.rtnl.open();
    this.watcher.on('port', (ev: PortEvent) => this.onPort(ev));
    this.watcher.on('bridge', (ev) => {
      if (ev.prev && ev.prev.name !== ev.bridge.name) this.metrics.bridgeGone(ev.prev.name);
      this.metrics.bridgeSeen(ev.bridge.name);
    });
    this.watcher.on('bridgeDeleted', (ev) => {
      this.metrics.bridgeGone(ev.name);
      this.moves.bridgeGone(ev.name);
    });
    this.watcher.on('error', (err: Error) => {
      this.subscribed = false; // /readyz must say so: we no longer see ports come and go
      this.log.error({ err: err.message }, 'rtnetlink failed');
    });
    await this.watcher.start();
    this.subscribed = true;
    // the source side: after the links are known, so every FDB entry names a known port
    this.fdbWatch = new FdbWatch({
      learned: (n) => this.onFdb(n),
      bad: (cause) => {
        this.fdbBad++;
        this.log.warn({ err: cause }, 'fdb notification skipped');
      },
    });
    try {
      await this.fdbWatch.start(this.rtnl);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'fdb watch unavailable: no source-side moves');
    }
    let ticks = 0;
    this.tickTimer = setInterval(() => {
      this.tracker.tick();
      this.bpf?.poll(); // armings the kernel made are adopted before the sweep
      this.convergence?.tick();
      // evictions lower the per-port MAC counts only when the map is read: read it even unscraped
      if (++ticks % 10 === 0) {
        this.syncKernel(API_SYNC_MS);
        c.malloc_trim(0); // what bursts (netlink messages, libbpf) freed, back to the kernel
      }
    }, 1000);
    this.tickTimer.unref();
    c.malloc_trim(0); // libbpf's load (vmlinux BTF for CO-RE) and the first dumps freed a lot
    this.log.info({ ports: this.tracker.portCount(), bridges: this.watcher.bridges().length }, 'watching');
  }

  /** eBPF when it loads; libpcap when configured or (auto) when eBPF is unavailable. */
  private async openBackend(): Promise<ObserveBackend | undefined> {
    const c = this.cfg;
    if (c.capture !== 'pcap') {
      try {
        // libbpf's own lines (mostly expected feature-probe failures) are details, not news
        routeLibbpfPrint((level, msg) => this.log.debug({ libbpf: level }, msg));
        const bpf = new EbpfBackend({
          maxMacs: c.bpfMaxMacs,
          mode: c.attach,
          stateDir: c.stateDir,
          portState: c.bpfPortState,
          // with --observe-uplinks the program also runs on uplinks, whose MACs are other hosts'
          tunables: { macsPerPort: c.maxMacsPerPort, armAwait: c.convergeTimeoutMs > 0 && !c.observeUplinks },
        });
        // one line for the operator: which build and attach mode run, and why
        const why = bpf.bpf.fallbackReason;
        this.log.info(
          { build: bpf.bpf.portState === 'kernel' ? 'kfunc' : 'statemap', attach: bpf.attachMode, portState: bpf.bpf.portState, maxMacs: bpf.maxMacs, ...(why ? { why } : {}) },
          bpf.bpf.portState === 'kernel'
            ? `bpf loaded: port state read in the kernel at each frame, ${bpf.attachMode} attach`
            : `bpf loaded: port states from rtnetlink (this kernel cannot read them at each frame), ${bpf.attachMode} attach`,
        );
        return bpf;
      } catch (e) {
        this.bpfError = (e as Error).message;
        this.log.error({ err: this.bpfError }, 'bpf unavailable');
        if (c.capture === 'ebpf') return undefined; // keep serving: /readyz says why
      }
    }
    try {
      const { PcapBackend } = await import('./capture/pcap-backend.js');
      const pcap = new PcapBackend({
        maxMacs: c.bpfMaxMacs,
        tunables: { macsPerPort: c.maxMacsPerPort },
        portState: (ifindex) => this.watcher.link(ifindex)?.state ?? null,
        log: this.log,
      });
      this.log.warn('capturing with libpcap: forwarding state comes from netlink, not the kernel at each frame');
      return pcap;
    } catch (e) {
      this.bpfError = `${this.bpfError ? this.bpfError + '; ' : ''}pcap: ${(e as Error).message}`;
      this.log.error({ err: this.bpfError }, 'no capture backend');
      return undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.convergence?.clear();
    this.identity.stop();
    this.healer.stop();
    this.subscribed = false;
    this.fdbWatch?.stop();
    this.fdbWatch = undefined;
    await this.watcher.stop();
    this.bpf?.close(); // detaches every program and hook we created
    this.bpf = undefined;
    this.packet?.close();
    this.packet = undefined;
    this.rtnl?.close();
    this.rtnl = undefined;
    this.unlock?.(); // last: a successor attaches only once our filters are gone
    this.unlock = undefined;
  }

  httpDeps(): Omit<HttpDeps, 'logger'> {
    return {
      metrics: { scrape: () => this.metrics.scrape(), contentType: this.registry.contentType },
      ready: () => this.ready(),
      // the kernel's exact counts first: frames that raised no event show up without a scrape
      ports: () => (this.syncKernel(API_SYNC_MS), this.tracker.portViews().map((p) => withVm(p, this.identity))),
      port: (name) => (this.syncKernel(API_SYNC_MS), withVm(this.tracker.portView(name), this.identity)),
      events: (since, limit) => this.tracker.events(since, limit),
      migrations: (since, limit) => this.migrations(since, limit),
      announce: (req) => this.healer.manual(req),
      apiToken: this.cfg.apiToken || undefined,
    };
  }

  // ---- internals ----

  /**
   * Fold the kernel's per-{port, MAC} counts into the tracker: every scrape, and API reads at
   * most every maxAgeMs (a map scan per unauthenticated request would be a cheap DoS).
   */
  private syncKernel(maxAgeMs = 0): void {
    if (!this.bpf) return;
    const now = Date.now();
    if (maxAgeMs && now - this.lastSync < maxAgeMs) return;
    this.lastSync = now;
    try {
      const dropped = this.eventsDropped();
      const entries = this.bpf.macs();
      this.lastEntries = entries.length;
      this.tracker.syncCounters(entries); // MACs whose event was dropped are learned here
      this.droppedAtScan = dropped;
      this.bpf.syncPortCounts?.(entries);
    } catch (e) {
      this.metrics.kernelReadError();
      this.log.warn({ err: (e as Error).message }, 'read bpf map failed');
    }
  }

  /**
   * A port's kernel entries at its forwarding transition, on the way to a RARP: per-key lookups
   * of the MACs the tracker knows there. Every MAC's first frame raised an event, so the tracker
   * knows them all unless the kernel dropped events since the last full read: only then scan.
   */
  private entriesOf(ifindex: number): MacEntry[] {
    const bpf = this.bpf;
    if (!bpf) return [];
    try {
      const dropped = this.eventsDropped();
      if (dropped !== this.droppedAtScan) {
        const all = bpf.macs();
        this.droppedAtScan = dropped;
        return all.filter((e) => e.ifindex === ifindex);
      }
      const out: MacEntry[] = [];
      for (const mac of this.tracker.macsOf(ifindex)) {
        const e = bpf.mac(ifindex, macFromString(mac), false); // the tracker reads no settled count here
        if (e) out.push({ ...e, ifindex, mac });
      }
      return out;
    } catch (e) {
      this.metrics.kernelReadError();
      this.log.warn({ err: (e as Error).message }, 'read bpf map failed');
      return [];
    }
  }

  private eventsDropped(): number {
    const s = this.bpf?.stats();
    return s ? s.drop_rate_mac + s.drop_rate_all + s.drop_ringbuf : 0;
  }

  private onPort(ev: PortEvent): void {
    try {
      this.applyPort(ev);
    } catch (e) {
      // a bug here must not take the daemon (and every attachment) down with it
      this.log.error({ port: ev.name, event: ev.type, err: (e as Error).stack }, 'port event failed');
    }
  }

  private applyPort(ev: PortEvent): void {
    // kernel events that happened before this netlink fact are applied first
    this.bpf?.poll();
    const tsNs = this.tellKernel(ev);
    if (ev.type !== 'deleted') this.followUplink(ev.ifindex, ev.type === 'unwatched' ? undefined : ev.link, ev.type === 'created' && ev.initial);
    const t = this.tracker;
    switch (ev.type) {
      case 'created': {
        const l = ev.link;
        if (this.observed(l.guest)) this.attach(ev.ifindex, ev.name);
        const bridge = l.bridged ? (l.masterName ?? '') : '';
        t.portAppeared({
          ifindex: ev.ifindex,
          name: ev.name,
          kind: l.kind,
          guest: l.guest,
          bridge: ev.initial ? bridge : '',
          state: ev.initial ? ((l.state as TrackerState | null) ?? 'none') : 'none',
          carrier: l.carrier,
          tsNs,
          initial: ev.initial,
        });
        if (!ev.initial && bridge) {
          t.portJoined(ev.ifindex, bridge, tsNs);
          if (l.state) this.portState(ev.ifindex, l.state, tsNs);
        }
        break;
      }
      case 'joined':
        t.portJoined(ev.ifindex, ev.bridge, tsNs);
        if (ev.state) this.portState(ev.ifindex, ev.state, tsNs);
        break;
      case 'left':
        t.portLeft(ev.ifindex, tsNs);
        break;
      case 'state':
        this.portState(ev.ifindex, ev.state, tsNs);
        break;
      case 'carrier':
        t.portCarrier(ev.ifindex, ev.carrier, tsNs);
        break;
      case 'renamed': {
        t.portRenamed(ev.ifindex, ev.name, tsNs);
        // a rename can make a port a guest, or an uplink: the program follows
        const attached = this.bpf?.attachments().some((a) => a.ifindex === ev.ifindex) ?? false;
        if (this.observed(ev.link.guest) && !attached) this.attach(ev.ifindex, ev.name);
        else if (!this.observed(ev.link.guest) && attached) this.detach(ev.ifindex, ev.name);
        break;
      }
      case 'deleted':
        this.bpf?.forget(ev.ifindex); // the kernel removed its hooks with the device
        this.dropPort(ev.ifindex, tsNs);
        break;
      case 'unwatched':
        this.detach(ev.ifindex, ev.name);
        this.dropPort(ev.ifindex, tsNs);
        break;
    }
  }

  /** A bridge FDB entry appeared or moved: follow guest MACs between guest ports and uplinks. */
  private onFdb(n: FdbNotice): void {
    const port = this.watcher.link(n.ifindex);
    const bridge = this.watcher.bridges().find((b) => b.ifindex === n.bridgeIfindex);
    if (!port || !bridge) return; // a port or bridge outside the watch rules
    const move = this.moves.learned({ bridge: bridge.name, mac: n.mac, vlan: n.vlan, port: port.name, guest: port.guest, tsMs: this.clock.wallMs() });
    if (!move) return;
    if (move.direction === 'to_uplink') this.convergence?.left(n.mac, this.clock.monoNs());
    this.metrics.fdbMove(move.bridge, move.direction, move.flap);
    const detail = `${move.direction === 'to_uplink' ? 'left this host' : 'arrived'}: from ${move.from}${move.flap ? ' (flapping)' : ''}`;
    this.tracker.fdbMoved(n.ifindex, n.mac, this.clock.monoNs(), detail);
    const log = { mac: n.mac, bridge: move.bridge, vlan: n.vlan || undefined, from: move.from, to: move.to, direction: move.direction };
    if (move.flap) this.log.warn(log, 'guest MAC is flapping between a guest port and an uplink');
    else this.log.info(log, 'guest MAC moved');
  }

  /** The convergence programs sit on every uplink of a watched bridge while convergence is on. */
  private followUplink(ifindex: number, link: { name: string; bridged: boolean; guest: boolean } | undefined, atStart: boolean): void {
    const fabric = this.bpf?.fabric;
    if (!fabric) return;
    const want = this.convergence !== undefined && link !== undefined && isUplink(link, this.cfg.uplinks);
    // a tc-mode run that crashed (or had convergence on) left its filters: ours, by their handle
    if (atStart && !want && link?.bridged) fabric.removeStaleUplink(ifindex);
    const has = fabric.uplinkAttachments().some((u) => u.ifindex === ifindex);
    try {
      if (want && !has) fabric.attachUplink(ifindex, link.name);
      else if (!want && has) fabric.detachUplink(ifindex);
    } catch (e) {
      this.metrics.attachError(attachReason(e));
      this.log.warn({ port: link?.name ?? ifindex, err: (e as Error).message }, want ? 'uplink attach failed: no convergence through it' : 'uplink detach failed');
    }
  }

  /** An uplink program saw an awaited guest MAC go out, or the fabric deliver to it. */
  private onUplink(ev: BpfEvent): void {
    this.convergence?.uplink(ev.uplink!, ev.mac, ev.ifindex, ev.tsNs);
  }

  /** Arrivals for GET /api/v1/migrations. */
  private migrations(since: number, limit: number): MigrationPage {
    const conv = this.convergence;
    if (!conv) return { migrations: [], next: since, dropped: 0, enabled: false };
    const page = conv.page(since, limit);
    const name = (ifindex: number | undefined) => (ifindex ? (this.watcher.link(ifindex)?.name ?? `ifindex ${ifindex}`) : undefined);
    return {
      enabled: true,
      next: page.next,
      dropped: page.dropped,
      migrations: page.arrivals.map((a) => migrationView(a, this.clock, name, vmOrNull(this.identity.of(a.port, [a.mac])))),
    };
  }

  private observed(guest: boolean): boolean {
    return guest || this.cfg.observeUplinks;
  }

  private detach(ifindex: number, name: string): void {
    try {
      this.bpf?.detach(ifindex);
    } catch (e) {
      this.log.warn({ port: name, err: (e as Error).message }, 'detach failed');
      this.bpf?.forget(ifindex);
    }
  }

  /**
   * Give the statemap build (kernels before 6.3) the port's state; returns the time to date this
   * fact at. With that build a frame is "forwarding" only once the map says so, so the fact is
   * dated after the write: frames between netlink's message and the write belong to the old state.
   */
  private tellKernel(ev: PortEvent): bigint {
    const gone = ev.type === 'deleted' || ev.type === 'unwatched';
    const state = gone || !ev.link.bridged || !ev.link.state ? null : BR_STATES.indexOf(ev.link.state);
    try {
      if (this.bpf?.setPortState?.(ev.ifindex, state)) return this.clock.monoNs();
    } catch (e) {
      this.log.warn({ port: ev.name, err: (e as Error).message }, 'set port state failed');
    }
    return ev.tsNs;
  }

  private dropPort(ifindex: number, tsNs: bigint): void {
    // count what the kernel saw before forgetting the port's entries (one scan for both); a
    // failed read must still forget the port, or it would linger in the tracker and the maps
    let entries: MacEntry[] | undefined;
    try {
      entries = this.bpf?.macs();
      if (entries) this.tracker.syncCounters(entries);
    } catch (e) {
      this.metrics.kernelReadError();
      this.log.warn({ err: (e as Error).message }, 'read bpf map failed');
      entries = undefined;
    }
    try {
      this.bpf?.deletePort(ifindex, entries);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'delete port entries failed');
    }
    this.tracker.portDeleted(ifindex, tsNs);
    this.healer.forgetPort(ifindex);
  }

  private attach(ifindex: number, name: string): void {
    if (!this.bpf) return;
    try {
      const a = this.bpf.attach(ifindex, name);
      // debug: at info, a burst of 1,000 new taps would queue 1,000 log writes behind the attaches
      this.log.debug({ port: name, ifindex, mode: a.mode }, 'attached');
    } catch (e) {
      this.metrics.attachError(attachReason(e));
      this.log.warn({ port: name, err: (e as Error).message }, 'attach failed');
    }
  }

  private portState(ifindex: number, state: string, tsNs: bigint): void {
    const entries = state === 'forwarding' ? this.entriesOf(ifindex) : [];
    this.tracker.portState(ifindex, state as TrackerState, tsNs, entries);
  }

  private metricsSource(): MetricsSource {
    return {
      refresh: () => this.syncKernel(),
      ports: () => this.tracker.portList(),
      bridges: () => this.watcher.bridges(),
      macCount: () => this.tracker.macCount(),
      maps: () => (this.bpf ? [{ name: 'bw_port_macs', entries: this.lastEntries, max: this.bpf.maxMacs }] : []),
      programsAttached: () => this.bpf?.attachments().length ?? 0,
      bpfEventsDropped: () => this.eventsDropped(),
      netlink: () => ({ resyncs: this.watcher.stats.resyncs, badMessages: this.watcher.stats.badMessages + this.fdbBad }),
      bpfUnrecorded: () => {
        const s = this.bpf?.stats();
        return { bad_source: s?.bad_source ?? 0, port_full: s?.port_full ?? 0, insert_fail: s?.insert_fail ?? 0 };
      },
      ready: () => this.ready().ok,
      guests: () => guestFacts(this.identity, this.tracker),
      identityErrors: () => this.identity.errors(),
      refused: () => ({ ports: this.tracker.stats.portsRefused, macs: this.tracker.stats.macsRefused, timeline: this.tracker.eventsDropped }),
      convergence: () => ({
        counts: this.convergence?.counts() ?? new Map(),
        unconverged: (this.convergence?.unconverged() ?? []).filter((a) => a.bridge).map(({ bridge, port, mac }) => ({ bridge, port, mac })),
      }),
      announcementsNotKept: () => {
        const k = this.bpf?.frameStats?.();
        const u = this.healer.replay.notKept;
        return { ...u, ring_full: k?.drop_ringbuf ?? 0, rate_limit: k?.drop_event ?? 0, load_failed: k?.load_fail ?? 0 };
      },
    };
  }
}
