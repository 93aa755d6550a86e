#!/usr/bin/env node
// Entry point; the build (scripts/setup.sh) produces dist/.
import('../dist/src/main.js').catch((e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('bridgewatch: not built yet; run: bash scripts/setup.sh');
    process.exit(1);
  }
  throw e;
});
