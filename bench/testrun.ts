// Kernel cost per frame (BPF_PROG_TEST_RUN) over a no-op TC program, on the devices of a real
// bridge: tapf0 forwards, tapl0 is held in learning. Each figure is the median of per-round
// differences (ours minus no-op, measured back to back), so load on the machine cancels.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rarpFrame, withVlanTag } from '../src/announce/frames.js';
import { BR_STATES } from '../src/bpf/abi.js';
import { libbpf } from '../src/bpf/libbpf.js';
import { BpfCollection } from '../src/bpf/loader.js';
import { Tap } from '../src/sys/tun.js';
import { deltas, figure, interleave, median, type BenchOptions, type Figure, type Goal, type Producer } from './harness.js';
import { loadNoop, loadRaw, runNs, type Prog } from './progs.js';
import { BenchNetns } from './world.js';

export interface KernelOptions extends BenchOptions {
  /** a directory with bridgewatch.bpf.o and bridgewatch-statemap.bpf.o of another build */
  baseline?: string;
}

const FORWARDING = BR_STATES.indexOf('forwarding');
const LEARNING = BR_STATES.indexOf('learning');

export function ipv4Frame(mac: Buffer): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  mac.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  return f;
}
const macOf = (a: number, b: number, c: number) => Buffer.from([0x52, 0x54, 0x00, a, b, c]);
/** the j-th new MAC of round r: never seen before by any program in this run */
const newMac = (r: number, j: number) => Buffer.from([0x52, 0x54, 0x01, r, j >> 8, j & 0xff]);

interface Case {
  id: string;
  label: string;
  goal: Goal;
  /** frames for one sample; new frames each time for the first-frame case */
  frames: (round: number) => Buffer[];
  dev: 'fwd' | 'learning' | 'lo';
  repeat: number;
  statemap?: boolean;
  /** run the convergence program of uplink ingress instead of the guest-port program */
  uplink?: boolean;
  /** set up before the case's first sample, undone after its last */
  around?: { before(): void; after(): void };
}

export const kernelProducer: Producer = { prefix: 'testrun.', run: (o) => kernelFigures(o) };

