#!/usr/bin/env -S node --
// (`--`: Node 20 reads a later --env-file as its own, nodejs/node#54232: `berth run --env-file F`.)
// npm's bin entry for berth, in CommonJS (an ES module entry costs ~10 ms more per start):
// runs the bundled CLI (dist/berth.cjs, made by scripts/bundle-cli.mjs: one CommonJS file with
// a V8 code cache) and falls back to tsc's module graph when the bundle has not been built.
'use strict';
try {
  require('../dist/berth.cjs');
} catch (err) {
  // Only the bundle itself missing, not a module it requires.
  if (err?.code !== 'MODULE_NOT_FOUND' || !String(err.message).split('\n')[0].includes('berth.cjs')) throw err;
  import('../dist/src/cli/berth.js');
}
