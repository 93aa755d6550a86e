// Running `bridgewatch lab` as a user would (the real CLI), and finding what it left behind.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DIR } from '../../src/lab/daemon.js';
import { ALL_NS } from '../../src/lab/topology.js';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { missing as kernelMissing } from './kernel.js';

const BIN = join(PACKAGE_ROOT, 'bin/bridgewatch.js');

/** Why the lab cannot run here, or '' when it can. */
export const labSkip =
  process.getuid?.() !== 0
    ? 'needs root (network namespaces, taps, raw sockets)'
    : !existsSync(join(PACKAGE_ROOT, 'dist/src/lab/lab.js'))
      ? 'dist/ not built: run bash scripts/setup.sh'
      : (kernelMissing.bpf ?? kernelMissing.tun ?? kernelMissing.bridge ?? kernelMissing.bridgeBtf ?? '');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function lab(args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'lab', ...args], { cwd: PACKAGE_ROOT, env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Whatever of the lab still exists: namespaces, the state dir, processes started for it. */
export function leftovers(): string[] {
  const out = ALL_NS.filter((n) => existsSync(`/run/netns/${n}`)).map((n) => `netns ${n}`);
  if (existsSync(LAB_DIR)) out.push(LAB_DIR);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // exited meanwhile
    }
    if (cmd.includes(LAB_DIR) || /^bridge -n bwlab-/.test(cmd)) out.push(`process ${pid}: ${cmd.trim()}`);
  }
  return out;
}

export const why = (r: Run): string => `exit ${r.code}\nstderr:\n${r.stderr.slice(-3000)}`;
