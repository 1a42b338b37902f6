/**
 * --runtime runc and --runtime crun (through the runc command line, under berth-monitor when
 * detached): foreground, -d, logs, exec, attach, stop (the stop signal first), wait, rm, --rm.
 * crun refuses hybrid cgroup hosts unless run as runtime-command.ts runs it.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));
const TRAP = 'trap "echo got-term; exit 5" TERM; echo ready; while :; do sleep 0.1; done';

for (const runtime of ['runc', 'crun']) {
  describe(`--runtime ${runtime}`, { skip: needs || skipUnless(peer(runtime, runtime)) }, () => {
    let e: EngineRoot;
    before(async () => { e = await engineRoot(); });
    after(async () => { await e.close(); });
    const run = (...args: string[]) => e.berth(['run', '--runtime', runtime, '--network', 'none', ...args]);
    const stateDir = () => join(e.root, 'runtimes', runtime);

    it('foreground: output apart, the exit status, the default seccomp filter', async () => {
      const r = await run('--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; grep ^Seccomp: /proc/self/status; exit 3');
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, 'out\nSeccomp:\t2\n');
      assert.equal(r.stderr, 'err\n');
      assert.equal((await run('--rm', 'busybox', 'true')).code, 0);
    });

    it('-d: logs, exec, stop (the stop signal, then the status), wait, rm', async () => {
      const d = await run('-d', '--name', 'bg', 'busybox', 'sh', '-c', TRAP);
      assert.equal(d.code, 0, d.stderr);
      const until = Date.now() + 10_000;
      while (!(await e.berth(['logs', 'bg'])).stdout.includes('ready') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      assert.equal((await e.berth(['exec', 'bg', 'echo', `exec-${runtime}`])).stdout, `exec-${runtime}\n`);
      assert.equal((await e.berth(['inspect', 'bg'])).stdout.includes('"Running": true'), true);
      assert.equal((await e.berth(['stop', '-t', '10', 'bg'])).code, 0);
      assert.equal((await e.berth(['wait', 'bg'])).stdout, '5\n');
      assert.equal((await e.berth(['logs', 'bg'])).stdout, 'ready\ngot-term\n');
      assert.equal((await e.berth(['rm', 'bg'])).code, 0);
      assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
      assert.deepEqual(existsSync(stateDir()) ? readdirSync(stateDir()) : [], [], 'the runtime\'s state is gone');
    });

    it('kill -s, rm -f of a running container, -d --rm, run -di with attach', async () => {
      assert.equal((await run('-d', '--name', 'k', 'busybox', 'sh', '-c', TRAP)).code, 0);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal((await e.berth(['kill', '-s', 'TERM', 'k'])).code, 0);
      assert.equal((await e.berth(['wait', 'k'])).stdout, '5\n');
      assert.equal((await run('-d', '--name', 'f', 'busybox', 'sleep', '60')).code, 0);
      assert.equal((await e.berth(['rm', '-f', 'f'])).code, 0);
      assert.equal((await run('-d', '--rm', 'busybox', 'sh', '-c', 'sleep 0.2')).code, 0);
      assert.equal((await run('-di', '--name', 'in', 'busybox', 'sh', '-c', 'read x; echo got:$x; exit 4')).code, 0);
      await new Promise((r) => setTimeout(r, 300));
      const a = await e.berth(['attach', 'in'], 'line\n');
      assert.equal(a.code, 4, a.stderr);
      assert.equal(a.stdout, 'got:line\n');
      await e.berth(['rm', 'k', 'in']);
      const until = Date.now() + 10_000;
      while ((await e.berth(['ps', '-aq'])).stdout !== '' && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
      assert.equal((await e.berth(['ps', '-aq'])).stdout, '', 'the --rm container removed itself');
    });
  });
}
