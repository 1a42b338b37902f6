/**
 * berth attach, run -di and start -ai, as docker's: through the attach socket each detached
 * container's monitor serves; with -t through a real terminal (tmux), detach keys included.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { BERTH_BIN } from '../helpers/run-berth.js';

const needs = skipUnless(root('containers need root'), peer(BUSYBOX, 'busybox-static'));
const ECHO_LOOP = 'while read l; do echo "out:$l"; echo "err:$l" >&2; [ "$l" = quit ] && exit 3; done';

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 15_000, seen?: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${seen ? `; the terminal shows:\n${seen()}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('berth attach', { skip: needs }, () => {
  let e: EngineRoot;
  before(async () => { e = await engineRoot(); });
  after(async () => { await e.close(); });

  const status = async (name: string) => JSON.parse((await e.berth(['inspect', name])).stdout)[0].State.Status as string;

  it('run -di keeps stdin open; attach passes input, stdout and stderr apart, and the exit status', async () => {
    const run = await e.berth(['run', '-di', '--network', 'none', '--name', 'loop', 'busybox', 'sh', '-c', ECHO_LOOP]);
    assert.equal(run.code, 0, run.stderr);
    // Without an open stdin `read` would see EOF at once and the container would be gone.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await status('loop'), 'running');
    const r = await e.berth(['attach', 'loop'], 'hello\nquit\n');
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, 'out:hello\nout:quit\n');
    assert.equal(r.stderr, 'err:hello\nerr:quit\n');
    assert.equal(await status('loop'), 'exited');
    // What was printed is in the log too, and a stopped container cannot be attached to.
    assert.match((await e.berth(['logs', 'loop'])).stdout, /out:hello\nout:quit\n/);
    const stopped = await e.berth(['attach', 'loop']);
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stderr, /not running; start it first/);
  });

  it('--no-stdin passes only the output; --sig-proxy passes our signals to the container (=false does not)', async () => {
    const script = 'trap "echo got-term; exit 4" TERM; while :; do echo tick; sleep 0.2; done';
    assert.equal((await e.berth(['run', '-di', '--network', 'none', '--name', 'sig', 'busybox', 'sh', '-c', script])).code, 0);
    const attachOnce = (args: string[]) => {
      const child = spawn(process.execPath, [BERTH_BIN, 'attach', ...args, 'sig'], { env: e.env, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number>((res) => child.on('exit', (c, s) => res(c ?? (s ? -1 : 0))));
      return { child, exited, out: () => out };
    };
    // --sig-proxy=false: the signal ends the client only; the container keeps running.
    const quiet = attachOnce(['--no-stdin', '--sig-proxy=false']);
    await new Promise((r) => setTimeout(r, 1000));
    quiet.child.kill('SIGTERM');
    await quiet.exited;
    assert.equal(await status('sig'), 'running');
    const a = attachOnce(['--no-stdin']);
    a.child.stdin.end('ignored\n');
    // Sent once output flows through the client (its signal handlers are on by then): earlier,
    // the signal could end a client still starting (seen under load).
    await until('output through attach', () => a.out().includes('tick\n'));
    a.child.kill('SIGTERM');
    assert.equal(await a.exited, 4);
    assert.match(a.out(), /^(tick\n)+got-term\n$/);
    assert.equal(await status('sig'), 'exited');
  });

  it('start -ai gives the container our input and its whole output (nothing printed before we connect is lost)', async () => {
    assert.equal((await e.berth(['create', '-i', '--network', 'none', '--name', 'once', 'busybox', 'sh', '-c', 'echo first; read x; echo got:$x; echo e >&2; exit 6'])).code, 0);
    const r = await e.berth(['start', '-ai', 'once'], 'abc\n');
    assert.equal(r.code, 6, r.stderr);
    assert.equal(r.stdout, 'first\ngot:abc\n');
    assert.equal(r.stderr, 'e\n');
    // -a without -i: output only, the status passes through.
    assert.equal((await e.berth(['create', '--network', 'none', '--name', 'early', 'busybox', 'sh', '-c', 'echo early; exit 2'])).code, 0);
    const s = await e.berth(['start', '-a', 'early']);
    assert.equal(s.code, 2);
    assert.equal(s.stdout, 'early\n');
  });

  it('stdin larger than a pipe passes whole (sha256 as the host\'s) through run -i, run -di + attach, start -ai and exec -i', async () => {
    const data = randomBytes(1_000_000);
    const want = `${createHash('sha256').update(data).digest('hex')}  -\n`;
    const fg = await e.berth(['run', '-i', '--rm', '--network', 'none', 'busybox', 'sha256sum'], data, 30_000);
    assert.equal(fg.stdout, want, fg.stderr);
    assert.equal((await e.berth(['run', '-di', '--network', 'none', '--name', 'big-di', 'busybox', 'sh', '-c', 'head -c 1000000 | sha256sum'])).code, 0);
    const di = await e.berth(['attach', 'big-di'], data, 30_000);
    assert.equal(di.code, 0, di.stderr);
    assert.equal((await e.berth(['logs', 'big-di'])).stdout, want);
    assert.equal((await e.berth(['create', '-i', '--network', 'none', '--name', 'big-ai', 'busybox', 'sha256sum'])).code, 0);
    const ai = await e.berth(['start', '-ai', 'big-ai'], data, 30_000);
    assert.equal(ai.stdout, want, ai.stderr);
    assert.equal((await e.berth(['run', '-d', '--network', 'none', '--name', 'big-exec', 'busybox', 'sleep', '60'])).code, 0);
    const ex = await e.berth(['exec', '-i', 'big-exec', 'sha256sum'], data, 30_000);
    assert.equal(ex.stdout, want, ex.stderr);
    // A command that never reads its input does not hold berth up (docker: the copy stops at its exit).
    const unread = await e.berth(['exec', '-i', 'big-exec', 'true'], data, 30_000);
    assert.equal(unread.code, 0, unread.stderr);
    const unreadRun = await e.berth(['run', '-i', '--rm', '--network', 'none', 'busybox', 'true'], data, 30_000);
    assert.equal(unreadRun.code, 0, unreadRun.stderr);
  });

  it('attach: input the container does not read yet waits in the monitor, whose output and log still flow (no deadlock on a full pipe)', async () => {
    // The container writes 300 kB (more than its output pipe holds) before it reads any input:
    // a monitor blocked writing our 1 MB into the full stdin pipe would never read that output.
    const script = 'read first; head -c 300000 /dev/zero | tr "\\0" x; echo; head -c 1000000 | sha256sum';
    assert.equal((await e.berth(['run', '-di', '--network', 'none', '--name', 'late-reader', 'busybox', 'sh', '-c', script])).code, 0);
    const data = randomBytes(1_000_000);
    const r = await e.berth(['attach', 'late-reader'], Buffer.concat([Buffer.from('go\n'), data]), 30_000);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${'x'.repeat(300_000)}\n${createHash('sha256').update(data).digest('hex')}  -\n`);
    // A container that never reads: attaching with much input neither blocks its output nor outlives it.
    assert.equal((await e.berth(['run', '-di', '--network', 'none', '--name', 'non-reader', 'busybox', 'sh', '-c', 'read first; for i in 1 2 3 4 5; do echo tick$i; sleep 0.3; done'])).code, 0);
    const started = Date.now();
    const n = await e.berth(['attach', 'non-reader'], Buffer.concat([Buffer.from('go\n'), data, data]), 30_000);
    assert.equal(n.code, 0, n.stderr);
    assert.equal(n.stdout, 'tick1\ntick2\ntick3\ntick4\ntick5\n');
    assert.ok(Date.now() - started < 15_000);
  });

  it('-it: attach in a real terminal gets its size, and ctrl-p ctrl-q detaches leaving the container running', { skip: skipUnless(peer('tmux', 'tmux')) }, async () => {
    assert.equal((await e.berth(['run', '-dit', '--network', 'none', '--name', 'term', 'busybox', 'sh'])).code, 0);
    const tmux = (...args: string[]) => spawnSync('tmux', ['-L', `berth-attach-${process.pid}`, ...args], { env: e.env, encoding: 'utf8' });
    try {
      const started = tmux('new-session', '-d', '-x', '100', '-y', '30', `${process.execPath} ${BERTH_BIN} attach term; echo DETACHED-$?; exec sh`);
      assert.equal(started.status, 0, started.stderr);
      const pane = () => tmux('capture-pane', '-p').stdout;
      await new Promise((r) => setTimeout(r, 1500));
      tmux('send-keys', 'stty size; echo hi-$((40+2))', 'Enter');
      await until('the command\'s output', () => /hi-42/.test(pane()), 30_000, pane);
      assert.match(pane(), /30 100/);
      tmux('send-keys', 'C-p', 'C-q');
      await until('the detach', () => /DETACHED-0/.test(pane()), 30_000, pane);
      assert.equal(await status('term'), 'running');
      // Attach again: the same shell, still there; `exit 9` ends it and its status is the client's.
      tmux('send-keys', `${process.execPath} ${BERTH_BIN} attach term; echo ENDED-$?`, 'Enter');
      await new Promise((r) => setTimeout(r, 1500));
      tmux('send-keys', 'exit 9', 'Enter');
      await until('the container\'s exit', () => /ENDED-9/.test(pane()), 30_000, pane);
      assert.equal(await status('term'), 'exited');
      // run -it detaches the same way (its size is the terminal's from the start); --rm waits for the exit.
      tmux('send-keys', 'clear', 'Enter');
      tmux('send-keys', `${process.execPath} ${BERTH_BIN} run -it --rm --network none --name fg busybox sh -c 'stty size; read x; echo never'; echo RUN-$?`, 'Enter');
      await until('the foreground container\'s output', () => /^30 100\s*$/m.test(pane()), 30_000, pane);
      tmux('send-keys', 'C-p', 'C-q');
      await until('the detach', () => /RUN-0/.test(pane()), 30_000, pane);
      assert.equal(await status('fg'), 'running');
      assert.equal((await e.berth(['rm', '-f', 'fg'])).code, 0);
    } finally {
      tmux('kill-server');
    }
  });
});
