// Only stdio reaches the container process: descriptors the runtime's caller left open (a
// shell's, a CI harness's) must not be usable inside it (berth-runtime refuses --preserve-fds).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { FRONT, Runtime } from './runtime-cli.js';

describe('inherited file descriptors (root)', { skip: skipUnless(root('containers'), peer('/bin/busybox', 'busybox-static')) }, () => {
  let rt: Runtime;
  let bundle: Bundle;
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(['/bin/ls', '/proc/self/fd']);
    bundle.save();
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
  });

  it('run: the process sees 0, 1, 2 and its own, none of the caller\'s others', () => {
    const out = join(bundle.dir, 'out');
    const outFd = openSync(out, 'w');
    try {
      // A shell opens fds 7 and 200 without close-on-exec, as an engine's caller may, then becomes
      // berth-runtime: both are open in it when it starts.
      const r = spawnSync('/bin/bash', ['-c', 'exec 7</etc/hostname 200>>"$1.extra"; shift; exec "$@"', 'bash', out, FRONT, '--root', rt.root, 'run', '--bundle', bundle.dir, 'fds1'],
        { stdio: ['ignore', outFd, 'pipe'], timeout: 60_000, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    } finally {
      closeSync(outFd);
    }
    const fds = readFileSync(out, 'utf8').split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
    // ls opens /proc/self/fd itself: one more descriptor, the lowest free one (3).
    assert.deepEqual(fds, [0, 1, 2, 3], `descriptors inside the container: ${fds.join(' ')}`);
  });
});
