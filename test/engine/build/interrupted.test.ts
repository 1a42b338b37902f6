/**
 * `berth build` killed with SIGKILL mid-RUN and mid-COPY: `berth system check` names what it
 * left (its scratch directory with the stages' overlay views mounted, the RUN's container, the
 * step image's tag, a half-written layer's temporary file) and --repair removes it; the next
 * `berth build` removes it too and builds; nothing half-written is used. The RUN's process does
 * not outlive the build: its monitor kills it when the build dies.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX } from '../../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../../helpers/engine.js';
import { peer, root, skipUnless } from '../../helpers/requirements.js';
import { BERTH_BIN, runBerth } from '../../helpers/run-berth.js';

interface Problem {
  problem: string;
  path?: string;
  severity: string;
  repaired?: boolean;
}

/** Mount points under `prefix` (this namespace). */
function mountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(prefix));
}

/** The scratch directories build `pid` made in `tmp`. */
function scratchOf(tmp: string, pid: number): string[] {
  return readdirSync(tmp).filter((n) => n.startsWith(`berth-build-${pid}-`) || n.startsWith(`berth-run-step-${pid}-`)).map((n) => join(tmp, n));
}

describe('a killed berth build', { skip: skipUnless(root('RUN steps run in containers'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let e: EngineRoot;
  let work = '';
  let ctx = '';
  // The builds' own temp dir: other builds on this machine sweep theirs, not this one.
  let tmp = '';
  let env: NodeJS.ProcessEnv = {};
  before(async () => {
    e = await engineRoot();
    work = join(tmpdir(), `berth-killed-build-${randomBytes(6).toString('hex')}`);
    ctx = join(work, 'ctx');
    tmp = join(work, 'tmp');
    await mkdir(ctx, { recursive: true });
    await mkdir(tmp);
    env = { ...e.env, TMPDIR: tmp };
    // Random bytes: gzip cannot shrink them, so the COPY's layer takes seconds to write.
    await writeFile(join(ctx, 'big'), randomBytes(48 << 20));
    await writeFile(join(ctx, 'small'), 'small\n');
  });
  after(async () => {
    await e?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Starts `berth build`, waits until its output has `line` and `ready()` holds (or 60 s), then kills it with SIGKILL. */
  async function killBuildAt(dockerfile: string, line: string, ready: () => boolean, delayMs: number): Promise<number> {
    await writeFile(join(ctx, 'Dockerfile'), dockerfile);
    const child = spawn(process.execPath, [BERTH_BIN, 'build', '-t', 'localhost/killed:1', ctx], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const deadline = Date.now() + 60_000;
    while (!(log.includes(line) && ready())) {
      assert.ok(Date.now() < deadline, `the build never reached ${line}: ${log}`);
      assert.equal(child.exitCode, null, `the build ended before it was killed: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, delayMs));
    assert.equal(child.exitCode, null, `the build ended before it was killed: ${log}`);
    child.kill('SIGKILL');
    await exited;
    return child.pid!;
  }

  async function check(...args: string[]): Promise<Problem[]> {
    const r = await runBerth(['system', 'check', '--format', 'json', ...args], env);
    return (JSON.parse(r.stdout) as { problems: Problem[] }).problems;
  }

  async function buildsAgain(dockerfile: string): Promise<void> {
    await writeFile(join(ctx, 'Dockerfile'), dockerfile);
    const r = await runBerth(['build', '-q', '-t', 'localhost/killed:1', ctx], env);
    assert.equal(r.code, 0, r.stderr);
    const run = await e.berth(['run', '--rm', '--network', 'none', 'localhost/killed:1', 'sh', '-c', 'cat /small; sha256sum /big | cut -c1-16']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^small\n[0-9a-f]{16}\n$/);
  }

  it('mid-RUN: the step container, views and tag are reported by system check; the next build removes them and builds', async () => {
    const containers = join(e.root, 'containers');
    const dockerfile = 'FROM busybox\nCOPY small /small\nRUN cat /small > /copy\nCOPY big /big\nRUN echo started && sleep 600\n';
    const pid = await killBuildAt(dockerfile, 'sleep 600', () => mountsUnder(containers).length > 0, 300);
    assert.ok(mountsUnder(containers).length > 0, "the RUN's container root is still mounted");
    // Its process ends with the build (no command run since): the monitor saw its parent die,
    // killed it and recorded the exit once it had reaped it.
    const state = async () => (await e.berth(['ps', '-a', '--filter', `label=io.berth.build.pid=${pid}`, '--format', '{{.State}}'])).stdout.trim();
    const until = Date.now() + 15_000;
    while ((await state()) !== 'exited' && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await state(), 'exited', "the RUN's container exited with the build");
    const scratch = scratchOf(tmp, pid);
    assert.ok(scratch.length > 0, 'the killed build left its scratch directories');
    assert.ok(scratch.some((d) => mountsUnder(`${d}/`).length > 0), 'with its stage views mounted');

    const found = (await check()).filter((p) => /build that was killed/.test(p.problem));
    assert.ok(found.some((p) => /container of its RUN step/.test(p.problem)), JSON.stringify(found));
    assert.ok(found.some((p) => /scratch directory/.test(p.problem) && scratch.includes(p.path!)), JSON.stringify(found));
    assert.ok(found.some((p) => /step image tag/.test(p.problem)), JSON.stringify(found));
    assert.ok(found.every((p) => p.severity === 'warning' && !p.repaired));

    // The next build sweeps it all, then builds (the RUN no longer sleeps).
    await buildsAgain('FROM busybox\nCOPY small /small\nRUN cat /small > /copy\nCOPY big /big\nRUN echo started\n');
    for (const d of scratch) {
      assert.deepEqual(mountsUnder(`${d}/`), [], `nothing mounted under ${d}`);
      assert.ok(!existsSync(d), `${d} removed`);
    }
    assert.deepEqual(mountsUnder(containers), [], 'no container root mounted');
    assert.deepEqual((await check()).filter((p) => /build that was killed/.test(p.problem)), []);
    const ps = await e.berth(['ps', '-a', '-q']);
    assert.equal(ps.stdout.trim(), '', 'the step container is gone');
  });

  it('mid-COPY: no half-written layer is used; system check --repair removes the temporary blob and the scratch', async () => {
    // A COPY of a file not built before (a new name: not in the build cache).
    await writeFile(join(ctx, 'big2'), randomBytes(48 << 20));
    const dockerfile = 'FROM busybox\nCOPY small /small\nCOPY big2 /big\n';
    const pid = await killBuildAt(dockerfile, 'COPY big2', () => true, 700);
    const scratch = scratchOf(tmp, pid);
    assert.ok(scratch.length > 0, 'the killed build left its scratch directory');
    const before = await check();
    assert.ok(before.some((p) => /build that was killed/.test(p.problem)), JSON.stringify(before));
    // The layer being written is a temporary file beside the blobs, never a blob (blobs are
    // renamed into place once verified). Layout gc leaves temporary files younger than 10
    // minutes (a writer may still be at work: their names carry no pid): age them past that.
    const temps = before.filter((p) => /stray temporary file/.test(p.problem)).map((p) => join(e.root, 'images', p.path!));
    assert.ok(temps.length > 0, `the half-written layer is a temporary file: ${JSON.stringify(before)}`);
    const early = await check('--repair');
    const young = early.filter((p) => /stray temporary file/.test(p.problem));
    assert.ok(young.length > 0 && young.every((p) => !p.repaired), `a temporary file younger than the grace time stays, and is not reported repaired: ${JSON.stringify(young)}`);
    for (const t of temps) assert.ok(existsSync(t), `${t} is still there`);
    const old = new Date(Date.now() - 3600_000);
    for (const t of temps) await utimes(t, old, old);

    const repaired = await check('--repair');
    assert.ok(repaired.filter((p) => /build that was killed|temporary/.test(p.problem)).every((p) => p.repaired), JSON.stringify(repaired));
    for (const d of scratch) assert.ok(!existsSync(d) && mountsUnder(`${d}/`).length === 0, `${d} removed, nothing mounted`);
    const after = await check();
    assert.deepEqual(after.filter((p) => p.severity === 'error' || /build that was killed|temporary/.test(p.problem)), []);
    await buildsAgain('FROM busybox\nCOPY small /small\nCOPY big2 /big\n');
    for (const t of temps) assert.ok(!existsSync(t), `${t} removed`);
    const blobs = readdirSync(join(e.root, 'images', 'blobs', 'sha256'));
    assert.ok(blobs.every((b) => /^[0-9a-f]{64}$/.test(b)), `only verified blobs in the store: ${blobs.filter((b) => !/^[0-9a-f]{64}$/.test(b)).join(' ')}`);
  });
});
