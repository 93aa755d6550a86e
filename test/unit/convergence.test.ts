// Convergence per arrival, from the tracker's facts and the uplink programs' events. The watch
// list here is a Map (the kernel's bw_await is exercised by test/e2e/convergence.test.ts).
import { describe, expect, it } from 'vitest';
import { ConvergenceTracker, type FabricWatchList } from '../../src/tracker/convergence.js';
import type { Fact } from '../../src/tracker/types.js';

const MS = 1_000_000n;
const M = '52:54:00:00:00:01';

function rig(o: { capacity?: number; timeoutMs?: number } = {}) {
  let now = 0n;
  const kernel = new Map<string, { outNs: bigint; inNs: bigint; outIfindex: number; inIfindex: number }>();
  const watch: FabricWatchList = {
    add: (mac) => {
      if (!kernel.has(mac) && kernel.size >= (o.capacity ?? 10)) return false;
      if (!kernel.has(mac)) kernel.set(mac, { outNs: 0n, inNs: 0n, outIfindex: 0, inIfindex: 0 });
      return true;
    },
    remove: (mac) => void kernel.delete(mac),
    sweep: () => {},
    get: (mac) => kernel.get(mac),
  };
  const results: string[] = [];
  const t = new ConvergenceTracker({
    clock: { monoNs: () => now, wallMs: () => 1_700_000_000_000 + Number(now / MS) },
    watch,
    sink: { converged: (b, s) => results.push(`${b} converged ${s.toFixed(3)}`), ended: (b, r) => results.push(`${b} ${r}`) },
    timeoutMs: o.timeoutMs ?? 1000,
  });
  let seq = 0;
  const fact = (f: Partial<Fact> & Pick<Fact, 'type'>, ifindex = 5, port = 'tap0') => t.fact({ seq: ++seq, tsNs: now, ifindex, port, ...f } as Fact);
  const at = (ms: number) => (now = BigInt(ms) * MS);
  return { t, kernel, results, fact, at, state: (mac = M) => t.page(0, 100).arrivals.find((a) => a.mac === mac) };
}

/** a tap created while watched, joined and forwarding at `fwdMs`, its guest's first frame at `firstMs` */
function arrive(r: ReturnType<typeof rig>, firstMs: number, fwdMs: number): void {
  r.at(0);
  r.fact({ type: 'port_created' });
  r.at(firstMs);
  r.fact({ type: 'first_frame', mac: M });
  r.at(fwdMs);
  r.fact({ type: 'joined', bridge: 'br0' });
  r.fact({ type: 'state', state: 'forwarding' });
}