export async function kernelFigures(o: KernelOptions): Promise<Figure[]> {
  const rounds = o.quick ? 5 : 11;
  const repeat = o.quick ? 2_000 : 200_000;
  const fresh = o.quick ? 20 : 400; // first frames per sample
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-'));
  const ns = new BenchNetns('k');
  const held: { close(): void }[] = [];
  try {
    const fwd = ns.run(() => new Tap('tapf0'));
    const learning = ns.run(() => new Tap('tapl0'));
    held.push(fwd, learning);
    await ns.join('tapf0');
    await ns.join('tapl0');
    ns.setPortState('tapl0', LEARNING);
    const ifindex = { fwd: ns.ifindex('tapf0'), learning: ns.ifindex('tapl0'), lo: 0 };
    const states = new Map([[ifindex.fwd, FORWARDING], [ifindex.learning, LEARNING]]);

    const noop = loadNoop(dir);
    const ours = BpfCollection.load({ stateDir: dir, portState: 'kernel' });
    const oursSm = BpfCollection.load({ stateDir: dir, portState: 'netlink' });
    for (const [i, s] of states) oursSm.setPortState(i, s);
    held.push(noop, ours, oursSm);
    const asProg = (name: string, b: BpfCollection, fd = b.programFd): Prog => ({
      name,
      fd,
      map: (m) => {
        throw new Error(`${name}: map ${m}: use the collection`);
      },
      close: () => b.close(),
    });
    const kfunc = [asProg('bridgewatch', ours)];
    const statemap = [asProg('bridgewatch (statemap)', oursSm)];
    const uplink = [asProg('bridgewatch tc_uplink_in', ours, ours.uplinkProgramFds.in)];
    // 100 arrived guests awaiting the fabric: the frame is for none of them
    const watched = Array.from({ length: 100 }, (_, j) => `52:54:02:00:00:${j.toString(16).padStart(2, '0')}`);
    const watching = { before: () => watched.forEach((m) => ours.awaits.add(m)), after: () => watched.forEach((m) => ours.awaits.remove(m)) };
    const toHost = (dst: Buffer) => {
      const f = ipv4Frame(macOf(0, 9, 9));
      dst.copy(f, 0);
      return f;
    };
    if (o.baseline) {
      const base = loadRaw('baseline', join(o.baseline, 'bridgewatch.bpf.o'));
      const baseSm = loadRaw('baseline (statemap)', join(o.baseline, 'bridgewatch-statemap.bpf.o'));
      held.push(base, baseSm);
      for (const [i, s] of states) setState(baseSm, i, s);
      kfunc.push(base);
      statemap.push(baseSm);
    }

    const known = macOf(0, 0, 1);
    const cases: Case[] = [
      { id: 'testrun.known_mac', label: 'data frame, known MAC, forwarding port', goal: { atMost: 15 }, frames: () => [ipv4Frame(known)], dev: 'fwd', repeat },
      { id: 'testrun.vlan', label: '802.1Q-tagged data frame, known MAC', goal: { atMost: 15 }, frames: () => [withVlanTag(ipv4Frame(macOf(0, 0, 2)), 10)], dev: 'fwd', repeat },
      { id: 'testrun.rarp', label: 'RARP (announcement; past 32/s per MAC no event is written)', goal: { atMost: 60 }, frames: () => [rarpFrame(macOf(0, 0, 3))], dev: 'fwd', repeat },
      { id: 'testrun.unfwd', label: 'data frame, known MAC, port in learning (not forwarding)', goal: { atMost: 60 }, frames: () => [ipv4Frame(macOf(0, 0, 4))], dev: 'learning', repeat },
      { id: 'testrun.lo', label: 'data frame, known MAC, on loopback (no bridge port): what the old bench measured', goal: { atMost: 60 }, frames: () => [ipv4Frame(macOf(0, 0, 5))], dev: 'lo', repeat },
      {
        id: 'testrun.new_mac',
        label: `first frame of a new MAC (median of ${fresh} single runs)`,
        goal: { atMost: 60 },
        frames: (r) => Array.from({ length: fresh }, (_, j) => ipv4Frame(newMac(r, j))),
        dev: 'fwd',
        repeat: 1,
      },
      {
        id: 'testrun.uplink_idle',
        label: 'uplink ingress, no guest awaiting convergence (every frame of the physical network)',
        goal: { atMost: 5 },
        frames: () => [toHost(macOf(0, 8, 1))],
        dev: 'fwd',
        repeat,
        uplink: true,
      },
      {
        id: 'testrun.uplink_watching',
        label: 'uplink ingress, 100 guests awaiting convergence, a frame for another host',
        goal: null,
        frames: () => [toHost(macOf(0, 8, 2))],
        dev: 'fwd',
        repeat,
        uplink: true,
        around: watching,
      },
      { id: 'testrun.statemap.known_mac', label: 'data frame, known MAC, statemap build (port state from a hash map)', goal: null, frames: () => [ipv4Frame(known)], dev: 'fwd', repeat, statemap: true },
    ];

    const out: Figure[] = [];
    const noopAlone: number[] = [];
    for (const c of cases) {
      const progs = [noop, ...(c.uplink ? uplink : c.statemap ? statemap : kfunc)];
      c.around?.before();
      const dev = ifindex[c.dev];
      // the MAC is known (and settled where it can be) before the first sample, except new_mac's
      if (c.repeat > 1) for (const p of progs) ns.run(() => c.frames(0).forEach((f) => runNs(p.fd, f, dev, 1)));
      const rnd = new Map(progs.map((p) => [p, 0]));
      const samples = await interleave(
        progs.map((p) => () => {
          const r = rnd.get(p)!;
          rnd.set(p, r + 1);
          return ns.run(() => median(c.frames(r).map((f) => runNs(p.fd, f, dev, c.repeat))));
        }),
        rounds,
      );
      c.around?.after();
      if (c.id === 'testrun.known_mac') noopAlone.push(...samples[0]);
      out.push(figure(c.id, c.label, 'ns over no-op', deltas(samples[0], samples[1]), c.goal, `${progs[1].name}; ${c.repeat} runs per sample, ${rounds} rounds`));
      if (progs[2]) out.push(figure(`${c.id}@baseline`, `${c.label} (--baseline object)`, 'ns over no-op', deltas(samples[0], samples[2]), null, `${o.baseline}`));
    }
    out.push(figure('testrun.noop', 'the no-op program itself (test_run loop included)', 'ns', noopAlone, null));
    return out;
  } finally {
    for (const h of held.reverse()) h.close();
    ns.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The statemap build's port state, written into an object loaded raw. */
function setState(p: Prog, ifindex: number, state: number): void {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(ifindex);
  const rc = libbpf().map_update_elem(p.map('bw_port_state'), key, Buffer.from([state]), 0n) as number;
  if (rc < 0) throw new Error(`set port state in ${p.name}: error ${-rc}`);
}
