// A bridgewatch that dies mid-flight: a child process attaches our program through the real
// loader and is SIGKILLed. A plain node child cannot run .ts, so the loader's sources (and what
// they import) are transpiled into a private package next to the child.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import ts from 'typescript';
import { BPF_OBJECT, BPF_OBJECT_STATEMAP, PACKAGE_ROOT } from '../../src/paths.js';
import { tempStateDir, type TestNetns } from './netns.js';

/** Transpile src/<entry>.ts and its relative imports into dir/src; returns dir. */
function buildPackage(dir: string, entry: string): string {
  const todo = [entry];
  const done = new Set<string>();
  while (todo.length) {
    const rel = todo.pop()!;
    if (done.has(rel)) continue;
    done.add(rel);
    const src = readFileSync(join(PACKAGE_ROOT, 'src', `${rel}.ts`), 'utf8');
    for (const m of src.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) todo.push(normalize(join(dirname(rel), m[1])));
    const out = join(dir, 'src', `${rel}.js`);
    mkdirSync(dirname(out), { recursive: true });
    const opts = { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 };
    writeFileSync(out, ts.transpileModule(src, { compilerOptions: opts }).outputText);
  }
  // paths.ts looks for a package.json named bridgewatch above itself
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'bridgewatch', version: '0.0.0-test', type: 'module' }));
  symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

const CHILD = `
import { BpfCollection } from './src/bpf/loader.js';
import { c } from './src/sys/libc.js';
const [mode, stateDir, dev] = process.argv.slice(2);
// statemapPath: with an explicit object the loader falls back only to a twin it is given
const bpf = BpfCollection.load({ mode, stateDir, statemapPath: process.env.BW_STATEMAP });
bpf.attach(c.if_nametoindex(dev), dev);
process.stdout.write('attached\\n');
setInterval(() => {}, 60_000);
`;

/** Attach in `mode` from a child in ns, then SIGKILL it: no close(), no detach, no cleanup. */
export async function attachAndKill(ns: TestNetns, dev: string, mode: 'tc' | 'tcx' | 'auto', stateDir: string): Promise<void> {
  const pkg = buildPackage(tempStateDir(), 'bpf/loader');
  const script = join(pkg, 'attach-child.mjs');
  writeFileSync(script, CHILD);
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, script, mode, stateDir, dev], {
    stdio: 'pipe',
    env: { ...process.env, BRIDGEWATCH_BPF_OBJECT: BPF_OBJECT, BW_STATEMAP: BPF_OBJECT_STATEMAP },
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`attach child: no "attached" after 10 s; stderr: ${err}`)), 10_000);
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('attached\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`attach child exited with ${code} before attaching; stderr: ${err}`));
      });
    });
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}
