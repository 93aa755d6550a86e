// A process whose /proc/<pid>/cmdline reads like KubeVirt's launcher
// (`virt-launcher-monitor --qemu-timeout 275s --name <vmi> --uid <uid> --namespace <ns> ...`),
// optionally inside a test namespace and as another user: `exec -a` sets argv[0] of a bash
// that keeps the flags as its own arguments and waits on a sleep. Its own process group, so
// stop() (and stopAllLaunchers() after a failure) leaves no sleep behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestNetns } from './netns.js';

export interface LauncherSpec {
  name: string;
  uid: string;
  namespace: string;
  /** argv[0]: virt-launcher-monitor (default) or virt-launcher */
  exe?: string;
  ns?: TestNetns;
  /** run as this uid and gid (setpriv), as KubeVirt's non-root launchers do */
  user?: number;
}

const live = new Set<FakeLauncher>();

export class FakeLauncher {
  readonly child: ChildProcess;
  private exited = false;

  private constructor(readonly spec: LauncherSpec) {
    const args = ['--qemu-timeout', '275s', '--name', spec.name, '--uid', spec.uid, '--namespace', spec.namespace, '--run-as-nonroot'];
    const script = `exec -a ${spec.exe ?? 'virt-launcher-monitor'} bash -c 'sleep 600; :' launcher ${args.map((a) => `'${a}'`).join(' ')}`;
    let argv = ['bash', '-c', script];
    if (spec.user !== undefined) argv = ['setpriv', `--reuid=${spec.user}`, `--regid=${spec.user}`, '--clear-groups', ...argv];
    if (spec.ns) argv = ['ip', 'netns', 'exec', spec.ns.name, ...argv];
    // every step execs the next (ip netns exec, setpriv, exec -a): the child's pid is the launcher's
    this.child = spawn(argv[0], argv.slice(1), { stdio: 'ignore', detached: true });
    this.child.once('exit', () => (this.exited = true));
    live.add(this);
  }

  static async start(spec: LauncherSpec): Promise<FakeLauncher> {
    const l = new FakeLauncher(spec);
    const end = Date.now() + 5000;
    // ready once it has exec'd and its sleep child has too (a child between fork and exec
    // shows its parent's cmdline, and would be seen as a second launcher)
    while (!l.cmdline().startsWith(`${spec.exe ?? 'virt-launcher-monitor'}\0`) || !l.sleeping()) {
      if (l.exited || Date.now() > end) throw new Error(`fake launcher ${spec.name} did not start (cmdline ${JSON.stringify(l.cmdline())})`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return l;
  }

  get pid(): number {
    return this.child.pid!;
  }

  private sleeping(): boolean {
    try {
      const kids = readFileSync(`/proc/${this.pid}/task/${this.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      return kids.length > 0 && kids.every((k) => readFileSync(`/proc/${k}/cmdline`, 'utf8').startsWith('sleep\0'));
    } catch {
      return false;
    }
  }

  /** /proc/<pid>/cmdline as the kernel shows it ('' once gone) */
  cmdline(): string {
    try {
      return readFileSync(`/proc/${this.pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    live.delete(this);
    if (this.exited) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    try {
      process.kill(-this.pid, 'SIGKILL'); // bash and its sleep
    } catch {
      // already gone
    }
    await gone;
  }
}

export async function stopAllLaunchers(): Promise<void> {
  await Promise.all([...live].map((l) => l.stop()));
}
