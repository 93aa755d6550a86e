#!/usr/bin/env node
// Entry point; scripts/setup.sh builds dist/.
import v8 from 'node:v8';

// The daemon: V8's young generation stays at its initial 1 MiB semi-spaces instead of growing
// to 16 MiB ones (32 MiB more RSS for a process that allocates little, mostly per scrape),
// and the old generation may grow to 1.3x what a full GC left live instead of up to 4x (the
// garbage of each scrape no longer piles up until V8's idle memory reducer runs); see
// bench/README.md (rss.*). Set before anything is allocated; a semi-space or heap-growing
// flag on the command line or in NODE_OPTIONS wins. (--max-semi-space-size works only as a
// node flag; these two are read when a space would grow, so they can be set from here.)
// BRIDGEWATCH_V8_DEFAULTS=1 leaves V8's own sizing (the bench compares the two).
if (process.argv[2] === 'run' && process.env.BRIDGEWATCH_V8_DEFAULTS !== '1') {
  const given = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  if (!/semi-space/.test(given)) v8.setFlagsFromString('--semi-space-growth-factor=1');
  if (!/heap-growing/.test(given)) v8.setFlagsFromString('--heap-growing-percent=30');
}
let cli;
try {
  cli = await import('../dist/src/cli.js');
} catch (e) {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('bridgewatch: not built yet; run: bash scripts/setup.sh');
    process.exit(1);
  }
  throw e;
}
process.exit(await cli.runCli(process.argv.slice(2)));
