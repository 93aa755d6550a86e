// The source side from FDB facts: moves between guest ports and uplinks, flaps, bounds.
import { describe, expect, it } from 'vitest';
import { MoveTracker, type FdbFact } from '../../src/tracker/moves.js';

const M = '52:54:00:00:00:01';
const at = (port: string, guest: boolean, tsMs: number, mac = M): FdbFact => ({ bridge: 'br0', mac, vlan: 0, port, guest, tsMs });
const rules = { flapMoves: 3, flapWindowMs: 60_000, maxMacs: 100 };

describe('MoveTracker', () => {
  it('a guest that leaves: one move to the uplink, from its tap (even after the tap is gone)', () => {
    const t = new MoveTracker(rules);
    expect(t.learned(at('tap0', true, 0))).toBeNull();
    expect(t.learned(at('eth0', false, 5000))).toEqual({ bridge: 'br0', mac: M, vlan: 0, from: 'tap0', to: 'eth0', direction: 'to_uplink', flap: false });
    expect(t.learned(at('eth0', false, 6000)), 'no move: same port').toBeNull();
  });

  it('another host\'s MAC, first seen on an uplink, is never remembered', () => {
    const t = new MoveTracker(rules);
    expect(t.learned(at('eth0', false, 0))).toBeNull();
    expect(t.size).toBe(0);
    expect(t.learned(at('tap0', true, 10))).toBeNull(); // first seen on a guest port now: remembered from here
    expect(t.size).toBe(1);
  });

  it('moves between two guest ports or two uplinks are not crossings', () => {
    const t = new MoveTracker(rules);
    t.learned(at('tap0', true, 0));
    expect(t.learned(at('tap1', true, 1))).toBeNull();
    expect(t.learned(at('eth0', false, 2))?.from).toBe('tap1');
    expect(t.learned(at('bond0', false, 3))).toBeNull();
  });

  it('a flap: more than flapMoves crossings within the window, counted once per window', () => {
    const t = new MoveTracker(rules);
    t.learned(at('tap0', true, 0));
    const ports = ['eth0', 'tap0', 'eth0', 'tap0', 'eth0', 'tap0'];
    const flaps = ports.map((p, i) => t.learned(at(p, p.startsWith('tap'), 1000 * (i + 1)))!.flap);
    expect(flaps).toEqual([false, false, false, true, false, false]);
    // after the window, crossings spread out are no flap
    expect(t.learned(at('eth0', false, 200_000))!.flap).toBe(false);
    expect(t.learned(at('tap0', true, 300_000))!.flap).toBe(false);
  });

  it('stays bounded: the oldest MAC is forgotten first', () => {
    const t = new MoveTracker({ ...rules, maxMacs: 2 });
    for (const mac of ['52:54:00:00:00:0a', '52:54:00:00:00:0b', '52:54:00:00:00:0c']) t.learned(at('tap0', true, 0, mac));
    expect(t.size).toBe(2);
    expect(t.forgotten).toBe(1);
    expect(t.learned(at('eth0', false, 1, '52:54:00:00:00:0a'))).toBeNull();
    expect(t.learned(at('eth0', false, 1, '52:54:00:00:00:0c'))?.direction).toBe('to_uplink');
  });

  it('forgets a deleted bridge\'s MACs', () => {
    const t = new MoveTracker(rules);
    t.learned(at('tap0', true, 0));
    t.bridgeGone('br0');
    expect(t.learned(at('eth0', false, 1))).toBeNull();
  });
});
