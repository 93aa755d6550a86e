// The kernel matrix: Debian 12's stock kernel (6.1: no tcx, no bpf_cast_to_kern_ctx, bridge VLAN
// filtering), booted under QEMU on this checkout (test/vm/run.sh), runs the suites this host's
// kernel cannot: the statemap build, clsact attach and its crash cleanup, every VLAN path, and a
// daemon late join with heal. Fails with the VM's output if an inner test fails, or if a test
// that must run on that kernel skipped.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../src/lab/qemu.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

/** Whole files, or the describe/it whose source line starts with `only`. */
const SUITES: { file: string; only?: string }[] = [
  { file: 'test/kernel/classifier.test.ts' },
  { file: 'test/kernel/forwarding.test.ts' },
  { file: 'test/kernel/statemap.test.ts' },
  { file: 'test/kernel/loader.test.ts' },
  { file: 'test/kernel/port-limit.test.ts' },
  { file: 'test/kernel/kept-frames.test.ts' },
  { file: 'test/kernel/watcher.test.ts', only: "it('reports bridge VLAN filtering'" },
  { file: 'test/kernel/announcer.test.ts', only: "describe('VLANs" },
  { file: 'test/e2e/late-join-heal.test.ts' },
  { file: 'test/e2e/convergence.test.ts' },
];

/** Every test whose full name contains one of these must pass in the VM (none may skip). */
const MUST_PASS = [
  'forwarding from rtnetlink on a real bridge (the statemap build',
  'auto picks the map build where the kernel lacks the kfunc',
  'attach and detach in tc mode',
  "tc mode and someone else's clsact",
  'a tc-mode run killed, then a tc attach',
  'per-port MAC limit in the kernel',
  'bw_frames on a real tap',
  'PortWatcher (kernel) reports bridge VLAN filtering',
  'VLANs (a vlan_filtering bridge: PVID 100 on the guest port)',
  'bridgewatch run heals a late join',
  'convergence: the fabric delivers to an arrived guest again',
];

/** The VM's share of a 15-minute CI budget (boot, vitest start-up under TCG, the suites). */
const VM_BUDGET_S = 840;

interface Assertion {
  fullName: string;
  status: string;
  failureMessages?: string[];
}

function why(): string {
  if (process.getuid?.() !== 0) return 'needs root (QEMU reads / as root; the inner tests need root)';
  if (process.env.BRIDGEWATCH_VM === 'skip') return 'BRIDGEWATCH_VM=skip';
  const tools = ['qemu-system-x86_64', 'busybox', 'modprobe'].filter((t) => !findExecutable(t));
  if (!tools.length) return '';
  const msg = `${tools.join(', ')} not found (bash scripts/setup.sh --with-qemu installs qemu-system-x86, busybox-static, kmod)`;
  // in CI a missing tool is a failure: the matrix must not silently disappear
  if (process.env.CI === 'true') throw new Error(`kernel matrix VM: ${msg}`);
  return msg;
}
const skip = why();

/** `file:line` of the describe/it that `only` starts. */
function target(s: { file: string; only?: string }): string {
  if (!s.only) return s.file;
  const lines = readFileSync(join(PACKAGE_ROOT, s.file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.trimStart().startsWith(s.only!));
  if (i < 0) throw new Error(`${s.file}: no line starts with ${s.only} (renamed? update SUITES in test/vm/debian12.test.ts)`);
  return `${s.file}:${i + 1}`;
}

let running: number | undefined;
afterAll(() => {
  // the test timed out or failed mid-run: leave no QEMU behind
  if (running) process.kill(-running, 'SIGKILL');
});

function run(out: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [join(PACKAGE_ROOT, 'test/vm/run.sh'), '--out', out, '--timeout', String(VM_BUDGET_S), '--', ...args], {
      cwd: PACKAGE_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BRIDGEWATCH_TEST_TIME_SCALE: '10' },
      detached: true, // its own process group, so afterAll can end QEMU with it
    });
    running = child.pid;
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.on('close', (code) => {
      running = undefined;
      resolve({ code, output });
    });
  });
}

describe.skipIf(!!skip)("Debian 12's kernel (6.1) under QEMU", () => {
  it('runs the statemap, clsact, VLAN and late-join suites there, and every one that must run passes', async () => {
    const out = mkdtempSync(join(tmpdir(), 'bw-vm-'));
    const vitest = ['node', 'node_modules/vitest/vitest.mjs', 'run', ...SUITES.map(target)];
    // timeouts for Node under TCG (10-100x slower); the assertions are the same as on the host
    vitest.push('--testTimeout=300000', '--hookTimeout=300000', '--reporter=verbose', '--reporter=json', '--outputFile.json=/vm-out/results.json');
    const { code, output } = await run(out, vitest);
    const tail = `\n--- VM output (kept in ${out}) ---\n${output.slice(-20_000)}`;
    expect(output, `the VM ran Debian's 6.1 kernel${tail}`).toMatch(/bw-vm: up in [\d.]+ s, kernel 6\.1\./);
    const resultsFile = join(out, 'results.json');
    expect(existsSync(resultsFile), `the inner vitest wrote its results${tail}`).toBe(true);
    const results = JSON.parse(readFileSync(resultsFile, 'utf8')) as { testResults: { name: string; status: string; message?: string; assertionResults: Assertion[] }[] };
    const tests = results.testResults.flatMap((f) => f.assertionResults);
    const failed = tests.filter((t) => t.status === 'failed').map((t) => `${t.fullName}: ${t.failureMessages?.join('\n').slice(0, 2000)}`);
    const brokenFiles = results.testResults.filter((f) => f.status === 'failed').map((f) => `${f.name}: ${f.message ?? ''}`);
    expect([...failed, ...brokenFiles], `inner failures${tail}`).toEqual([]);
    for (const want of MUST_PASS) {
      const hits = tests.filter((t) => t.fullName.includes(want));
      expect(hits.length, `tests named "${want}" in the VM run${tail}`).toBeGreaterThan(0);
      expect(hits.filter((t) => t.status !== 'passed').map((t) => `${t.status}: ${t.fullName}`), `must run and pass on 6.1${tail}`).toEqual([]);
    }
    expect(code, `run.sh exit status${tail}`).toBe(0);
    const n = (re: RegExp) => output.match(re)?.[1] ?? '?';
    const count = (st: string) => tests.filter((t) => t.status === st).length;
    console.log(
      `kernel matrix: Debian 12 6.1 under QEMU: up in ${n(/bw-vm: up in ([\d.]+) s/)} s, suites ${n(/job exit 0 after ([\d.]+) s/)} s, ` +
        `QEMU ${n(/vm: QEMU ran ([\d.]+) s/)} s; ${count('passed')} passed, ${count('skipped') + count('pending')} skipped (tcx, kfunc: absent on 6.1)`,
    );
    rmSync(out, { recursive: true, force: true });
  }, (VM_BUDGET_S + 120) * 1000);
});
