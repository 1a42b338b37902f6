/**
 * The front end's head start on create (native/berth-runtime.c): it guesses the container's
 * cgroups from config.json and sends them to berth-init before Node starts, and returns as
 * soon as Node reports create's status. Whatever the guess, the cgroups must be the planner's,
 * a failed create must leave no directory the guess made, and errors must be the planner's.
 * Needs root (cgroups); CI runs as root.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hostCgroupLayout } from '../../src/runtime/cgroups/host.js';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { Runtime } from './runtime-cli.js';
import { root, skipUnless } from '../helpers/requirements.js';


/** Every directory the cgroup path would have, one per hierarchy. */
function cgroupDirs(cgroupsPath: string): string[] {
  const layout = hostCgroupLayout();
  const mounts = [...new Set([...Object.values(layout.v1), ...(layout.v2 ? [layout.v2.mountPoint] : [])])];
  return mounts.map((m) => join(m, cgroupsPath));
}

/** The cgroup v1 memory (or cgroup2) directory holding pid, from /proc/PID/cgroup. */
function memoryCgroupOf(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
  const mem = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l)) ?? lines.find((l) => l.startsWith('0::'));
  assert.ok(mem, 'no memory cgroup line');
  return mem.slice(mem.indexOf(':', mem.indexOf(':') + 1) + 1);
}

