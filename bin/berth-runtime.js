#!/usr/bin/env node
// npm's bin entry for berth-runtime: hands over to the native front end, which runs
// start/state/kill/delete itself and the bundled TypeScript CLI for everything else.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const front = join(import.meta.dirname, '..', 'native', 'build', 'berth-runtime');
const r = spawnSync(front, process.argv.slice(2), { stdio: 'inherit' });
if (r.error) {
  process.stderr.write(`berth-runtime: cannot run ${front}: ${r.error.message}; build it with \`make -C native\`\n`);
  process.exit(1);
}
process.exit(r.status ?? (r.signal ? 128 : 1));
