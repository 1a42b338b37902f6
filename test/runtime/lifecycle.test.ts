// Lifecycle of berth-runtime (runtime.md "Lifecycle", "Operations"): needs root (namespaces, cgroups).
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv from 'ajv';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { Runtime, readText } from './runtime-cli.js';

import { peer, root, skipUnless, specDir } from '../helpers/requirements.js';

// state-schema.json, found through BERTH_SPEC_DIR; without it the state is checked by hand only.
const SCHEMA_DIR = specDir('runtime-spec/schema').dir;

/** state.md's state as a validator: the schema when BERTH_SPEC_DIR has it, else the REQUIRED fields by hand. */
function stateValidator(): (doc: unknown) => boolean {
  if (SCHEMA_DIR === undefined) {
    console.log('# lifecycle: BERTH_SPEC_DIR is not set: states are checked against state.md\'s required fields, not state-schema.json');
    return (doc) => {
      const s = doc as Record<string, unknown>;
      return typeof s.ociVersion === 'string' && typeof s.id === 'string' && typeof s.bundle === 'string' &&
        ['creating', 'created', 'running', 'stopped'].includes(s.status as string);
    };
  }
  const strip = (s: Record<string, unknown>) => { delete s.$schema; return s; };
  const ajv = new Ajv.default({ strict: false, allErrors: true });
  ajv.addSchema(strip(JSON.parse(readFileSync(join(SCHEMA_DIR, 'defs.json'), 'utf8'))), 'defs.json');
  const validate = ajv.compile(strip(JSON.parse(readFileSync(join(SCHEMA_DIR, 'state-schema.json'), 'utf8'))));
  return (doc) => {
    const ok = validate(doc) as boolean;
    if (!ok) console.error(validate.errors);
    return ok;
  };
}

