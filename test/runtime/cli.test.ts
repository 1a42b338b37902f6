// berth-runtime's command line: spec, features, global flags, usage errors, logs. Needs no
// container, but runs the native front end (built by `make -C native`).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validateRuntimeConfig } from '../../src/runtime/spec/validate.js';
import { OCI_VERSION } from '../../src/runtime/spec/version.js';
import { Runtime } from './runtime-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'berth-rt-cli-'));
const rt = new Runtime();
after(() => {
  rt.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

describe('berth-runtime CLI', () => {
  it('spec writes runc-style defaults that validate, refuses to overwrite, and has a rootless variant', () => {
    const dir = mkdtempSync(join(tmp, 'spec-'));
    assert.equal(rt.run(['spec', '--bundle', dir]).status, 0);
    const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(spec.process.args, ['sh']);
    assert.equal(spec.root.path, 'rootfs');
    assert.ok(validateRuntimeConfig(spec));
    const again = rt.run(['spec', '--bundle', dir]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already exists/);
    const rl = mkdtempSync(join(tmp, 'rootless-'));
    assert.equal(rt.run(['spec', '--rootless', '-b', rl]).status, 0);
    const r = JSON.parse(readFileSync(join(rl, 'config.json'), 'utf8'));
    assert.ok(r.linux.namespaces.some((n: { type: string }) => n.type === 'user'));
    assert.equal(r.linux.uidMappings[0].size, 1);
    assert.equal(r.linux.resources, undefined);
  });

  it('features prints the features document', () => {
    const r = rt.run(['features']);
    assert.equal(r.status, 0, r.stderr);
    const f = JSON.parse(r.stdout);
    assert.equal(f.ociVersionMin, '1.0.0');
    assert.match(f.ociVersionMax, /^1\./);
    assert.ok(f.hooks.includes('createRuntime'));
    assert.ok(f.mountOptions.includes('rro'));
    assert.ok(f.linux.namespaces.includes('time'));
    assert.equal(f.linux.seccomp.enabled, true);
    assert.equal(f.linux.cgroup.v1, true);
  });

  it('refuses --systemd-cgroup clearly, and unknown commands and flags', () => {
    const sd = rt.run(['--systemd-cgroup', 'create', '--bundle', tmp, 'x']);
    assert.notEqual(sd.status, 0);
    assert.match(sd.stderr, /--systemd-cgroup is not supported.*cgroupfs/);
    const unk = rt.run(['frobnicate']);
    assert.equal(unk.status, 2);
    assert.match(unk.stderr, /unknown command "frobnicate"/);
    const flag = rt.run(['create', '--bogus', 'x']);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /unknown flag --bogus/);
  });

  it('native verbs: errors for a missing container, usage errors, json error log', () => {
    const log = join(tmp, 'log.json');
    const r = rt.run(['--log', log, '--log-format', 'json', 'state', 'nosuch']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /container nosuch does not exist/);
    const entry = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').pop()!);
    assert.equal(entry.level, 'error');
    assert.match(entry.msg, /does not exist/);
    assert.match(rt.run(['kill']).stderr, /usage: berth-runtime kill/);
    assert.match(rt.run(['start', 'bad/id']).stderr, /invalid container id/);
    assert.match(rt.run(['kill', 'nosuch', 'NOSIG']).stderr, /does not exist|unknown signal/);
    assert.equal(rt.run(['delete', '--force', 'nosuch']).status, 0, 'delete --force of a missing container succeeds (as runc)');
  });

  it('state of a container whose create has not finished is "creating"; delete --force clears a dead create', () => {
    mkdirSync(join(rt.root, 'half'));
    writeFileSync(join(rt.root, 'half', 'bundle'), '/some/bundle');
    const st = rt.run(['state', 'half']);
    assert.equal(st.status, 0, st.stderr);
    assert.deepEqual(JSON.parse(st.stdout), { ociVersion: OCI_VERSION, id: 'half', status: 'creating', bundle: '/some/bundle' });
    assert.match(rt.run(['delete', 'half']).stderr, /still being created/);
    assert.equal(rt.run(['delete', '--force', 'half']).status, 0);
    assert.deepEqual(rt.ids(), []);
  });
});