describe('create: the front end\'s guessed cgroups', { skip: skipUnless(root('cgroups')) }, () => {
  let rt: Runtime;
  let bundle: Bundle;
  const tag = `early-${process.pid}`;
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(['/bin/true']);
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
    // The parent the absolute paths made (delete removes only the container's own cgroup).
    for (const d of [...cgroupDirs(`/berth-guess-${tag}/escaped`), ...cgroupDirs(`/berth-guess-${tag}/abs`), ...cgroupDirs(`/berth-guess-${tag}`)]) {
      try { rmdirSync(d); } catch { /* gone */ }
    }
  });

  const out = (name: string) => join(bundle.dir, `${name}.out`);

  it('puts the container where the planner decides, for default, absolute and relative paths', () => {
    const cases: [string, string | undefined, (pid: number) => string][] = [
      [`${tag}-default`, undefined, () => `/berth/${tag}-default`],
      [`${tag}-abs`, `/berth-guess-${tag}/abs`, () => `/berth-guess-${tag}/abs`],
      // Relative: below the runtime's own cgroup (ours: the front end is our child).
      [`${tag}-rel`, `berth-guess-${tag}-rel`, () => posix.join(memoryCgroupOf(process.pid), `berth-guess-${tag}-rel`)],
    ];
    for (const [id, path, expected] of cases) {
      if (path === undefined) delete bundle.spec.linux!.cgroupsPath; else bundle.spec.linux!.cgroupsPath = path;
      bundle.save();
      const r = rt.withFiles(['--debug', 'create', '--bundle', bundle.dir, id], out(id));
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /guess of the cgroups was right: kept/);
      const pid = rt.state(id).pid!;
      assert.equal(memoryCgroupOf(pid), expected(pid));
      assert.equal(rt.run(['delete', '--force', id]).status, 0);
      for (const d of cgroupDirs(expected(pid))) assert.ok(!existsSync(d), `${d} left after delete`);
    }
    delete bundle.spec.linux!.cgroupsPath;
    bundle.save();
  });

  it('hands berth-init over whichever starts first: Node (the default) or berth-init (BERTH_RUNTIME_WAIT_NODE)', () => {
    // By default Node starts first and learns berth-init's pid and the guess from a pipe; when
    // the front end waits for Node's exit, berth-init starts first and the front end becomes Node.
    for (const [id, env] of [[`${tag}-node-first`, {}], [`${tag}-init-first`, { BERTH_RUNTIME_WAIT_NODE: '1' }]] as const) {
      const r = rt.withFiles(['--debug', 'create', '--bundle', bundle.dir, id], out(id), env);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /guess of the cgroups was right: kept/);
      assert.equal(rt.state(id).status, 'created');
      assert.equal(memoryCgroupOf(rt.state(id).pid!), `/berth/${id}`);
      assert.equal(rt.run(['delete', '--force', id]).status, 0);
    }
  });

  it('follows the planner when the guess is wrong, and removes what the wrong guess made', () => {
    // A key written with a \u escape: JSON.parse reads "cgroupsPath", the front end's
    // byte-level scan does not, so it guesses the default /berth/<id>.
    const id = `${tag}-a`;
    const text = JSON.stringify(bundle.spec).replace('"linux":{', `"linux":{"cgroups\\u0050ath":"/berth-guess-${tag}/escaped",`);
    writeFileSync(join(bundle.dir, 'config.json'), text);
    const r = rt.withFiles(['--debug', 'create', '--bundle', bundle.dir, id], out(id));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /guess of the cgroups was wrong: replaced/);
    const pid = rt.state(id).pid!;
    assert.equal(memoryCgroupOf(pid), `/berth-guess-${tag}/escaped`);
    for (const d of cgroupDirs(`/berth/${id}`)) assert.ok(!existsSync(d), `the wrong guess left ${d}`);
    assert.equal(rt.run(['delete', '--force', id]).status, 0);
    bundle.save();
  });

  it('leaves no cgroup behind when the planner rejects the config, and reports only its own error', () => {
    const id = `${tag}-bad`;
    bundle.spec.linux!.namespaces = [...bundle.spec.linux!.namespaces!, { type: 'nosuchns' as never }];
    bundle.save();
    const r = rt.create(id, bundle.dir, out(id));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nosuchns/);
    assert.doesNotMatch(r.stderr, /berth-init/);
    for (const d of cgroupDirs(`/berth/${id}`)) assert.ok(!existsSync(d), `a failed create left ${d}`);
    assert.deepEqual(rt.ids(), []);
    bundle.spec.linux!.namespaces = bundle.spec.linux!.namespaces!.filter((n) => n.type !== ('nosuchns' as never));
    bundle.save();
  });

  it('reports a cgroup in use by another runtime root as the planner\'s error, and leaves it alone', () => {
    const id = `${tag}-busy`;
    const other = new Runtime();
    try {
      assert.equal(other.create(id, bundle.dir, out(`${id}-other`)).status, 0);
      const otherPid = other.state(id).pid!;
      const r = rt.create(id, bundle.dir, out(id));
      assert.equal(r.status, 1);
      assert.match(r.stderr, /berth-runtime: cgroup \S+ already has processes/);
      assert.deepEqual(rt.ids(), []);
      assert.equal(memoryCgroupOf(otherPid), `/berth/${id}`);
      assert.equal(other.state(id).status, 'created');
    } finally {
      other.cleanup();
    }
  });

  it('lets exactly one of several concurrent creates of one id win; the others say it exists', async () => {
    // Each front end's guessed berth-init may sit in the shared cgroup before the id is
    // reserved: the winner must not fail on a loser's guess.
    for (let round = 0; round < 6; round++) {
      const id = `${tag}-race${round}`;
      const results = await Promise.all([0, 1, 2].map((i) => rt.createAsync(id, bundle.dir, out(`${id}-${i}`))));
      const won = results.filter((r) => r.status === 0);
      assert.equal(won.length, 1, `round ${round}: ${won.length} winners: ${results.map((r) => r.stderr.trim()).join(' | ')}`);
      for (const r of results) if (r.status !== 0) assert.match(r.stderr, /already exists/);
      const pid = rt.state(id).pid!;
      assert.equal(memoryCgroupOf(pid), `/berth/${id}`);
      assert.equal(rt.run(['delete', '--force', id]).status, 0);
      assert.ok(cgroupDirs(`/berth/${id}`).every((d) => !existsSync(d)), `round ${round}: cgroup left behind`);
    }
  });

  it('answers an id in use without touching that container\'s cgroups', () => {
    const id = `${tag}-dup`;
    assert.equal(rt.create(id, bundle.dir, out(id)).status, 0);
    const pid = rt.state(id).pid!;
    const r = rt.create(id, bundle.dir, out(`${id}-2`));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /already exists/);
    assert.doesNotMatch(r.stderr, /berth-init/);
    assert.equal(memoryCgroupOf(pid), `/berth/${id}`);
    assert.equal(rt.state(id).status, 'created');
    assert.equal(rt.run(['delete', '--force', id]).status, 0);
  });
});
