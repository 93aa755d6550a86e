// tap -> bridge: 60-byte frames a guest writes into a bridged tap, with nothing, a no-op TC
// program or bridgewatch on the tap's ingress (clsact), measured interleaved. One writer on a
// plain tap (tap1.*), and two writers on a multi-queue tap, pinned to two CPUs (tap2.*): the
// same MAC from both, so shared-cache-line writes in the program would show.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BpfCollection } from '../src/bpf/loader.js';
import { PACKAGE_ROOT } from '../src/paths.js';
import { deltas, figure, interleave, ratios, type Figure, type Producer } from './harness.js';
import { attachTc, loadNoop, loadRaw, progStats, withBpfStats, type Prog } from './progs.js';
import type { KernelOptions } from './testrun.js';
import { BenchNetns } from './world.js';

/** bench/tapwriter.c, running in a namespace, holding the tap's queues. */
class TapWriter {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor(ns: BenchNetns, bin: string, readonly tap: string, readonly queues: number, cpus: number[]) {
    // spawned from the main thread while it is in the namespace: the child is born there
    this.child = ns.run(() => spawn(bin, [tap, String(queues), ...cpus.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let err = '';
    this.child.stderr.on('data', (d) => (err += d));
    this.child.on('exit', (code) => {
      if (code) process.stderr.write(`bench: tapwriter exited ${code}: ${err}`);
    });
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  private async line(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error(`bench: tapwriter on ${this.tap} ended early`);
    return r.value;
  }

  async ready(): Promise<void> {
    const l = await this.line();
    if (l !== 'ready') throw new Error(`bench: tapwriter on ${this.tap}: ${l}`);
  }

  /** Each queue writes `frames` frames; returns frames per second, all queues together. */
  async rate(frames: number): Promise<number> {
    this.child.stdin.write(`${frames}\n`);
    const ns = Number(await this.line());
    return (frames * this.queues) / (ns / 1e9);
  }

  close(): Promise<void> {
    return new Promise((done) => {
      if (this.child.exitCode !== null) return done();
      this.child.once('exit', () => done());
      this.child.stdin.end();
    });
  }
}

interface Variant {
  name: string;
  fd?: number; // none: nothing attached
}

export const tapProducer: Producer = { prefix: 'tap', run: (o) => tapFigures(o) };

export async function tapFigures(o: KernelOptions): Promise<Figure[]> {
  const rounds = o.quick ? 5 : 11;
  const frames = o.quick ? 2_000 : 250_000;
  const dir = mkdtempSync(join(tmpdir(), 'bw-bench-'));
  const bin = join(dir, 'tapwriter');
  execFileSync('cc', ['-O2', '-pthread', join(PACKAGE_ROOT, 'bench/tapwriter.c'), '-o', bin]);
  const held: Prog[] = [];
  const ours = BpfCollection.load({ stateDir: dir, portState: 'kernel' });
  try {
    held.push(loadNoop(dir));
    const variants: Variant[] = [{ name: 'nothing' }, { name: 'noop', fd: held[0].fd }, { name: 'bridgewatch', fd: ours.programFd }];
    if (o.baseline) {
      held.push(loadRaw('baseline', join(o.baseline, 'bridgewatch.bpf.o')));
      variants.push({ name: 'baseline', fd: held[1].fd });
    }
    const cpus = availableParallelism();
    const two = cpus >= 2 ? [0, 1] : [];
    const out = [
      ...(await writerFigures('tap1', 'one writer', { tap: 'tapw0', queues: 1, cpus: [0] }, variants, bin, rounds, frames)),
      ...(await writerFigures('tap2', `two writers, multi-queue tap${two.length ? ', CPUs 0 and 1' : ' (one CPU: unpinned)'}`, { tap: 'tapm0', queues: 2, cpus: two }, variants, bin, rounds, frames)),
    ];
    return out;
  } finally {
    for (const p of held) p.close();
    ours.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function writerFigures(
  id: string,
  what: string,
  w: { tap: string; queues: number; cpus: number[] },
  variants: Variant[],
  bin: string,
  rounds: number,
  frames: number,
): Promise<Figure[]> {
  const ns = new BenchNetns(id);
  const writer = new TapWriter(ns, bin, w.tap, w.queues, w.cpus);
  try {
    await writer.ready();
    await ns.join(w.tap);
    const ifindex = ns.ifindex(w.tap);
    const measure = (v: Variant, sample: () => Promise<number>) => async () => {
      const detach = v.fd === undefined ? () => {} : ns.run(() => attachTc(ifindex, v.fd!));
      try {
        return await sample();
      } finally {
        ns.run(detach);
      }
    };
    await writer.rate(Math.min(frames, 10_000)); // warm: the MAC is known and settled
    const rates = await interleave(variants.map((v) => measure(v, async () => (await writer.rate(frames)) / 1000)), rounds);
    const by = (name: string) => rates[variants.findIndex((v) => v.name === name)];
    const label = (v: string) => `${what}: ${v}`;
    const detail = `${frames} frames per queue per sample, ${rounds} rounds`;
    const figs = [
      figure(`${id}.nothing`, label('nothing attached'), 'kframes/s', by('nothing'), null, detail),
      figure(`${id}.noop`, label('no-op program'), 'kframes/s', by('noop'), null, detail),
      figure(`${id}.bridgewatch`, label('bridgewatch'), 'kframes/s', by('bridgewatch'), null, detail),
      figure(`${id}.ratio`, label('bridgewatch / no-op'), '×', ratios(by('noop'), by('bridgewatch')), { atLeast: id === 'tap1' ? 0.97 : 0.95 }, 'paired per round'),
    ];
    if (variants.some((v) => v.name === 'baseline')) {
      figs.push(figure(`${id}.bridgewatch@baseline`, label('the --baseline object'), 'kframes/s', by('baseline'), null, detail));
      figs.push(figure(`${id}.ratio@baseline`, label('--baseline / no-op'), '×', ratios(by('noop'), by('baseline')), null, 'paired per round'));
    }
    if (id === 'tap1') figs.push(...(await progTime(ns, writer, ifindex, variants.filter((v) => v.fd !== undefined), rounds, frames)));
    return figs;
  } finally {
    await writer.close();
    ns.close();
  }
}

/** In-kernel cost per run on the real path: kernel.bpf_stats_enabled run_time_ns / run_cnt. */
async function progTime(ns: BenchNetns, writer: TapWriter, ifindex: number, variants: Variant[], rounds: number, frames: number): Promise<Figure[]> {
  const per = await withBpfStats(() =>
    interleave(
      variants.map((v) => async () => {
        const detach = ns.run(() => attachTc(ifindex, v.fd!));
        try {
          const a = progStats(v.fd!);
          await writer.rate(frames);
          const b = progStats(v.fd!);
          return Number(b.runTimeNs - a.runTimeNs) / Number(b.runCnt - a.runCnt);
        } finally {
          ns.run(detach);
        }
      }),
      rounds,
    ),
  );
  const at = (name: string) => per[variants.findIndex((v) => v.name === name)];
  const detail = 'run_time_ns / run_cnt with kernel.bpf_stats_enabled (stats add their own clock reads)';
  const figs = [
    figure('tap1.prog_ns.noop', 'one writer: no-op program, ns per run in the kernel', 'ns', at('noop'), null, detail),
    figure('tap1.prog_ns.bridgewatch', 'one writer: bridgewatch, ns per run in the kernel', 'ns', at('bridgewatch'), null, detail),
    figure('tap1.prog_ns_over_noop', 'one writer: bridgewatch over no-op, ns per run in the kernel', 'ns over no-op', deltas(at('noop'), at('bridgewatch')), null, detail),
  ];
  if (variants.some((v) => v.name === 'baseline'))
    figs.push(figure('tap1.prog_ns_over_noop@baseline', 'one writer: --baseline over no-op, ns per run in the kernel', 'ns over no-op', deltas(at('noop'), at('baseline')), null, detail));
  return figs;
}
