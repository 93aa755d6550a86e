// The daemon's side of re-announcing: which guests to heal, where RARP goes, and what counts as
// a conflict, answered from the watcher, the tracker and the kernel map. Owns the Announcer.
import type { Logger } from 'pino';
import { macFromString } from '../bpf/abi.js';
import type { ObserveBackend } from '../backend.js';
import type { Config } from '../config.js';
import { BridgewatchError } from '../errors.js';
import type { AnnounceRequest, AnnounceResult } from '../http/server.js';
import type { Metrics } from '../metrics/metrics.js';
import { globMatch } from '../ports/match.js';
import type { PortWatcher } from '../ports/watcher.js';
import type { PacketSocket } from '../sys/packet.js';
import type { Tracker } from '../tracker/timeline.js';
import type { Clock } from '../tracker/types.js';
import { Announcer } from './announcer.js';
import { readBridgeVlans } from './vlans.js';

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
}

export class Healer {
  readonly announcer: Announcer;
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
      vlans: readBridgeVlans,
      activeElsewhere: (mac, ifindex) => this.activeElsewhere(mac, ifindex),
      metrics: d.metrics,
      onSent: (ifindex, mac, ts, detail) => d.tracker.rarpSent(ifindex, mac, ts, detail),
      log: d.log,
    });
  }

  stop(): void {
    this.announcer.stop();
  }

  /** A guest MAC was judged late: heal it unless one of its frames got through since. */
  lateMac(ifindex: number, mac: string, forwardingNs: bigint): void {
    const info = this.d.tracker.portInfo(ifindex);
    if (!info) return;
    const e = this.d.backend()?.mac(ifindex, macFromString(mac));
    if (e && e.firstFwdNs !== 0n && e.lastNs > e.lastUnfwdNs) {
      this.d.metrics.announceSuppressed('delivered_since'); // the switches already learned it
      this.d.log.info({ port: info.name, mac, suppressed: 'delivered_since' }, 'announce suppressed');
      return;
    }
    this.announcer.announce({ ifindex, port: info.name, bridge: info.bridge, mac, forwardingNs }, 'late_attach');
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
    const here = bpf.mac(ifindex, key);
    return this.d.tracker
      .portList()
      .filter((p) => p.ifindex !== ifindex && this.d.watcher.link(p.ifindex)?.guest)
      .filter((p) => {
        const e = bpf.mac(p.ifindex, key);
        return e !== undefined && (!here || e.lastNs >= here.firstNs);
      })
      .map((p) => p.ifindex);
  }

  /** RARP targets: the bridge's ports matching --uplinks, else its non-guest ports. */
  private uplinks(bridge: string): { ifindex: number; name: string }[] {
    const globs = this.d.cfg.uplinks;
    return this.d.watcher
      .links()
      .filter((l) => l.bridged && l.masterName === bridge && (globs.length ? globs.some((g) => globMatch(g, l.name)) : !l.guest));
  }
}
