// `berth-runtime update` (runc's verb, used by podman update and containerd's CRI resize): new
// limits land in the container's cgroups, only what is given changes, errors are clear; and
// runc, given the same flags for the same bundle, writes the same values. Needs root.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hostCgroupLayout } from '../../src/runtime/cgroups/host.js';
import { parseBytes, resourcesFromFlags } from '../../src/cli/update-flags.js';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { Runtime } from './runtime-cli.js';
import { peer, skipUnless } from '../helpers/requirements.js';

/** A cgroup file of `pid`'s cgroup for `controller` (v1 hierarchy, or the v2 one that holds it). */
function cgroupValue(pid: number, controller: string, v1File: string, v2File: string): string {
  const layout = hostCgroupLayout();
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  const v1Mount = layout.v1[controller];
  if (v1Mount) {
    const line = lines.find((l) => l.split(':')[1]!.split(',').includes(controller))!;
    return readFileSync(join(v1Mount, line.split(':')[2]!, v1File), 'utf8').trim();
  }
  const line = lines.find((l) => l.startsWith('0::'))!;
  return readFileSync(join(layout.v2!.mountPoint, line.slice(3), v2File), 'utf8').trim();
}

const memoryLimit = (pid: number) => cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max');
const pidsMax = (pid: number) => cgroupValue(pid, 'pids', 'pids.max', 'pids.max');
const cpuQuota = (pid: number) => cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max').split(' ')[0];

describe('update flags', () => {
  it('reads sizes as docker does and turns flags into resources', () => {
    assert.equal(parseBytes('memory', '512m'), 512 << 20);
    assert.equal(parseBytes('memory', '1g'), 1 << 30);
    assert.equal(parseBytes('memory', '1.5k'), 1536);
    assert.equal(parseBytes('memory', '4096'), 4096);
    assert.equal(parseBytes('memory-swap', '-1'), -1);
    assert.throws(() => parseBytes('memory', 'lots'), /--memory: "lots" is not a size/);
    assert.deepEqual(resourcesFromFlags({ memory: '64m', 'memory-swap': '-1', 'cpu-quota': '20000', 'cpu-period': '100000', 'cpuset-cpus': '0', 'pids-limit': '30', 'blkio-weight': '300' }), {
      memory: { limit: 64 << 20, swap: -1 },
      cpu: { quota: 20000, period: 100000, cpus: '0' },
      pids: { limit: 30 },
      blockIO: { weight: 300 },
    });
    assert.deepEqual(resourcesFromFlags({}), {});
    assert.throws(() => resourcesFromFlags({ 'pids-limit': 'many' }), /--pids-limit: "many" is not an integer/);
    assert.throws(() => resourcesFromFlags({ 'l3-cache-schema': 'L3:0=f' }), /Intel RDT/);
  });
});

