// One bridgewatch per network namespace: the lock is per netns, refuses a second holder with a
// message naming the cause, and is free again once released (or its process dies: the e2e tests).
import { afterEach, describe, expect, it } from 'vitest';
import { lockNetns } from '../../src/sys/netns-lock.js';
import { cleanupAll, TestNetns } from '../helpers/netns.js';

afterEach(() => cleanupAll());

describe('lockNetns', () => {
  it('refuses a second holder in the same namespace, not in another, and is free after release', (ctx) => {
    if (process.getuid?.() !== 0) ctx.skip('needs root (network namespaces)');
    const a = new TestNetns('lock');
    const b = new TestNetns('lock');
    const name = `bwt-lock-${process.pid}`;
    const release = a.run(() => lockNetns(name));
    expect(() => a.run(() => lockNetns(name))).toThrow(
      expect.objectContaining({ code: 'EKERNEL', errno: 98, message: `lock network namespace: another bridgewatch runs in this network namespace (EADDRINUSE on @${name})` }),
    );
    const other = b.run(() => lockNetns(name)); // abstract names are per namespace
    release();
    release(); // idempotent
    const again = a.run(() => lockNetns(name));
    again();
    other();
  });
});
