// The npm package as a user gets it: `npm pack` on a copy of the sources (prepack builds the BPF
// objects and the JavaScript), `npm install -g` of the tarball into a temporary prefix (its
// dependencies from the npm cache, else the registry), then the installed `bridgewatch`: --help,
// and `run` inside a namespace of our own until /healthz and /readyz answer, then SIGTERM.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/lab/qemu.js';
import { PACKAGE_ROOT, VERSION } from '../../src/paths.js';
import { httpIn, until } from '../helpers/daemon-process.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';

const tools = ['npm', 'clang', 'llvm-strip', 'curl', 'tar'].filter((t) => !findExecutable(t));
const skip =
  process.getuid?.() !== 0
    ? 'needs root (a network namespace for the daemon)'
    : tools.length
      ? `${tools.join(', ')} not in PATH (scripts/setup.sh installs them)`
      : '';

// the shebang is `#!/usr/bin/env node`: the node running this test
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` };
let work = '';
let tarball = '';
let bin = '';
let daemon: ChildProcess | undefined;

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

beforeAll(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'bwt-package-'));
  // the sources as a clone has them (tracked and new files, nothing ignored: no dist/)
  const src = join(work, 'src');
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: PACKAGE_ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(src, f)), { recursive: true });
    cpSync(join(PACKAGE_ROOT, f), join(src, f));
  }
  symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(src, 'node_modules')); // the build's tsc
  const pack = await run('npm', ['pack', '--pack-destination', work], src, 240_000);
  if (pack.code !== 0) throw new Error(`npm pack: exit ${pack.code}\n${pack.out.slice(-3000)}`);
  tarball = join(work, `bridgewatch-${VERSION}.tgz`);
  const prefix = join(work, 'prefix');
  const install = await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], work, 240_000);
  if (install.code !== 0) throw new Error(`npm install -g: exit ${install.code}\n${install.out.slice(-3000)}`);
  bin = join(prefix, 'bin/bridgewatch');
}, 480_000);

afterAll(() => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL'); // a failed test's
  cleanupAll();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!!skip)('npm pack, npm install -g, bridgewatch', () => {
  it('the tarball holds the built CLI, both BPF objects and the operator files, and no tests, CI, sources or source maps', () => {
    const list = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n').map((p) => p.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'bin/bridgewatch.js', 'dist/src/cli.js', 'dist/src/main.js', 'dist/src/lab/lab.js', 'dist/bpf/bridgewatch.bpf.o', 'dist/bpf/bridgewatch-statemap.bpf.o', 'grafana/alerts.yml', 'grafana/bridgewatch.json', 'deploy/bridgewatch.service'])
      expect(list, f).toContain(f);
    expect(list.filter((f) => /^(test|\.ci|src|bench|scripts|bpf|dist\/bench)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts'))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(dirname(bin), '../lib/node_modules/bridgewatch/package.json'), 'utf8'));
    expect(pkg).toMatchObject({ name: 'bridgewatch', version: VERSION, os: ['linux'], engines: { node: '>=20' }, bin: { bridgewatch: 'bin/bridgewatch.js' } });
    expect(pkg.repository?.url).toMatch(/^git\+https:\/\//);
  });

  it('the installed bridgewatch answers --help and --version', async () => {
    const help = await run(bin, ['--help'], work, 20_000);
    expect(help.code, help.out).toBe(0);
    expect(help.out).toContain(`bridgewatch ${VERSION}`);
    expect(help.out).toMatch(/^ {2}bridgewatch run \[options\]$/m);
    expect(help.out).not.toContain('not built yet');
    const version = await run(bin, ['--version'], work, 20_000);
    expect({ code: version.code, out: version.out.trim() }).toEqual({ code: 0, out: VERSION });
    // as deploy/bridgewatch.service starts it: node and the link npm made
    const viaNode = await run(process.execPath, [bin, '--version'], work, 20_000);
    expect({ code: viaNode.code, out: viaNode.out.trim() }).toEqual({ code: 0, out: VERSION });
    const bad = await run(bin, ['run', '--observe-uplinks', 'false'], work, 20_000);
    expect(bad.code).toBe(2);
  });

  it('the installed `bridgewatch run` serves /healthz and /readyz in a namespace, with the installed BPF object, and stops on SIGTERM', async () => {
    const ns = new TestNetns('pkg');
    const url = 'http://127.0.0.1:9725';
    // ip netns exec execs the script: the child's pid is the daemon's, so SIGTERM reaches it
    const child = (daemon = spawn('ip', ['netns', 'exec', ns.name, bin, 'run', '--listen', '127.0.0.1:9725', '--state-dir', tempStateDir()], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const health = await until('/healthz', () => httpIn(ns, 'GET', `${url}/healthz`), (r) => r.status === 200, 15_000);
      expect(health.json).toEqual({ status: 'ok' });
      const ready = await until('/readyz', () => httpIn(ns, 'GET', `${url}/readyz`), (r) => r.status === 200, 15_000);
      expect(ready.json).toEqual({ status: 'ready' });
      const metrics = await httpIn(ns, 'GET', `${url}/metrics`);
      // eBPF where the kernel has it (the object came from the package), else the libpcap fallback
      const mode = kernelMissing.bpf ? 'pcap' : 'ebpf';
      expect(metrics.body).toMatch(new RegExp(`^bridgewatch_build_info\\{version="${VERSION.replace(/\./g, '\\.')}",kernel="[^"]+",mode="${mode}"\\} 1$`, 'm'));
      expect(metrics.body).toMatch(/^process_start_time_seconds \d+/m);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, out).toBe(0);
    expect(out).toContain('"msg":"stopped"');
    ns.delete();
  }, 40_000);
});
