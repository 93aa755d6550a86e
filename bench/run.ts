// Benchmarks, each printed as a ratio measured side by side in this run (never a timed test).
//   1. kernel cost per frame (BPF_PROG_TEST_RUN): our program vs a no-op TC program
//   2. tap -> bridge path: frames/s with our program attached vs nothing attached
//   3. user space: tracker + metrics cost per scrape with many ports vs few
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { BpfCollection } from '../src/bpf/loader.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { rarpFrame } from '../src/announce/frames.js';
import { addNetns, delNetns, inNetns, ip } from '../src/sys/netns.js';
import { Tap } from '../src/sys/tun.js';
import { Tracker } from '../src/tracker/timeline.js';
import { Metrics } from '../src/metrics/metrics.js';
import type { MacEntry } from '../src/bpf/abi.js';
import { libbpf, testRun } from '../src/bpf/libbpf.js';

const state = mkdtempSync(join(tmpdir(), 'bw-bench-'));
const fmt = (x: number) => x.toFixed(1);

function ipv4Frame(mac: string): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  Buffer.from(mac.split(':').map((x) => parseInt(x, 16))).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  return f;
}

function perRun(bpf: BpfCollection, frame: Buffer, repeat: number): number {
  let best = Infinity;
  for (let i = 0; i < 5; i++) best = Math.min(best, bpf.testRun(frame, { repeat }).durationNs);
  return best;
}

