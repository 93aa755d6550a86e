#!/usr/bin/env node
// Entry point; scripts/setup.sh builds dist/.
import v8 from 'node:v8';

// The daemon: V8's young generation stays at its initial 1 MiB semi-spaces instead of growing
// to 16 MiB ones (32 MiB more RSS for a process that allocates little, mostly per scrape);
// see bench/README.md (rss.*). Set before anything is allocated; a semi-space flag on the
// command line or in NODE_OPTIONS wins. (--max-semi-space-size only works as a node flag;
// the growth factor is read when the space would grow, so it can be set from here.)
if (process.argv[2] === 'run' && !/semi-space/.test(`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`))
  v8.setFlagsFromString('--semi-space-growth-factor=1');
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
