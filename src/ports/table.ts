// The link table: applies decoded link messages in arrival order and says what changed. Pure
// (no socket, no clock): the caller passes the receipt time and where the message came from.
import type { BridgeAttrs, PortState } from './attrs.js';
import { AF_BRIDGE, AF_UNSPEC, type LinkMsg } from './decode.js';
import type { Matcher } from './match.js';
import type { BridgeDeletedEvent, BridgeEvent, BridgeInfo, PortEvent, WatchedLink } from './types.js';

export type TableEvent =
  | { name: 'port'; event: PortEvent }
  | { name: 'bridge'; event: BridgeEvent }
  | { name: 'bridgeDeleted'; event: BridgeDeletedEvent };

export interface ApplyContext {
  tsNs: bigint;
  /** an entry of the dump made by start() */
  initial: boolean;
  /** an entry of a dump made to recover from an overrun */
  resync: boolean;
}

interface Rec {
  ifindex: number;
  name: string;
  kind: string;
  mac: string | null;
  master: number;
  up: boolean;
  operUp: boolean;
  carrier: boolean;
  /** last bridge port state the kernel sent; meaningful only while inBridge */
  state: PortState | null;
  /** set iff the device is a bridge */
  br: BridgeAttrs | null;
  /** the bridge this port is in, as it was named when last evaluated */
  inBridge: { index: number; name: string } | null;
  watched: boolean;
  guest: boolean;
  /** sync generation that last saw it; older ones are gone after a resync dump */
  epoch: number;
}

type Facts = Pick<Rec, 'watched' | 'name' | 'inBridge' | 'state' | 'up' | 'operUp' | 'carrier'>;

export class LinkTable {
  private readonly recs = new Map<number, Rec>();
  epoch = 0;

  constructor(private readonly match: Matcher) {}

  apply(msg: LinkMsg, ctx: ApplyContext): TableEvent[] {
    if (msg.family === AF_BRIDGE) return msg.op === 'new' ? this.portState(msg, ctx) : [];
    if (msg.family !== AF_UNSPEC) return [];
    if (msg.op === 'del') {
      const rec = this.recs.get(msg.ifindex);
      return rec ? this.remove(rec, ctx) : [];
    }
    const rec = this.recs.get(msg.ifindex);
    if ((msg.info?.kind ?? rec?.kind) === 'bridge') return this.bridge(msg, rec, ctx);
    return this.port(msg, rec, ctx);
  }

  /** After a resync dump of all links: whatever it did not list was deleted meanwhile. */
  reconcile(ctx: ApplyContext): TableEvent[] {
    const gone = [...this.recs.values()].filter((r) => r.epoch < this.epoch);
    // ports first, so a bridge's ports are gone before the bridge
    gone.sort((a, b) => Number(a.br !== null) - Number(b.br !== null));
    return gone.flatMap((r) => this.remove(r, ctx));
  }

  clear(): void {
    this.recs.clear();
  }

  links(): WatchedLink[] {
    return [...this.recs.values()].filter((r) => r.watched && !r.br).map((r) => this.view(r));
  }

  link(ifindex: number): WatchedLink | undefined {
    const r = this.recs.get(ifindex);
    return r && r.watched && !r.br ? this.view(r) : undefined;
  }

  bridges(): BridgeInfo[] {
    return [...this.recs.values()].filter((r) => r.watched && r.br).map(bridgeInfo);
  }

  private view(r: Rec): WatchedLink {
    const m = r.master ? this.recs.get(r.master) : undefined;
    return {
      ifindex: r.ifindex,
      name: r.name,
      kind: r.kind,
      mac: r.mac,
      master: r.master || null,
      masterName: m?.name ?? null,
      bridged: r.inBridge !== null,
      state: r.inBridge ? r.state : null,
      up: r.up,
      carrier: r.carrier,
      operUp: r.operUp,
      guest: r.guest,
    };
  }

  private port(msg: LinkMsg, old: Rec | undefined, ctx: ApplyContext): TableEvent[] {
    const rec: Rec = old ?? {
      ifindex: msg.ifindex, name: '', kind: '', mac: null, master: 0, up: false, operUp: false,
      carrier: false, state: null, br: null, inBridge: null, watched: false, guest: false, epoch: 0,
    };
    const before = facts(rec);
    const oldMaster = rec.master;
    rec.name = msg.name ?? rec.name;
    rec.kind = msg.info?.kind ?? '';
    rec.mac = msg.mac;
    rec.master = msg.master;
    rec.up = msg.up;
    rec.operUp = msg.operUp;
    if (msg.carrier !== null) rec.carrier = msg.carrier;
    // slave data carries the state; without it the state stands only while the master does
    if (msg.info?.portState) rec.state = msg.info.portState;
    else if (rec.master !== oldMaster) rec.state = null;
    rec.epoch = this.epoch;
    this.recs.set(rec.ifindex, rec);
    return this.evaluate(rec, before, ctx);
  }

  /** AF_BRIDGE RTM_NEWLINK: the bridge's view of one port, sent on every port state change. */
  private portState(msg: LinkMsg, ctx: ApplyContext): TableEvent[] {
    const rec = this.recs.get(msg.ifindex);
    // unknown, a bridge's own entry, or older than the master we hold: nothing to learn
    if (!rec || rec.br || msg.master !== rec.master || !msg.protinfoState) return [];
    const before = facts(rec);
    rec.state = msg.protinfoState;
    return this.evaluate(rec, before, ctx);
  }

