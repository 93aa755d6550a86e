// Where the package lives, whether we run from src/ (vitest) or dist/src/ (built).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'bridgewatch') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('find package root: no bridgewatch package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();
export const VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;
export const BPF_OBJECT = process.env.BRIDGEWATCH_BPF_OBJECT ?? join(PACKAGE_ROOT, 'dist/bpf/bridgewatch.bpf.o');
/** the build for kernels before 6.3: port states from a map kept by user space */
export const BPF_OBJECT_STATEMAP = join(PACKAGE_ROOT, 'dist/bpf/bridgewatch-statemap.bpf.o');
