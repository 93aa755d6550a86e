// npm run bench: every figure measured side by side (interleaved, medians), printed as a table
// of figure / value / target / met and written to bench/results.json. Never a timed test.
//   node dist/bench/run.js [--quick] [--only id,prefix,...] [--out file] [--baseline dir]
// --quick: tiny counts (the smoke test in npm test); --only: figures whose id starts with one
// of these; --baseline: a directory with another build's bridgewatch*.bpf.o, measured in the
// same rounds (figures id@baseline), for before/after comparisons.
import { availableParallelism, release } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/paths.js';
import { table, writeResults, type Figure, type Producer } from './harness.js';
import { PRODUCERS } from './producers.js';
import type { KernelOptions } from './testrun.js';

interface Args extends KernelOptions {
  only: string[];
  out: string;
}

function parse(argv: string[]): Args {
  const a: Args = { quick: false, only: [], out: join(PACKAGE_ROOT, 'bench/results.json') };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench: ${flag} needs a value`);
      return v;
    };
    if (flag === '--quick') a.quick = true;
    else if (flag === '--only') a.only = value().split(',').filter(Boolean);
    else if (flag === '--out') a.out = value();
    else if (flag === '--baseline') a.baseline = value();
    else throw new Error(`bench: unknown argument ${flag} (--quick, --only ids, --out file, --baseline dir)`);
  }
  return a;
}

const wanted = (only: string[], id: string) => !only.length || only.some((o) => id.startsWith(o));
// a producer runs when an --only entry could name one of its figures
const runs = (only: string[], p: Producer) => !only.length || only.some((o) => o.startsWith(p.prefix) || p.prefix.startsWith(o));

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  const figures: Figure[] = [];
  let failed = 0;
  for (const p of PRODUCERS.filter((x) => runs(args.only, x))) {
    try {
      const got = await p.run(args);
      figures.push(...got.filter((f) => wanted(args.only, f.id)));
      console.error(`bench: ${p.prefix}* done (${got.length} figures)`);
    } catch (e) {
      failed++;
      console.error(`bench: ${p.prefix}* failed: ${(e as Error).stack ?? e}`);
    }
  }
  writeResults(args.out, { when: new Date().toISOString(), quick: args.quick, kernel: release(), cpus: availableParallelism(), figures });
  console.log(table(figures));
  console.log(`\n${figures.filter((f) => f.target && !f.met).length} of ${figures.filter((f) => f.target).length} targets missed; written to ${args.out}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