function kernelCost(): void {
  const out = join(state, 'noop.bpf.o');
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`, '-c', join(PACKAGE_ROOT, 'bench/noop.bpf.c'), '-o', out]);
  // the no-op object has no contract structs: load it through libbpf directly via a raw collection
  const noop = loadNoop(out);
  const bw = BpfCollection.load({ stateDir: state });
  const other = ipv4Frame('52:54:00:00:00:01');
  const rarp = rarpFrame('52:54:00:00:00:02');
  const repeat = 200_000;
  bw.testRun(other); // the MAC is known from here on: the hot path
  const base = noop(other, repeat);
  const hot = perRun(bw, other, repeat);
  const ann = perRun(bw, rarp, repeat);
  console.log('1. kernel cost per frame (BPF_PROG_TEST_RUN, best of 5 x %d runs)', repeat);
  console.log(`   no-op program                ${fmt(base)} ns`);
  console.log(`   bridgewatch, known MAC       ${fmt(hot)} ns   ratio ${(hot / base).toFixed(2)}x`);
  console.log(`   bridgewatch, RARP (limited)  ${fmt(ann)} ns   ratio ${(ann / base).toFixed(2)}x`);
  bw.close();
}

function loadNoop(path: string): (frame: Buffer, repeat: number) => number {
  const l = libbpf();
  const obj = l.object_open_file(path, null);
  if (!obj || (l.object_load(obj) as number) < 0) throw new Error(`load ${path}: failed`);
  const fd = l.prog_fd(l.find_prog(obj, 'tc_ingress')) as number;
  return (frame, repeat) => {
    let best = Infinity;
    for (let i = 0; i < 5; i++) best = Math.min(best, testRun(fd, frame, null, repeat).durationNs);
    return best;
  };
}

function tapPath(): void {
  const ns = `bwbench-${process.pid}`;
  addNetns(ns);
  try {
    inNetns(ns, () => {
      ip(null, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
      ip(null, 'link', 'set', 'br0', 'up');
      const tap = new Tap('tapb0');
      ip(null, 'link', 'set', 'tapb0', 'master', 'br0');
      ip(null, 'link', 'set', 'tapb0', 'up');
      const ifindex = indexOf('tapb0');
      const frame = ipv4Frame('52:54:00:00:00:03');
      const n = 200_000;
      const rate = () => {
        let best = 0;
        for (let r = 0; r < 3; r++) {
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < n; i++) tap.write(frame);
          best = Math.max(best, n / (Number(process.hrtime.bigint() - t0) / 1e9));
        }
        return best;
      };
      const bare = rate();
      const bpf = BpfCollection.load({ stateDir: state });
      bpf.attach(ifindex, 'tapb0');
      const watched = rate();
      bpf.close();
      tap.close();
      console.log('2. tap -> bridge, 60-byte frames written by one thread (best of 3 x %d)', n);
      console.log(`   nothing attached             ${fmt(bare / 1000)} kframes/s`);
      console.log(`   bridgewatch attached         ${fmt(watched / 1000)} kframes/s   ratio ${(watched / bare).toFixed(3)}x`);
    });
  } finally {
    delNetns(ns);
  }
}

function indexOf(name: string): number {
  return JSON.parse(ip(null, '-j', 'link', 'show', 'dev', name))[0].ifindex;
}

function scrapeCost(): Promise<void> {
  const build = async (ports: number) => {
    const tracker = new Tracker({ maxPorts: ports + 1 });
    const entries: MacEntry[] = [];
    for (let i = 1; i <= ports; i++) {
      tracker.portAppeared({ ifindex: i, name: `tap${i}`, kind: 'tun', guest: true, bridge: 'br0', state: 'forwarding', carrier: true, tsNs: 1n, initial: true });
      const mac = `52:54:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
      const k = { other: i, rarp: 5, garp: 0, na: 0, legacy: 0 };
      entries.push({ ifindex: i, mac, firstNs: 1n, lastNs: 2n, firstFwdNs: 1n, lastUnfwdNs: 0n, lastAnnounceNs: 0n, frames: i + 5, unfwdFrames: 0, kinds: k, unfwdKinds: { other: 0, rarp: 0, garp: 0, na: 0, legacy: 0 }, vlan: 0, firstState: 3 });
    }
    const reg = new Registry();
    const m = new Metrics(reg, {
      refresh: () => tracker.syncCounters(entries),
      ports: () => tracker.portList(),
      bridges: () => [{ name: 'br0', stpEnabled: false, forwardDelaySec: 0 }],
      macCount: () => tracker.macCount(),
      maps: () => [{ name: 'bw_port_macs', entries: entries.length, max: 16384 }],
      programsAttached: () => ports,
      bpfEventsDropped: () => 0,
      ready: () => true,
      refused: () => ({ ports: 0, macs: 0, timeline: 0 }),
    }, { version: 'bench', kernel: 'bench', mode: 'ebpf' });
    m.bridgeSeen('br0');
    await m.scrape();
    const t0 = process.hrtime.bigint();
    const rounds = 50;
    for (let i = 0; i < rounds; i++) await m.scrape();
    return Number(process.hrtime.bigint() - t0) / 1e6 / rounds;
  };
  return (async () => {
    const few = await build(10);
    const many = await build(1000);
    console.log('3. one /metrics scrape (tracker sync + exposition), mean of 50');
    console.log(`   10 ports                     ${few.toFixed(2)} ms`);
    console.log(`   1000 ports                   ${many.toFixed(2)} ms   ratio ${(many / few).toFixed(1)}x for 100x the ports`);
  })();
}

/** What each scrape pays to read the kernel map: a full scan, 1k vs 16k entries. */
function mapScan(): void {
  const sizes = [1024, 16_000];
  const ms = sizes.map((n) => {
    const bpf = BpfCollection.load({ stateDir: state, maxMacs: 16_384 });
    const f = ipv4Frame('52:54:00:00:00:00');
    for (let i = 0; i < n; i++) {
      f.writeUInt16BE(i, 10); // distinct source MACs 52:54:00:00:xx:xx
      bpf.testRun(f);
    }
    let best = Infinity;
    for (let r = 0; r < 3; r++) {
      const t0 = process.hrtime.bigint();
      if (bpf.macs().length !== n) throw new Error(`map scan: expected ${n} entries`);
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    }
    bpf.close();
    return best;
  });
  console.log('4. reading the {port, MAC} map (one scan per scrape), best of 3');
  console.log(`   ${sizes[0]} entries                 ${ms[0].toFixed(1)} ms`);
  console.log(`   ${sizes[1]} entries                ${ms[1].toFixed(1)} ms   ratio ${(ms[1] / ms[0]).toFixed(1)}x for ${(sizes[1] / sizes[0]).toFixed(1)}x the entries`);
}

kernelCost();
tapPath();
await scrapeCost();
mapScan();