  private bridge(msg: LinkMsg, old: Rec | undefined, ctx: ApplyContext): TableEvent[] {
    const prev = old?.watched && old.br ? bridgeInfo(old) : null;
    const rec: Rec = old ?? {
      ifindex: msg.ifindex, name: '', kind: 'bridge', mac: null, master: 0, up: false, operUp: false,
      carrier: false, state: null, br: null, inBridge: null, watched: false, guest: false, epoch: 0,
    };
    const oldName = rec.name;
    rec.name = msg.name ?? rec.name;
    rec.kind = 'bridge';
    rec.mac = msg.mac;
    rec.up = msg.up;
    rec.operUp = msg.operUp;
    if (msg.carrier !== null) rec.carrier = msg.carrier;
    rec.br = msg.info?.bridge ?? rec.br ?? { stpState: 0, forwardDelayCs: 0, vlanFiltering: false };
    rec.epoch = this.epoch;
    this.recs.set(rec.ifindex, rec);
    const out: TableEvent[] = [];
    rec.watched = this.match.bridge(rec.name);
    const info = bridgeInfo(rec);
    if (rec.watched && (!prev || !sameBridge(prev, info))) {
      out.push({ name: 'bridge', event: { tsNs: ctx.tsNs, initial: ctx.initial, resync: ctx.resync, bridge: info, prev } });
    } else if (!rec.watched && prev) {
      out.push({ name: 'bridgeDeleted', event: { tsNs: ctx.tsNs, ifindex: rec.ifindex, name: rec.name, resync: ctx.resync, reason: 'unwatched' } });
    }
    // a new or renamed bridge changes what its ports match
    if (!old || oldName !== rec.name) out.push(...this.reevaluatePorts(rec.ifindex, ctx));
    return out;
  }

  private remove(rec: Rec, ctx: ApplyContext): TableEvent[] {
    this.recs.delete(rec.ifindex);
    if (rec.br) {
      const out: TableEvent[] = rec.watched
        ? [{ name: 'bridgeDeleted', event: { tsNs: ctx.tsNs, ifindex: rec.ifindex, name: rec.name, resync: ctx.resync, reason: 'deleted' } }]
        : [];
      return [...this.reevaluatePorts(rec.ifindex, ctx), ...out];
    }
    if (!rec.watched) return [];
    return [{ name: 'port', event: { ...this.base(rec, ctx), type: 'deleted' } }];
  }

  private reevaluatePorts(bridgeIndex: number, ctx: ApplyContext): TableEvent[] {
    const ports = [...this.recs.values()].filter((r) => !r.br && (r.master === bridgeIndex || r.inBridge?.index === bridgeIndex));
    return ports.flatMap((r) => this.evaluate(r, facts(r), ctx));
  }

  /** Recompute what depends on other links and the rules, then report the differences. */
  private evaluate(rec: Rec, before: Facts, ctx: ApplyContext): TableEvent[] {
    const m = rec.master ? this.recs.get(rec.master) : undefined;
    rec.inBridge = m?.br ? { index: m.ifindex, name: m.name } : null;
    rec.watched = this.match.port({ name: rec.name, kind: rec.kind, bridge: rec.inBridge?.name ?? null, l2: rec.mac !== null });
    rec.guest = this.match.guest({ name: rec.name, kind: rec.kind });
    if (!rec.watched && !before.watched) return []; // most links on a host: nothing to build
    const out: PortEvent[] = [];
    const base = this.base(rec, ctx);
    if (rec.watched && !before.watched) {
      out.push({ ...base, type: 'created', initial: ctx.initial });
      return wrap(out);
    }
    if (!before.watched) return [];
    if (before.name !== rec.name) out.push({ ...base, type: 'renamed', oldName: before.name });
    const bridgeChanged = before.inBridge?.index !== rec.inBridge?.index;
    if (bridgeChanged && before.inBridge) out.push({ ...base, type: 'left', bridge: before.inBridge.name, bridgeIndex: before.inBridge.index });
    if (!rec.watched) {
      out.push({ ...base, type: 'unwatched' });
      return wrap(out);
    }
    if (bridgeChanged && rec.inBridge) {
      out.push({ ...base, type: 'joined', bridge: rec.inBridge.name, bridgeIndex: rec.inBridge.index, state: rec.state });
    } else if (rec.inBridge && rec.state && rec.state !== before.state) {
      out.push({ ...base, type: 'state', bridge: rec.inBridge.name, state: rec.state, prev: before.state });
    }
    if (before.carrier !== rec.carrier || before.operUp !== rec.operUp || before.up !== rec.up) {
      out.push({ ...base, type: 'carrier', carrier: rec.carrier, operUp: rec.operUp, up: rec.up });
    }
    return wrap(out);
  }

  private base(rec: Rec, ctx: ApplyContext) {
    return { tsNs: ctx.tsNs, ifindex: rec.ifindex, name: rec.name, link: this.view(rec), resync: ctx.resync };
  }
}

function facts(r: Rec): Facts {
  const state = r.inBridge ? r.state : null;
  return { watched: r.watched, name: r.name, inBridge: r.inBridge, state, up: r.up, operUp: r.operUp, carrier: r.carrier };
}

function wrap(events: PortEvent[]): TableEvent[] {
  return events.map((event) => ({ name: 'port', event }));
}

function bridgeInfo(r: Rec): BridgeInfo {
  const br = r.br ?? { stpState: 0, forwardDelayCs: 0, vlanFiltering: false };
  return {
    ifindex: r.ifindex,
    name: r.name,
    stpEnabled: br.stpState !== 0,
    forwardDelaySec: br.forwardDelayCs / 100,
    vlanFiltering: br.vlanFiltering,
  };
}

function sameBridge(a: BridgeInfo, b: BridgeInfo): boolean {
  return a.name === b.name && a.stpEnabled === b.stpEnabled && a.forwardDelaySec === b.forwardDelaySec && a.vlanFiltering === b.vlanFiltering;
}