describe('berth-runtime update (root)', () => {
  let rt: Runtime;
  let bundle: Bundle;

  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle(['/bin/sh', '-c', 'sleep 30']);
    bundle.spec.linux!.resources = { ...bundle.spec.linux!.resources, memory: { limit: 64 << 20 }, pids: { limit: 100 }, cpu: { quota: 50000, period: 100000 } };
    bundle.save();
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
  });

  it('sets what the flags name and leaves the rest', () => {
    assert.equal(rt.create('upd1', bundle.dir, join(bundle.dir, 'o1')).status, 0);
    const pid = rt.state('upd1').pid!;
    assert.equal(memoryLimit(pid), String(64 << 20));
    const r = rt.run(['update', '--memory', '128m', '--pids-limit', '50', 'upd1']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(memoryLimit(pid), String(128 << 20));
    assert.equal(pidsMax(pid), '50');
    assert.equal(cpuQuota(pid), '50000', 'the CPU quota was not named and stays');
    // Running too, and through a resources document on stdin.
    assert.equal(rt.run(['start', 'upd1']).status, 0);
    const doc = spawnSync(rt.binary, ['--root', rt.root, 'update', '--resources', '-', 'upd1'], { input: JSON.stringify({ pids: { limit: -1 }, cpu: { quota: 20000 } }), encoding: 'utf8' });
    assert.equal(doc.status, 0, doc.stderr);
    assert.equal(pidsMax(pid), 'max');
    assert.equal(cpuQuota(pid), '20000');
    assert.equal(rt.state('upd1').status, 'running');
    assert.equal(rt.run(['delete', '--force', 'upd1']).status, 0);
  });

  it('says what is wrong, and changes nothing', () => {
    assert.equal(rt.create('upd2', bundle.dir, join(bundle.dir, 'o2')).status, 0);
    const pid = rt.state('upd2').pid!;
    const fails = (args: string[], pattern: RegExp, input?: string) => {
      const r = input === undefined ? rt.run(['update', ...args]) : spawnSync(rt.binary, ['--root', rt.root, 'update', ...args], { input, encoding: 'utf8' });
      assert.notEqual(r.status, 0, `update ${args.join(' ')} succeeded`);
      assert.match(r.stderr, pattern);
    };
    fails(['--memory', '1g', 'no-such'], /no-such does not exist/);
    fails(['--memory', 'lots', 'upd2'], /not a size/);
    fails(['--resources', '-', '--memory', '1g', 'upd2'], /cannot be combined with --memory/, '{}');
    fails(['--resources', '-', 'upd2'], /not JSON/, '{"pids":');
    fails(['--resources', '/nonexistent/res.json', 'upd2'], /--resources \/nonexistent\/res\.json: cannot read it/);
    fails(['--resources', '-', 'upd2'], /update resources linux\.resources\.pids\.limit/, '{"pids":{"limit":"ten"}}');
    fails(['--resources', '-', 'upd2'], /devices cannot be changed/, '{"devices":[{"allow":false,"access":"rwm"}]}');
    fails(['--l3-cache-schema', 'L3:0=f', 'upd2'], /Intel RDT/);
    assert.equal(memoryLimit(pid), String(64 << 20));
    assert.equal(pidsMax(pid), '100');
    assert.equal(rt.run(['kill', 'upd2', 'KILL']).status, 0);
    const end = Date.now() + 5000;
    while (rt.state('upd2').status !== 'stopped' && Date.now() < end) spawnSync('sleep', ['0.02']);
    fails(['--memory', '1g', 'upd2'], /cannot update container upd2: it is stopped/);
    assert.equal(rt.run(['delete', 'upd2']).status, 0);
  });

  it('writes what runc writes for the same flags', { skip: skipUnless(peer('runc', 'runc')) }, () => {
    const runcRoot = mkdtempSync(join(tmpdir(), 'berth-runc-root-'));
    const env = { ...process.env };
    try {
      const flags = ['--memory', '96m', '--memory-reservation', '32m', '--cpu-quota', '30000', '--cpu-period', '100000', '--pids-limit', '64'];
      assert.equal(rt.create('upd3', bundle.dir, join(bundle.dir, 'o3')).status, 0);
      // The container keeps create's stdio open until it exits: a file, not a pipe to wait on.
      const errFile = join(runcRoot, 'create.err');
      const errFd = openSync(errFile, 'w');
      const c = spawnSync('runc', ['--root', runcRoot, 'create', '--bundle', bundle.dir, 'upd3-runc'], { env, stdio: ['ignore', 'ignore', errFd], timeout: 30_000 });
      closeSync(errFd);
      assert.equal(c.status, 0, readFileSync(errFile, 'utf8'));
      assert.equal(rt.run(['update', ...flags, 'upd3']).status, 0);
      const u = spawnSync('runc', ['--root', runcRoot, 'update', ...flags, 'upd3-runc'], { encoding: 'utf8', env });
      assert.equal(u.status, 0, u.stderr);
      const runcPid = Number(JSON.parse(spawnSync('runc', ['--root', runcRoot, 'state', 'upd3-runc'], { encoding: 'utf8' }).stdout).pid);
      const pid = rt.state('upd3').pid!;
      const read = (p: number) => ({
        memory: memoryLimit(p),
        reservation: cgroupValue(p, 'memory', 'memory.soft_limit_in_bytes', 'memory.low'),
        pids: pidsMax(p),
        quota: cgroupValue(p, 'cpu', 'cpu.cfs_quota_us', 'cpu.max'),
      });
      assert.deepEqual(read(pid), read(runcPid));
      assert.equal(read(pid).memory, String(96 << 20));
    } finally {
      spawnSync('runc', ['--root', runcRoot, 'delete', '--force', 'upd3-runc']);
      rt.run(['delete', '--force', 'upd3']);
      rmSync(runcRoot, { recursive: true, force: true });
    }
  });
});
