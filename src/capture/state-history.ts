// What user space knew about one port's bridge state, and when: a few runs of equal
// observations. A captured frame is judged by the observations around its kernel timestamp, not
// by when it is read: the daemon reads captures right after the watcher applied a netlink fact,
// so "the state now" would call frames sent before a late join forwarded. Between two runs the
// change happened somewhere in the gap, and the frame counts as not forwarded: for this product a
// needless re-announcement is cheap, a missed late join is not.
import { BR_STATES, STATE_NOT_BRIDGE_PORT, STATE_UNKNOWN } from '../bpf/abi.js';

const FORWARDING = BR_STATES.indexOf('forwarding');
const MAX_RUNS = 8;

interface Run {
  state: number;
  fromNs: bigint;
  toNs: bigint;
}

/** BR_STATE_* for a bridge port state name, STATE_NOT_BRIDGE_PORT for null. */
export function stateCode(name: string | null | undefined): number {
  if (name === null || name === undefined) return STATE_NOT_BRIDGE_PORT;
  const i = (BR_STATES as readonly string[]).indexOf(name);
  return i < 0 ? STATE_UNKNOWN : i;
}

export class StateHistory {
  private readonly runs: Run[] = [];

  observe(state: number, atNs: bigint): void {
    const last = this.runs[this.runs.length - 1];
    if (last && last.state === state) {
      if (atNs > last.toNs) last.toNs = atNs;
      return;
    }
    this.runs.push({ state, fromNs: atNs, toNs: atNs });
    if (this.runs.length > MAX_RUNS) this.runs.shift(); // frames that old were read long ago
  }

  /** The state a frame that arrived at tsNs met, as far as user space can tell. */
  at(tsNs: bigint): number {
    const r = this.runs;
    for (let i = r.length - 1; i >= 0; i--) {
      if (tsNs < r[i].fromNs) continue;
      // inside the run, or newer than every observation: no change seen since
      if (tsNs <= r[i].toNs || i === r.length - 1) return r[i].state;
      return r[i].state === FORWARDING ? r[i + 1].state : r[i].state;
    }
    return r.length ? r[0].state : STATE_NOT_BRIDGE_PORT;
  }
}