describe('berth-runtime lifecycle (root)', { skip: skipUnless(root('namespaces and cgroups'), peer('/bin/busybox', 'busybox-static')) }, () => {
  let rt: Runtime;
  let bundle: Bundle;
  const validState = stateValidator();

  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(['/bin/sh', '-c', 'echo started; sleep 30']);
    bundle.spec.annotations = { 'org.example.test': 'lifecycle' };
    bundle.save();
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
  });

  it('create, state, start, kill and delete follow runtime.md, with errors where it requires them', async () => {
    const out = join(bundle.dir, 'out1');
    const pidFile = join(bundle.dir, 'pid1');
    const c = rt.create('life1', bundle.dir, out, ['--pid-file', pidFile]);
    assert.equal(c.status, 0, c.stderr);
    const created = rt.state('life1');
    assert.equal(created.status, 'created');
    assert.ok(validState(created), 'state must match state-schema.json');
    assert.equal(created.pid, Number(readFileSync(pidFile, 'utf8')));
    assert.equal(created.bundle, bundle.dir);
    assert.deepEqual(created.annotations, { 'org.example.test': 'lifecycle' });
    assert.equal(readText(out), '', 'the user process must not run before start');

    // delete of a created (not stopped) container MUST fail and leave it alone
    const del = rt.run(['delete', 'life1']);
    assert.notEqual(del.status, 0);
    assert.match(del.stderr, /not stopped/);
    assert.equal(rt.state('life1').status, 'created');

    assert.equal(rt.run(['start', 'life1']).status, 0);
    const running = rt.state('life1');
    assert.equal(running.status, 'running');
    assert.ok(validState(running));
    const again = rt.run(['start', 'life1']);
    assert.notEqual(again.status, 0, 'start of a running container is an error');
    assert.match(again.stderr, /not created/);
    for (let i = 0; i < 200 && !readText(out).includes('started'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(readText(out), 'started\n');

    assert.equal(rt.run(['kill', 'life1', 'KILL']).status, 0);
    await rt.waitStatus('life1', 'stopped');
    // PID 1 here reaps orphans only every few seconds: the process is usually still a zombie,
    // and a zombie counts as stopped.
    const zombie = readText(`/proc/${created.pid}/stat`);
    assert.ok(zombie === '' || /\) Z /.test(zombie), `pid ${created.pid} is gone or a zombie: ${zombie}`);
    const stopped = rt.state('life1');
    assert.equal(stopped.pid, undefined);
    assert.ok(validState(stopped));
    const killStopped = rt.run(['kill', 'life1', 'TERM']);
    assert.notEqual(killStopped.status, 0, 'kill of a stopped container is an error');

    assert.equal(rt.run(['delete', 'life1']).status, 0);
    assert.equal(existsSync(join(rt.root, 'life1')), false);
    const gone = rt.run(['state', 'life1']);
    assert.notEqual(gone.status, 0);
    assert.match(gone.stderr, /does not exist/);
  });

  it('refuses an id already in use and leaves the first container alone', () => {
    const out = join(bundle.dir, 'out2');
    assert.equal(rt.create('dup', bundle.dir, out).status, 0);
    const second = rt.create('dup', bundle.dir, out);
    assert.notEqual(second.status, 0);
    assert.match(second.stderr, /already exists/);
    assert.equal(rt.state('dup').status, 'created');
    assert.equal(rt.run(['delete', '--force', 'dup']).status, 0);
    assert.equal(existsSync(join(rt.root, 'dup')), false);
  });

  it('delete --force kills a running container and removes its cgroups', async () => {
    const out = join(bundle.dir, 'out3');
    assert.equal(rt.create('force1', bundle.dir, out).status, 0);
    assert.equal(rt.run(['start', 'force1']).status, 0);
    const rec = JSON.parse(readFileSync(join(rt.root, 'force1', 'state.json'), 'utf8')) as { pid: number; cgroupPaths: Record<string, string> };
    const dirs = [...new Set(Object.values(rec.cgroupPaths))];
    assert.ok(dirs.length > 0);
    for (const d of dirs) assert.ok(existsSync(d), `${d} exists while the container runs`);
    const procs = readFileSync(join(dirs[0]!, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number);
    assert.ok(procs.includes(rec.pid), 'the container process is in its cgroup');
    assert.equal(rt.run(['delete', '--force', 'force1']).status, 0);
    for (const d of dirs) assert.equal(existsSync(d), false, `${d} removed`);
    assert.equal(existsSync(join(rt.root, 'force1')), false);
  });

  it('kill --all signals every process in the container', async () => {
    const b = makeBusyboxBundle(['/bin/sh', '-c', 'sleep 30 & sleep 30 & wait']);
    try {
      assert.equal(rt.create('killall', b.dir, join(b.dir, 'out')).status, 0);
      assert.equal(rt.run(['start', 'killall']).status, 0);
      const ps = rt.run(['ps', '--format', 'json', 'killall']);
      for (let i = 0; i < 100 && JSON.parse(rt.run(['ps', '--format', 'json', 'killall']).stdout).length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(ps.status, 0, ps.stderr);
      const pids = JSON.parse(rt.run(['ps', '--format', 'json', 'killall']).stdout) as number[];
      assert.ok(pids.length >= 3, `three processes, got ${pids}`);
      assert.equal(rt.run(['kill', '--all', 'killall', 'KILL']).status, 0);
      await rt.waitStatus('killall', 'stopped');
      for (const p of pids) {
        const st = readText(`/proc/${p}/stat`);
        assert.ok(st === '' || / Z /.test(st), `pid ${p} is dead`);
      }
      assert.equal(rt.run(['delete', 'killall']).status, 0);
    } finally {
      b.cleanup();
    }
  });

  it('run waits for the process and returns its exit code; list shows containers', () => {
    const b = makeBusyboxBundle(['/bin/sh', '-c', 'echo out; echo err >&2; exit 7']);
    try {
      const r = rt.run(['run', '--bundle', b.dir, 'runexit']);
      assert.equal(r.status, 7);
      assert.equal(r.stdout, 'out\n');
      assert.equal(r.stderr, 'err\n');
      assert.equal(existsSync(join(rt.root, 'runexit')), false, 'run deletes the container');
      assert.equal(rt.create('listed', b.dir, join(b.dir, 'o')).status, 0);
      const list = JSON.parse(rt.run(['list', '--format', 'json']).stdout) as { id: string; status: string }[];
      assert.deepEqual(list.map((c) => [c.id, c.status]), [['listed', 'created']]);
      assert.match(rt.run(['list', '-q']).stdout, /^listed\n$/);
      assert.equal(rt.run(['delete', '--force', 'listed']).status, 0);
    } finally {
      b.cleanup();
    }
  });

  it('exec runs a process in the container\'s namespaces and cgroup', async () => {
    const b = makeBusyboxBundle(['/bin/sh', '-c', 'sleep 30']);
    b.spec.hostname = 'execbox';
    b.save();
    try {
      assert.equal(rt.create('ex1', b.dir, join(b.dir, 'o')).status, 0);
      assert.equal(rt.run(['start', 'ex1']).status, 0);
      const r = rt.run(['exec', 'ex1', '/bin/sh', '-c', 'hostname; echo $$; cat /proc/1/cmdline | tr "\\0" " "; exit 3']);
      assert.equal(r.status, 3, r.stderr);
      const [host, pid, cmd] = r.stdout.split('\n');
      assert.equal(host, 'execbox');
      assert.ok(Number(pid) > 1, 'exec gets a new pid in the container pid namespace');
      assert.equal(cmd!.trim(), 'sleep 30', 'busybox sh execs its last command');
      const procFile = join(b.dir, 'proc.json');
      writeFileSync(procFile, JSON.stringify({ args: ['/bin/sh', '-c', 'id -u; pwd'], cwd: '/tmp', user: { uid: 1000, gid: 1000 }, env: ['PATH=/bin'] }));
      const p = rt.run(['exec', '--process', procFile, 'ex1']);
      assert.equal(p.status, 0, p.stderr);
      assert.equal(p.stdout, '1000\n/tmp\n');
      const pidFile = join(b.dir, 'exec.pid');
      const d = rt.withFiles(['exec', '--detach', '--pid-file', pidFile, 'ex1', '/bin/sleep', '20'], join(b.dir, 'exec.out'));
      assert.equal(d.status, 0, d.stderr);
      const epid = Number(readFileSync(pidFile, 'utf8'));
      const pids = JSON.parse(rt.run(['ps', '--format', 'json', 'ex1']).stdout) as number[];
      assert.ok(pids.includes(epid), 'the exec process is in the container cgroup');
      assert.equal(rt.run(['delete', '--force', 'ex1']).status, 0);
    } finally {
      b.cleanup();
    }
  });

  it('pause and resume freeze the container', async () => {
    const b = makeBusyboxBundle(['/bin/sh', '-c', 'sleep 30']);
    try {
      assert.equal(rt.create('frz', b.dir, join(b.dir, 'o')).status, 0);
      assert.equal(rt.run(['start', 'frz']).status, 0);
      const pid = rt.state('frz').pid!;
      const p = rt.run(['pause', 'frz']);
      assert.equal(p.status, 0, p.stderr);
      let st = '';
      for (let i = 0; i < 100; i++) {
        st = readText(`/proc/${pid}/stat`).split(') ')[1]!.charAt(0);
        if (st === 'D' || st === 'T') break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.match(st, /[DT]/, 'a frozen task shows as D (v1 freezer) or T');
      assert.equal(rt.run(['resume', 'frz']).status, 0);
      for (let i = 0; i < 100; i++) {
        st = readText(`/proc/${pid}/stat`).split(') ')[1]!.charAt(0);
        if (st === 'S') break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(st, 'S');
      assert.equal(rt.run(['delete', '--force', 'frz']).status, 0);
    } finally {
      b.cleanup();
    }
  });

  it('runs hooks where runtime.md says, with the state on stdin; a failing createRuntime hook fails create', async () => {
    const b = makeBusyboxBundle(['/bin/true']);
    const log = join(b.dir, 'hooks.log');
    const hook = join(b.dir, 'hook.sh');
    writeFileSync(hook, `#!/bin/sh\nread -r state\necho "$1 $HOOKVAR $state" >> ${log}\n`);
    chmodSync(hook, 0o755);
    const h = (name: string) => ({ path: hook, args: ['hook.sh', name], env: ['HOOKVAR=v'], timeout: 5 });
    b.spec.hooks = {
      createRuntime: [h('createRuntime')], createContainer: [h('createContainer')], poststart: [h('poststart')], poststop: [h('poststop')],
    };
    b.save();
    try {
      assert.equal(rt.create('hk', b.dir, join(b.dir, 'o')).status, 0);
      let lines = readText(log).trim().split('\n');
      assert.deepEqual(lines.map((l) => l.split(' ')[0]), ['createRuntime', 'createContainer']);
      const st = JSON.parse(lines[0]!.split(' ').slice(2).join(' '));
      assert.equal(st.id, 'hk');
      assert.ok(st.pid > 0);
      assert.equal(lines[0]!.split(' ')[1], 'v');
      assert.equal(rt.run(['start', 'hk']).status, 0);
      lines = readText(log).trim().split('\n');
      assert.equal(lines[2]!.split(' ')[0], 'poststart');
      await rt.waitStatus('hk', 'stopped');
      assert.equal(rt.run(['delete', 'hk']).status, 0);
      lines = readText(log).trim().split('\n');
      assert.equal(lines[3]!.split(' ')[0], 'poststop');
      assert.equal(JSON.parse(lines[3]!.split(' ').slice(2).join(' ')).status, 'stopped');

      b.spec.hooks = { createRuntime: [{ path: '/bin/false' }] };
      b.save();
      const bad = rt.create('hkbad', b.dir, join(b.dir, 'o'));
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /createRuntime hook \/bin\/false failed/);
      assert.equal(existsSync(join(rt.root, 'hkbad')), false, 'nothing left behind');
      assert.equal(existsSync('/sys/fs/cgroup/pids/berth/hkbad'), false, 'no cgroup left behind');
    } finally {
      b.cleanup();
    }
  });
});
