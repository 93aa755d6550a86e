// KubeVirt's launcher, as /proc/<pid>/cmdline shows it. virt-controller renders the compute
// container as `/usr/bin/virt-launcher-monitor --qemu-timeout 275s --name <vmi> --uid <vmi uid>
// --namespace <ns> ...`, and the monitor starts `virt-launcher` with the same flags. Both are Go
// (pflag): `--name x` and `--name=x` mean the same.
import { clip } from './types.js';

export const LAUNCHERS = ['virt-launcher', 'virt-launcher-monitor'] as const;

export interface LauncherArgs {
  name: string;
  uid: string;
  namespace: string;
}

const FLAGS = { name: 'name', uid: 'uid', namespace: 'namespace' } as const;
type Flag = keyof typeof FLAGS;

/** The VMI a launcher's cmdline (NUL-separated argv) names, or undefined when it is not one. */
export function parseLauncherCmdline(raw: Buffer | string): LauncherArgs | undefined {
  const argv = raw.toString('utf8').split('\0');
  if (argv.at(-1) === '') argv.pop();
  const exe = argv[0]?.split('/').pop() ?? '';
  if (!(LAUNCHERS as readonly string[]).includes(exe)) return undefined;
  const got: Partial<Record<Flag, string>> = {};
  for (let i = 1; i < argv.length; i++) {
    const m = /^--?([a-z-]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!m || !(m[1] in FLAGS)) continue;
    const value = m[2] ?? argv[i + 1];
    if (m[2] === undefined) i++;
    const flag = m[1] as Flag;
    if (value !== undefined && !(flag in got)) got[flag] = value;
  }
  if (!got.name || !got.uid) return undefined;
  return { name: clip(got.name), uid: clip(got.uid), namespace: clip(got.namespace ?? '') };
}

/** The inode of a namespace link (`net:[4026531992]`). */
export function nsInode(link: string): number | undefined {
  const m = /^[a-z_]+:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}
