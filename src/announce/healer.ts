// The daemon's side of re-announcing: which guests to heal, where RARP goes, and what counts as
// a conflict, answered from the watcher, the tracker and the kernel map. Owns the Announcer.
import type { Logger } from 'pino';
import { macFromString, type BpfFrame } from '../bpf/abi.js';
import type { ObserveBackend } from '../backend.js';
import type { Config } from '../config.js';
import { BridgewatchError } from '../errors.js';
import type { AnnounceRequest, AnnounceResult } from './requests.js';
import type { Metrics } from '../metrics/metrics.js';
import { isUplink } from '../ports/match.js';
import type { PortWatcher } from '../ports/watcher.js';
import { BridgeFdb } from '../ports/fdb.js';
import type { RtnlRequester } from '../sys/rtnl-request.js';
import type { PacketSocket } from '../sys/packet.js';
import type { Tracker } from '../tracker/timeline.js';
import type { Clock } from '../tracker/types.js';
import { Announcer, type AnnounceTarget } from './announcer.js';
import { readBridgeVlans, type PortVlans } from './vlans.js';
import { ReplayStore } from './replay.js';

export interface HealerDeps {
  cfg: Config;
  clock: Clock;
  log: Logger;
  metrics: Metrics;
  tracker: Tracker;
  watcher: PortWatcher;
  /** the capture backend and packet socket, once started (undefined before and after) */
  backend(): ObserveBackend | undefined;
  packet(): PacketSocket | undefined;
  /** rtnetlink requests in the daemon's namespace (FDB, VLANs), once started */
  rtnl(): RtnlRequester | undefined;
}

export class Healer {
  readonly announcer: Announcer;
  /** the guests' own gARP/NA frames lost on their ports, replayed with the heal */
  readonly replay = new ReplayStore();
  private readonly d: HealerDeps;

  constructor(d: HealerDeps) {
    this.d = d;
    const c = d.cfg;
    this.announcer = new Announcer({
      mode: c.announce,
      params: { initial: c.announceInitial, max: c.announceMax, rounds: c.announceRounds, step: c.announceStep },
      holdoffMs: c.announceHoldoffMs,
      ratePerSec: c.announceRatePerSec,
      clock: d.clock,
      send: (ifindex, frame) => {
        const packet = d.packet();
        if (!packet) throw new BridgewatchError('ESTATE', 'send rarp: packet socket closed');
        packet.send(ifindex, frame);
      },
      uplinks: (bridge) => this.uplinks(bridge),
      vlanFiltering: (bridge) => d.watcher.bridges().find((b) => b.name === bridge)?.vlanFiltering ?? false,
      vlans: () => this.vlans(),
      activeElsewhere: (mac, ifindex) => this.activeElsewhere(mac, ifindex),
      metrics: d.metrics,
      onSent: (ifindex, mac, ts, detail) => d.tracker.rarpSent(ifindex, mac, ts, detail),
      onReplayed: (ifindex, mac, ts, kind, detail) => d.tracker.announcementReplayed(ifindex, mac, ts, kind, detail),
      beforeFirstRound: (t, vid) => this.repairFdb(t, vid, false),
      log: d.log,
    });
  }

  stop(): void {
    this.announcer.stop();
  }

  /**
   * A gARP/NA the kernel saw on a port that could not forward: kept (bounded, checked) for the
   * heal. Only guest ports': an uplink's frames are other hosts'.
   */
  keepFrame(f: BpfFrame): void {
    if (!this.d.watcher.link(f.ifindex)?.guest) return;
    const r = this.replay.keep(f);
    if (r !== 'kept' && r !== 'duplicate')
      this.d.log.info({ port: this.d.watcher.link(f.ifindex)?.name, mac: f.mac, kind: f.kind, refused: r }, 'announcement not kept for replay');
  }

  /** The port is gone: forget its kept frames. */
  forgetPort(ifindex: number): void {
    this.replay.forgetPort(ifindex);
  }

  /** A guest MAC was judged late: heal it unless one of its frames got through since. */
  lateMac(ifindex: number, mac: string, forwardingNs: bigint): void {
    // taken whatever happens: kept frames serve this heal or none (a later one would be stale);
    // drained first, in case this verdict came from an event read before its frame
    this.d.backend()?.pollFrames?.();
    const replay = this.replay.take(ifindex, mac);
    const info = this.d.tracker.portInfo(ifindex);
    if (!info) return;
    const e = this.d.backend()?.mac(ifindex, macFromString(mac), false); // timestamps only
    if (e && e.firstFwdNs !== 0n && e.lastNs > e.lastUnfwdNs) {
      this.d.metrics.announceSuppressed('delivered_since'); // the switches already learned it
      this.d.log.info({ port: info.name, mac, suppressed: 'delivered_since' }, 'announce suppressed');
      return;
    }
    const target = { ifindex, port: info.name, bridge: info.bridge, mac, forwardingNs, replay };
    const d = this.announcer.announce(target, 'late_attach');
    if (!d.ok && d.reason === 'dry_run') void this.dryRunFdb(target);
  }

