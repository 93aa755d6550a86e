// The HTTP API under random input: seeded raw HTTP/1.x requests (odd methods, paths, query
// strings, bodies, huge headers, lying lengths) from inside the daemon's namespace. Never a 5xx,
// and the daemon still serves afterwards.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { cli, cliMissing, DaemonProcess, killAllDaemons } from '../helpers/daemon-process.js';
import { missing as kernelMissing } from '../helpers/kernel.js';
import { cleanupAll, TestNetns, tempStateDir } from '../helpers/netns.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const skip = cliMissing() || kernelMissing.bpf;
const SEED = Number(process.env.BRIDGEWATCH_FUZZ_SEED ?? 0x5eed) >>> 0;
const REQUESTS = Number(process.env.BRIDGEWATCH_FUZZ_REQUESTS ?? 3000);
const run = promisify(execFile);

afterAll(async () => {
  await killAllDaemons();
  cleanupAll();
});

describe.skipIf(!!skip)('HTTP API fuzz', () => {
  it(`${REQUESTS} random requests (seed ${SEED}): never a 5xx, still serving after`, async () => {
    const ns = new TestNetns('httpfuzz');
    ns.ip('link', 'set', 'lo', 'up');
    const d = await DaemonProcess.start(ns, ['--state-dir', tempStateDir(), '--api-token', 'fuzz-token'], { port: 9741 });
    const client = join(PACKAGE_ROOT, 'test/helpers/http-fuzz-client.mjs');
    const { stdout } = await run('ip', ['netns', 'exec', ns.name, process.execPath, client, '127.0.0.1', '9741', String(SEED), String(REQUESTS)], { timeout: 240_000 });
    const seen = JSON.parse(stdout) as Record<string, number>;
    console.log(`http fuzz, seed ${SEED}: ${stdout.trim()}`);
    const fives = Object.entries(seen).filter(([k]) => /^5/.test(k));
    expect(fives, `seed ${SEED}: ${stdout}`).toEqual([]);
    expect(seen.timeout ?? 0, `seed ${SEED}: requests that hung: ${stdout}`).toBe(0);
    // most requests got an answer, and the 4xx family was exercised
    const answered = Object.entries(seen).filter(([k]) => /^\d{3}$/.test(k)).reduce((n, [, v]) => n + v, 0);
    expect(answered).toBeGreaterThan(REQUESTS * 0.8);
    for (const code of ['400', '404']) expect(seen[code] ?? 0, `${code} in ${stdout}`).toBeGreaterThan(0);
    expect(d.running).toBe(true);
    expect(await d.get('/healthz')).toMatchObject({ status: 200 });
    expect((await d.get('/metrics')).status).toBe(200);
    const status = await cli(ns, ['status', '--url', d.url]);
    expect(status.code, status.stderr).toBe(0);
  }, 300_000);
});