describe('ConvergenceTracker', () => {
  it('converged: first frame to the fabric\'s first unicast, with every milestone', () => {
    const r = rig();
    arrive(r, 10, 1200); // late
    r.at(1250);
    r.fact({ type: 'rarp_sent', mac: M });
    r.at(1300);
    r.t.uplink('out', M, 2, r.at(1300));
    r.t.uplink('in', M, 2, r.at(1410));
    expect(r.results).toEqual(['br0 converged 1.400']);
    expect(r.state()).toMatchObject({ state: 'converged', joinedNs: 1200n * MS, forwardingNs: 1200n * MS, firstRarpNs: 1250n * MS, outUplink: 2, inUplink: 2 });
    expect(r.kernel.has(M), 'no longer watched').toBe(false);
  });

  it('a port there before bridgewatch: its guests\' first frames are no arrivals, and the kernel\'s arming is dropped', () => {
    const r = rig();
    r.kernel.set(M, { outNs: 0n, inNs: 0n, outIfindex: 0, inIfindex: 0 }); // armed by the kernel at the frame
    r.fact({ type: 'port_found', bridge: 'br0', state: 'forwarding' });
    r.fact({ type: 'first_frame', mac: M });
    expect(r.state()).toBeUndefined();
    expect(r.kernel.has(M)).toBe(false);
  });

  it('unconverged once its frames went out --converge-timeout ago; converged later when the fabric answers', () => {
    const r = rig();
    arrive(r, 0, 0);
    r.t.uplink('out', M, 2, r.at(100));
    r.at(1099);
    r.t.tick();
    expect(r.state()?.state).toBe('awaiting');
    r.at(1100);
    r.t.tick();
    expect(r.state()?.state).toBe('unconverged');
    expect(r.t.counts().get('br0')).toEqual({ awaiting: 0, unconverged: 1 });
    expect(r.t.unconverged().map((a) => a.port)).toEqual(['tap0']);
    r.t.uplink('in', M, 2, r.at(5000));
    expect(r.state()?.state).toBe('converged');
    expect(r.t.counts().get('br0')).toBeUndefined();
  });

  it('quiet: forwarding for the timeout with nothing out; a port that never forwards is given up after 10 timeouts', () => {
    const r = rig();
    arrive(r, 0, 500);
    r.at(1499);
    r.t.tick();
    expect(r.state()?.state).toBe('awaiting');
    r.at(1500);
    r.t.tick();
    expect(r.state()).toMatchObject({ state: 'quiet', detail: 'no frame out of an uplink' });

    const s = rig();
    s.at(0);
    s.fact({ type: 'port_created' });
    s.fact({ type: 'first_frame', mac: M });
    s.at(9999);
    s.t.tick();
    expect(s.state()?.state).toBe('awaiting');
    s.at(10_000);
    s.t.tick();
    expect(s.state()).toMatchObject({ state: 'quiet', detail: 'port never forwarded' });
    expect(s.results).toEqual([]); // in no bridge: no bridge to count it on
  });

  it('what the kernel saw is read at the tick when its events were lost', () => {
    const r = rig();
    arrive(r, 0, 0);
    r.kernel.set(M, { outNs: 20n * MS, inNs: 30n * MS, outIfindex: 2, inIfindex: 3 });
    r.at(40);
    r.t.tick();
    expect(r.state()).toMatchObject({ state: 'converged', outNs: 20n * MS, inNs: 30n * MS, inUplink: 3 });
    expect(r.results).toEqual(['br0 converged 0.030']);
  });

  it('gone: port deleted, or the guest left this host, before converging', () => {
    const r = rig();
    arrive(r, 0, 0);
    r.at(10);
    r.fact({ type: 'deleted' });
    expect(r.state()).toMatchObject({ state: 'gone', detail: 'port deleted' });
    const l = rig();
    arrive(l, 0, 0);
    l.t.left(M, l.at(20));
    expect(l.state()).toMatchObject({ state: 'gone', detail: 'left this host' });
    expect([...r.results, ...l.results]).toEqual(['br0 gone', 'br0 gone']);
  });

  it('a full watch list: not watched, counted; another arrival of the same MAC ends the first', () => {
    const r = rig({ capacity: 0 });
    arrive(r, 0, 0);
    expect(r.state()).toMatchObject({ state: 'not_watched' });
    expect(r.results).toEqual(['br0 not_watched']);

    const a = rig();
    arrive(a, 0, 0);
    a.fact({ type: 'port_created' }, 6, 'tap1');
    a.fact({ type: 'first_frame', mac: M }, 6, 'tap1');
    a.fact({ type: 'first_frame', mac: M }, 6, 'tap1'); // LRU-recreated kernel entry: nothing new
    const all = a.t.page(0, 10).arrivals;
    expect(all.map((x) => [x.port, x.state])).toEqual([
      ['tap0', 'gone'],
      ['tap1', 'awaiting'],
    ]);
    expect(all[0].detail).toBe('arrived again on tap1');
  });

  it('a finished arrival is not started again by a kernel entry recreated after LRU eviction', () => {
    const r = rig();
    arrive(r, 0, 0);
    r.t.uplink('in', M, 2, r.at(10));
    r.kernel.set(M, { outNs: 0n, inNs: 0n, outIfindex: 0, inIfindex: 0 }); // re-armed at the recreated entry's frame
    r.fact({ type: 'first_frame', mac: M });
    expect(r.t.page(0, 10).arrivals.map((a) => a.state)).toEqual(['converged']);
    expect(r.kernel.has(M)).toBe(false);
  });

  it('pages by cursor; a rename follows the port', () => {
    const r = rig();
    r.fact({ type: 'port_created' });
    for (let i = 0; i < 5; i++) r.fact({ type: 'first_frame', mac: `52:54:00:00:00:1${i}` });
    r.fact({ type: 'renamed' }, 5, 'vnet9');
    const p1 = r.t.page(0, 2);
    const p2 = r.t.page(p1.next, 10);
    expect([...p1.arrivals, ...p2.arrivals].map((a) => a.mac)).toEqual(['10', '11', '12', '13', '14'].map((x) => `52:54:00:00:00:${x}`));
    expect(p2.arrivals.every((a) => a.port === 'vnet9')).toBe(true);
    expect(r.t.page(p2.next, 10).arrivals).toEqual([]);
  });
});
