// Reaction: a late join healed by the real daemon (`node bin/bridgewatch.js run` in a netns of
// our own, br0 with STP off and uplink up0, whose peer up0p plays the fabric). Per trial a new
// tap carries a guest's RARPs while in no bridge (lost), then joins br0 (`ip link set master`):
// the figure is the time from the kernel making the port forward to the first RARP from the
// guest's MAC arriving on up0p. The transition happens inside the join's own sendto() (one
// synchronous rtnetlink request from this thread), bracketed by two CLOCK_MONOTONIC reads; the
// RARP is stamped by a TC program on up0p (bpf_ktime_get_ns, bench/heal-probe.bpf.c). No Node
// timer is in the measurement. The daemon's own facts (netlink message received, RARP sent;
// CLOCK_MONOTONIC too) split it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rarpFrame } from '../src/announce/frames.js';
import { libbpf } from '../src/bpf/libbpf.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { c, errno, strerror } from '../src/sys/libc.js';
import { Tap } from '../src/sys/tun.js';
import type { PortView } from '../src/tracker/types.js';
import { Daemon, Netns, sleep } from './attach-rig.js';
import { median, type Figure, type Producer } from './harness.js';
import { attachTc, loadRaw } from './progs.js';

/** bench/heal-probe.bpf.c built into dir and loaded: its TC program and its RARP map. */
function loadProbe(dir: string): { tcFd: number; rarp: number; close(): void } {
  const out = join(dir, 'heal-probe.bpf.o');
  const arch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${arch}-linux-gnu`, '-c', join(PACKAGE_ROOT, 'bench/heal-probe.bpf.c'), '-o', out]);
  const p = loadRaw('heal-probe', out);
  return { tcFd: p.fd, rarp: p.map('rarp_ns'), close: () => p.close() };
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const RTM_NEWLINK = 16;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const IFLA_MASTER = 10;

/**
 * `ip link set DEV master BR` as one synchronous rtnetlink request from this thread. The kernel
 * runs the request inside sendto() (netlink_unicast to the kernel socket calls rtnetlink_rcv in
 * the sender's context): the port's forwarding transition happens between the two clock reads
 * around it, both CLOCK_MONOTONIC like bpf_ktime_get_ns. Returns [before, after] in ns.
 */
function joinSync(ifindex: number, master: number): [bigint, bigint] {
  const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new Error(`bench heal: netlink socket: ${strerror(errno())}`);
  try {
    const m = Buffer.alloc(16 + 16 + 8);
    m.writeUInt32LE(m.length, 0);
    m.writeUInt16LE(RTM_NEWLINK, 4);
    m.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
    m.writeUInt32LE(1, 8);
    m.writeInt32LE(ifindex, 16 + 4); // ifinfomsg: family 0, type 0, ifindex
    m.writeUInt16LE(8, 32);
    m.writeUInt16LE(IFLA_MASTER, 34);
    m.writeUInt32LE(master, 36);
    const nl = Buffer.alloc(12);
    nl.writeUInt16LE(AF_NETLINK, 0);
    const t0 = process.hrtime.bigint();
    const n = c.sendto(fd, m, m.length, 0, nl, nl.length) as number;
    const t1 = process.hrtime.bigint();
    if (n < 0) throw new Error(`bench heal: join: sendto: ${strerror(errno())}`);
    const ack = Buffer.alloc(256);
    if ((c.read(fd, ack, ack.length) as number) < 20) throw new Error('bench heal: join: no ack');
    const err = ack.readInt32LE(16);
    if (ack.readUInt16LE(4) !== 2 || err !== 0) throw new Error(`bench heal: join: ${err ? strerror(-err) : 'unexpected reply'}`);
    return [t0, t1];
  } finally {
    c.close(fd);
  }
}

function lookupNs(mapFd: number, key: Buffer): bigint | undefined {
  const v = Buffer.alloc(8);
  return (libbpf().map_lookup_elem(mapFd, key, v) as number) === 0 ? v.readBigUInt64LE(0) : undefined;
}
const macKey = (mac: Buffer) => Buffer.concat([mac, Buffer.alloc(2)]);

/** Linear interpolation between closest ranks (R type 7): p99 of 50 trials is not just the max. */
export function quantile(xs: readonly number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}

interface Trial {
  total: number; // join request sent (the transition follows within `bracket`) -> first RARP on up0p, ms
  bracket: number; // the join's sendto(): the forwarding transition happened inside it
  netlink?: number; // join request sent -> the daemon received the netlink message (its 'state' fact)
  react?: number; // that message -> the daemon sent the RARP (its 'rarp_sent' fact)
  wire?: number; // sent -> seen on up0p
}

async function trial(ns: Netns, d: Daemon, probe: ReturnType<typeof loadProbe>, k: number, br0: number): Promise<Trial> {
  const name = `bwl${process.pid % 100000}.${k}`;
  const mac = Buffer.from([0x52, 0x54, 0x00, 0xbe, (k >> 8) & 0xff, k & 0xff]);
  const macStr = [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const view = async () => {
    const r = await ns.get(`${d.url}/api/v1/ports/${name}`);
    return r.status === 200 ? (JSON.parse(r.body) as PortView) : undefined;
  };
  const until = async <T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 5000, every = 10): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`bench heal: ${name}: ${what} not within ${ms} ms`);
      await sleep(every);
    }
  };
  const tap = new Tap(name); // this thread is in ns (Netns entered it)
  try {
    ns.ip('link', 'set', name, 'up');
    await until('watched', view);
    // the guest's post-migration RARPs, lost: the tap is in no bridge yet
    for (let i = 0; i < 3; i++) tap.write(rarpFrame(mac));
    await until('3 frames seen before forwarding', async () => {
      const v = await view();
      return v && v.macs[0]?.framesBeforeForwarding >= 3 ? v : undefined;
    });
    await sleep(20); // let the daemon go idle: what is measured starts from a quiet process
    const [fwdNs, sentNs] = joinSync(c.if_nametoindex(name) as number, br0);
    const rarpNs = await until('RARP on up0p', () => lookupNs(probe.rarp, macKey(mac)), 5000, 2);
    const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
    const t: Trial = { total: ms(fwdNs, rarpNs), bracket: ms(fwdNs, sentNs) };
    const v = await until('rarp_sent in the timeline', async () => {
      const p = await view();
      return p?.timeline.some((f) => f.type === 'rarp_sent') ? p : undefined;
    });
    const state = v.timeline.find((f) => f.type === 'state' && f.state === 'forwarding');
    const sent = v.timeline.find((f) => f.type === 'rarp_sent' && f.mac === macStr);
    if (state && sent) {
      const s = BigInt(state.monoNs);
      const r = BigInt(sent.monoNs);
      Object.assign(t, { netlink: ms(fwdNs, s), react: ms(s, r), wire: ms(r, rarpNs) });
    }
    return t;
  } finally {
    tap.close(); // deletes the tap
    await until('port gone', async () => ((await view()) ? undefined : true)).catch(() => undefined);
  }
}

export async function healFigures(o: { quick: boolean }): Promise<Figure[]> {
  if (process.getuid?.() !== 0) throw new Error('bench heal: needs root (netns, BPF)');
  const trials = o.quick ? 5 : 50;
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-heal-'));
  const probe = loadProbe(dir);
  const ns = new Netns('heal');
  let d: Daemon | undefined;
  let detach: (() => void) | undefined;
  try {
    ns.ip('link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    ns.ip('link', 'set', 'br0', 'up');
    ns.ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p');
    ns.ip('link', 'set', 'up0', 'master', 'br0');
    ns.ip('link', 'set', 'up0', 'up');
    ns.ip('link', 'set', 'up0p', 'up');
    detach = attachTc(c.if_nametoindex('up0p') as number, probe.tcFd);
    d = await Daemon.start(ns);
    const br0 = c.if_nametoindex('br0') as number;
    await trial(ns, d, probe, 0, br0); // warm-up: JIT, first use of every path; not counted
    const got: Trial[] = [];
    for (let k = 1; k <= trials; k++) got.push(await trial(ns, d, probe, k, br0));
    const r3 = (x: number) => Math.round(x * 1000) / 1000;
    const total = got.map((t) => r3(t.total));
    const part = (key: 'netlink' | 'react' | 'wire' | 'bracket') => got.map((t) => t[key]).filter((x): x is number => x !== undefined).map(r3);
    const fig = (id: string, label: string, value: number, samples: number[], limit: number | undefined, detail: string): Figure => ({
      id,
      label,
      value: r3(value),
      unit: 'ms',
      target: limit === undefined ? '' : `≤ ${limit}`,
      met: limit === undefined || value <= limit,
      samples,
      detail,
    });
    const n = `${trials} trials`;
    const split = (xs: number[]) => `median ${r3(median(xs))}, p99 ${r3(quantile(xs, 0.99))}, max ${r3(Math.max(...xs))} ms`;
    return [
      fig('heal.first_rarp.p50', 'late join: port made forwarding → first RARP on the uplink, p50', median(total), total, 2, `${n}; from the synchronous join request (the transition happens inside it: ${split(part('bracket'))}) to the RARP at TC ingress of the uplink's peer (bpf_ktime_get_ns)`),
      fig('heal.first_rarp.p99', 'the same, p99 (linear between ranks)', quantile(total, 0.99), total, 10, n),
      fig('heal.first_rarp.max', 'the same, max', Math.max(...total), total, undefined, n),
      fig('heal.join', 'the join request itself (the forwarding transition happens within it)', median(part('bracket')), part('bracket'), undefined, split(part('bracket'))),
      fig('heal.netlink', 'join request → the daemon received the netlink message (its state fact)', median(part('netlink')), part('netlink'), undefined, split(part('netlink'))),
      fig('heal.react', 'netlink message received → RARP sent (the daemon\'s facts)', median(part('react')), part('react'), undefined, split(part('react'))),
      fig('heal.wire', 'RARP sent → seen on the uplink\'s peer', median(part('wire')), part('wire'), undefined, split(part('wire'))),
    ];
  } finally {
    if (d) await d.stop().catch(() => d?.kill());
    detach?.();
    await sleep(100);
    ns.close();
    probe.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const healProducer: Producer = { prefix: 'heal.', run: (o) => healFigures(o) };
