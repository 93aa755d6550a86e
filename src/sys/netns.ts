// Network namespaces for tests and the lab. setns() moves only the calling (main) thread, which
// is where every koffi call and child_process spawn of ours happens.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { BridgewatchError } from '../errors.js';
import { c, CLONE_NEWNET, errno, O_CLOEXEC, strerror } from './libc.js';

export const netnsExists = (name: string): boolean => existsSync(`/run/netns/${name}`);

export function addNetns(name: string): void {
  execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
  execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { stdio: 'pipe' });
}

export function delNetns(name: string): void {
  if (netnsExists(name)) execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
}

function openNs(path: string): number {
  const fd = c.open(path, O_CLOEXEC) as number;
  if (fd < 0) throw new BridgewatchError('EKERNEL', `open ${path}: ${strerror(errno())}`);
  return fd;
}

function setns(fd: number, what: string): void {
  if ((c.setns(fd, CLONE_NEWNET) as number) < 0) throw new BridgewatchError('EKERNEL', `enter ${what}: ${strerror(errno())}`);
}

/** Move the main thread into netns `name`; returns a function that moves it back. */
export function enterNetns(name: string): () => void {
  const home = openNs('/proc/thread-self/ns/net');
  const target = openNs(`/run/netns/${name}`);
  try {
    setns(target, `netns ${name}`);
  } finally {
    c.close(target);
  }
  return () => {
    try {
      setns(home, 'original netns');
    } finally {
      c.close(home);
    }
  };
}

/** Run fn inside netns `name` (synchronously: async work would leave the namespace). */
export function inNetns<T>(name: string, fn: () => T): T {
  const leave = enterNetns(name);
  try {
    return fn();
  } finally {
    leave();
  }
}

/** `ip` inside a namespace, throwing with ip's own message. */
export function ip(ns: string | null, ...args: string[]): string {
  const argv = ns ? ['-n', ns, ...args] : args;
  try {
    return execFileSync('ip', argv, { stdio: 'pipe', encoding: 'utf8' });
  } catch (e) {
    const err = e as { stderr?: string };
    throw new BridgewatchError('EKERNEL', `ip ${argv.join(' ')}: ${(err.stderr ?? String(e)).trim()}`);
  }
}
