// The source side of a migration, from the bridge's own FDB notifications: a guest MAC that
// lived behind a local guest port and is now learned on an uplink has left this host (its
// destination's announcements reached the fabric); one that comes back from the uplink to a
// guest port arrived here. A MAC that moves back and forth is a flapping network (an early or
// duplicate announcement). Pure: FDB facts and a clock in, moves and flaps out.
//
// Only MACs once seen behind a local guest port are remembered (bounded): other hosts' MACs
// on the uplinks are never recorded.

export type MoveDirection = 'to_uplink' | 'to_guest';
export const MOVE_DIRECTIONS: readonly MoveDirection[] = ['to_uplink', 'to_guest'];

export interface FdbFact {
  bridge: string;
  mac: string;
  vlan: number;
  /** the port the bridge now delivers the MAC to */
  port: string;
  /** a VM port (tap/vif/vnet...) rather than an uplink */
  guest: boolean;
  tsMs: number;
}

export interface Move {
  bridge: string;
  mac: string;
  vlan: number;
  from: string;
  to: string;
  direction: MoveDirection;
  /** this move made the MAC flap: more than `flapMoves` moves within `flapWindowMs` */
  flap: boolean;
}

export interface MoveRules {
  /** a MAC flaps when it moves more than this many times ... */
  flapMoves: number;
  /** ... within this window */
  flapWindowMs: number;
  /** MACs remembered at most (the oldest is forgotten first) */
  maxMacs: number;
}

interface Where {
  port: string;
  guest: boolean;
  /** move times within the flap window, oldest first */
  moves: number[];
  /** a flap was counted for the current window: count the next only after it has passed */
  flapUntil: number;
}

export class MoveTracker {
  private readonly macs = new Map<string, Where>(); // `${bridge} ${vlan} ${mac}`, insertion = age
  forgotten = 0;

  constructor(private readonly rules: MoveRules) {}

  get size(): number {
    return this.macs.size;
  }

  /** A new or moved FDB entry; returns the move it completes, if any. */
  learned(f: FdbFact): Move | null {
    const key = `${f.bridge} ${f.vlan} ${f.mac}`;
    const w = this.macs.get(key);
    if (!w) {
      if (f.guest) this.remember(key, { port: f.port, guest: true, moves: [], flapUntil: 0 });
      return null; // a MAC first seen on an uplink is another host's: not ours to follow
    }
    if (w.port === f.port) return null;
    const from = w.port;
    const crossed = w.guest !== f.guest;
    w.port = f.port;
    w.guest = f.guest;
    // refresh its age: a MAC that moves is one we are following
    this.macs.delete(key);
    this.macs.set(key, w);
    if (!crossed) return null; // guest port to guest port (a local move), or uplink to uplink
    w.moves = w.moves.filter((t) => f.tsMs - t < this.rules.flapWindowMs);
    w.moves.push(f.tsMs);
    let flap = false;
    if (w.moves.length > this.rules.flapMoves && f.tsMs >= w.flapUntil) {
      flap = true;
      w.flapUntil = f.tsMs + this.rules.flapWindowMs;
    }
    return { bridge: f.bridge, mac: f.mac, vlan: f.vlan, from, to: f.port, direction: f.guest ? 'to_guest' : 'to_uplink', flap };
  }

  /** The bridge is gone: forget its MACs. */
  bridgeGone(bridge: string): void {
    for (const k of this.macs.keys()) if (k.startsWith(`${bridge} `)) this.macs.delete(k);
  }

  private remember(key: string, w: Where): void {
    while (this.macs.size >= this.rules.maxMacs) {
      const oldest = this.macs.keys().next().value as string;
      this.macs.delete(oldest);
      this.forgotten++;
    }
    this.macs.set(key, w);
  }
}
