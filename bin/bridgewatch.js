#!/usr/bin/env node
// Entry point; scripts/setup.sh builds dist/.
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
