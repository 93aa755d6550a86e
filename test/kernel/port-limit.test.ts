// A MAC-flooding guest cannot push other ports' entries out of the shared LRU: the kernel
// records at most macsPerPort MACs per port, counts the rest, and follows evictions.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ipv4Frame, mac } from '../helpers/frames.js';
import { closeAllBpf, loadBpf, requires } from '../helpers/kernel.js';
import { cleanupAll, TestNetns } from '../helpers/netns.js';

const macN = (i: number) => mac(`52:54:00:00:01:${i.toString(16).padStart(2, '0')}`);
let ns: TestNetns;
let other: number;

beforeAll(() => {
  ns = new TestNetns('limit');
  ns.ip('link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb');
  other = ns.ifindex('va');
});
afterEach(() => closeAllBpf());
afterAll(() => cleanupAll());

describe('per-port MAC limit in the kernel', () => {
  it('records the first N MACs of a port, counts the rest as port_full, other ports unaffected', (ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns, { tunables: { macsPerPort: 3 } });
    ns.run(() => {
      for (let i = 0; i < 10; i++) bpf.testRun(ipv4Frame(macN(i)), { ifindex: 1 });
      for (let i = 0; i < 3; i++) bpf.testRun(ipv4Frame(macN(i)), { ifindex: 1 }); // known MACs still count
      bpf.testRun(ipv4Frame(macN(50)), { ifindex: other });
    });
    const lo = bpf.macs().filter((e) => e.ifindex === 1);
    expect(lo.map((e) => e.mac).sort()).toEqual(['52:54:00:00:01:00', '52:54:00:00:01:01', '52:54:00:00:01:02']);
    expect(lo.map((e) => e.frames)).toEqual([2, 2, 2]);
    expect(bpf.macs().filter((e) => e.ifindex === other).map((e) => e.mac)).toEqual(['52:54:00:00:01:32']);
    expect(bpf.stats()).toMatchObject({ frames: 14, new_macs: 4, port_full: 7 });
  });

  it('makes room again once user space resyncs the count after entries went away', (ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns, { tunables: { macsPerPort: 2 } });
    const send = (i: number) => ns.run(() => bpf.testRun(ipv4Frame(macN(i)), { ifindex: 1 }));
    send(1);
    send(2);
    send(3);
    expect(bpf.stats().port_full).toBe(1);
    // an entry leaves behind the count's back (as an LRU eviction would)
    expect(bpf.deletePort(1)).toBe(2); // also clears the port's count
    send(3);
    send(4);
    send(5);
    expect(bpf.stats().port_full).toBe(2);
    // resync as after a scrape that no longer sees one MAC (evicted): the count follows the map
    bpf.syncPortCounts(bpf.macs().filter((e) => e.mac !== '52:54:00:00:01:03'));
    send(6);
    expect(bpf.macs().map((e) => e.mac)).toContain('52:54:00:00:01:06');
    expect(bpf.stats().port_full).toBe(2);
  });

  it('has no limit by default', (ctx) => {
    requires(ctx, 'bpf');
    const bpf = loadBpf(ns);
    ns.run(() => {
      for (let i = 0; i < 100; i++) bpf.testRun(ipv4Frame(macN(i)), { ifindex: 1 });
    });
    expect(bpf.macs()).toHaveLength(100);
    expect(bpf.stats().port_full).toBe(0);
  });
});