  /**
   * The local half of the heal. While the guest ran elsewhere its broadcasts taught this bridge
   * that the MAC lives behind the uplink; until the guest itself transmits here, the bridge drops
   * what the fabric now delivers for it. A RARP out of the uplink fixes the switches, not this.
   * Only a learned entry moves: static, permanent, sticky and externally learned (EVPN) entries
   * are someone's decision. Never throws: outcomes are logged and counted.
   */
  private async repairFdb(t: AnnounceTarget, vid: number | undefined, dryRun: boolean): Promise<void> {
    const nl = this.d.rtnl();
    const fdb = nl && new BridgeFdb(nl);
    const bridge = this.d.watcher.bridges().find((b) => b.name === t.bridge);
    if (!fdb || !bridge) return;
    const log = { port: t.port, bridge: t.bridge, mac: t.mac, vlan: vid };
    try {
      const e = await fdb.get(bridge.ifindex, t.mac, vid ?? 0);
      if (!e || e.ifindex === t.ifindex) {
        this.d.log.debug({ ...log, fdb: e ? 'on the guest port' : 'none' }, 'fdb repair not needed');
        return;
      }
      const from = this.d.watcher.link(e.ifindex)?.name ?? `ifindex ${e.ifindex}`;
      if (e.kind !== 'dynamic') {
        this.d.metrics.fdbRepairSkipped(e.kind);
        this.d.log.info({ ...log, on: from, kind: e.kind }, 'fdb entry left alone');
        return;
      }
      if (dryRun) {
        this.d.metrics.fdbRepairSkipped('dry_run');
        this.d.log.info({ ...log, from, to: t.port }, 'dry-run: would move fdb entry to the guest port');
        return;
      }
      await fdb.moveTo(t.ifindex, t.mac, vid ?? 0);
      this.d.metrics.fdbRepaired(t.bridge);
      this.d.tracker.fdbRepaired(t.ifindex, t.mac, this.d.clock.monoNs(), `from ${from}`);
      this.d.log.info({ ...log, from, to: t.port }, 'fdb entry moved to the guest port');
    } catch (e) {
      this.d.metrics.fdbRepairSkipped('error');
      this.d.log.warn({ ...log, err: (e as Error).message }, 'fdb repair failed');
    }
  }

  /** dry-run: say what the repair would do (the guest's VLAN read as the announcer would). */
  private async dryRunFdb(t: AnnounceTarget): Promise<void> {
    let vid: number | undefined;
    if (this.d.watcher.bridges().find((b) => b.name === t.bridge)?.vlanFiltering) {
      vid = await this.vlans()
        .then((v) => v.get(t.port)?.pvid)
        .catch(() => undefined);
      if (vid === undefined) return; // no round would be sent either
    }
    await this.repairFdb(t, vid, true);
  }

  private vlans(): Promise<Map<string, PortVlans>> {
    const nl = this.d.rtnl();
    return nl ? readBridgeVlans(nl) : Promise.reject(new BridgewatchError('ESTATE', 'read bridge vlans: rtnetlink closed'));
  }

  /** `POST /api/v1/announce`: only MACs seen on that port. */
  manual(req: AnnounceRequest): AnnounceResult {
    const found = this.d.tracker.portView(req.port);
    if (!found) return { ok: false, status: 404, error: `port ${req.port} is not watched` };
    const seen = found.macs.map((m) => m.mac);
    const macs = req.mac ? [req.mac.toLowerCase()] : seen;
    if (!macs.length) return { ok: false, status: 409, error: `no guest MAC seen on ${req.port} yet` };
    const unseen = macs.filter((m) => !seen.includes(m));
    if (unseen.length) return { ok: false, status: 409, error: `MAC ${unseen.join(', ')} was never seen on ${req.port}; refusing to announce it` };
    if (!found.bridge) return { ok: false, status: 409, error: `port ${req.port} is in no bridge` };
    for (const mac of macs) {
      const d = this.announcer.announce({ ifindex: found.ifindex, port: found.name, bridge: found.bridge, mac }, 'manual');
      if (!d.ok && d.reason !== 'dry_run') return { ok: false, status: 409, error: `announce ${mac} on ${req.port}: suppressed (${d.reason})` };
    }
    return { ok: true, port: found.name, macs, mode: this.announcer.mode, rounds: this.d.cfg.announceRounds };
  }

  /**
   * Other guest ports that carried this MAC after it appeared on `ifindex` (per-key lookups:
   * this runs before the first RARP, so no full map scan).
   */
  private activeElsewhere(mac: string, ifindex: number): number[] {
    const bpf = this.d.backend();
    if (!bpf) return [];
    const key = macFromString(mac);
    const here = bpf.mac(ifindex, key, false); // timestamps only
    return this.d.tracker
      .portList()
      .filter((p) => p.ifindex !== ifindex && this.d.watcher.link(p.ifindex)?.guest)
      .filter((p) => {
        const e = bpf.mac(p.ifindex, key, false);
        return e !== undefined && (!here || e.lastNs >= here.firstNs);
      })
      .map((p) => p.ifindex);
  }

  /** RARP targets: the bridge's ports matching --uplinks, else its non-guest ports. */
  private uplinks(bridge: string): { ifindex: number; name: string }[] {
    return this.d.watcher.links().filter((l) => l.masterName === bridge && isUplink(l, this.d.cfg.uplinks));
  }
}
