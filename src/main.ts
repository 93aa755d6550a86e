// The one entry that listens and handles signals. `bridgewatch run` lands in runDaemon().
import { pino } from 'pino';
import { loadConfig } from './config.js';
import { BridgewatchError } from './errors.js';
import { Daemon } from './daemon.js';
import { buildServer } from './http/server.js';

const STOP_DEADLINE_MS = 5000;
const CLOSE_GRACE_MS = 1500;

export async function runDaemon(flags: Record<string, string | boolean>): Promise<number> {
  const config = loadConfig({ flags, env: process.env }); // throws ECONFIG -> exit 2
  const log = pino({ level: config.logLevel, base: { name: 'bridgewatch' } });
  const daemon = new Daemon({ config, log });
  const app = buildServer({ ...daemon.httpDeps(), logger: log.child({ component: 'http' }) });

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    stopping ??= (async () => {
      log.info({ signal }, 'stopping');
      const deadline = setTimeout(() => {
        log.error('stop took longer than 5 s; releasing BPF and exiting');
        daemon.bpf?.close(); // never leave a filter behind, even on this path
        process.exit(1);
      }, STOP_DEADLINE_MS);
      deadline.unref();
      // a slow client must not hold the cleanup: give in-flight requests a moment, no more
      await Promise.race([app.close().catch(() => undefined), new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
      await daemon.stop();
      clearTimeout(deadline);
      log.info('stopped');
    })();
    return stopping;
  };
  const done = new Promise<number>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => void stop(sig).then(() => resolve(0)));
  });

  try {
    await daemon.start();
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (e) {
    log.error({ err: (e as Error).message }, 'start failed');
    await daemon.stop().catch(() => undefined);
    await app.close().catch(() => undefined);
    if (e instanceof BridgewatchError) throw e;
    // e.g. EADDRINUSE: one line for the operator, not a stack trace
    throw new BridgewatchError('EKERNEL', `start on ${config.listen.host}:${config.listen.port}: ${(e as Error).message}`);
  }
  return done;
}
