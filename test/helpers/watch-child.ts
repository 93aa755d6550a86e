// Runs a PortWatcher in a plain node child process, to see whether that process can exit.
// The watcher is compiled with tsc into node_modules/.cache so 'netlink' and 'koffi' resolve.
import { execFileSync, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CHILD = `import { PortWatcher } from './ports/watcher.js';
import { defaultRules } from './ports/match.js';
const w = new PortWatcher({ rules: defaultRules() });
await w.start();
console.log('started');
if (process.argv[2] === 'stop') w.stop();
`;

export interface ChildResult {
  exited: boolean;
  code: number | null;
  out: string;
}

/** Compile the watcher once; returns the directory and a cleanup. */
export function buildWatcherChild(): { dir: string; remove: () => void } {
  const dir = join(process.cwd(), 'node_modules', '.cache', `bwt-watch-${process.pid}`);
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync(
      'npx',
      ['tsc', '--outDir', dir, '--rootDir', 'src', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
        '--skipLibCheck', '--noCheck', '--types', 'node', 'src/ports/watcher.ts', 'src/ports/match.ts'],
      { stdio: 'pipe' },
    );
    // under node_modules there is no package scope: say ESM explicitly
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(join(dir, 'child.js'), CHILD);
  } catch (e) {
    remove();
    throw e;
  }
  return { dir, remove };
}

/** Start a watcher in `ns` in a child; 'stop' stops it after start. Killed after `ms`. */
export function runWatcherChild(dir: string, ns: string, mode: 'stop' | 'keep', ms = 3000): Promise<ChildResult> {
  return new Promise((resolve) => {
    // ip netns exec execs node in place: the pid we kill is node's
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, join(dir, 'child.js'), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve({ exited: false, code: null, out });
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ exited: true, code, out });
    });
  });
}
