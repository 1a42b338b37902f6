// Bad input to berth-runtime create: a clear error and nothing left behind (no state
// directory, cgroup, mount or process). Needs root.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import type { Spec } from '../../src/runtime/spec/types.js';
import { Runtime } from './runtime-cli.js';

let rt: Runtime;
let bundle: Bundle;
let pristine: string;
let n = 0;

function assertNothingLeft(id: string): void {
  assert.deepEqual(rt.ids(), [], 'no state directory');
  for (const ctrl of readdirSync('/sys/fs/cgroup')) {
    assert.equal(existsSync(join('/sys/fs/cgroup', ctrl, 'berth', id)), false, `no ${ctrl} cgroup`);
  }
  assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(bundle.dir), 'no mount of the bundle on the host');
  // A cgroup directory can only be removed once no process is left in it: the check above covers processes.
}

function createFails(edit: (s: Spec) => void, expect: RegExp, raw?: string): void {
  bundle.spec = JSON.parse(pristine) as Spec;
  edit(bundle.spec);
  bundle.save();
  if (raw !== undefined) writeFileSync(join(bundle.dir, 'config.json'), raw);
  const id = `bad${++n}`;
  const r = rt.create(id, bundle.dir, join(bundle.dir, 'out'));
  assert.notEqual(r.status, 0, 'create must fail');
  assert.match(r.stderr, expect);
  assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('berth-runtime:')).length, 1, `one clear line: ${r.stderr}`);
  assertNothingLeft(id);
}

describe('berth-runtime create with bad input (root)', () => {
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle();
    pristine = JSON.stringify(bundle.spec);
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
  });

  it('malformed JSON', () => createFails(() => undefined, /config\.json is not valid JSON/, '{"ociVersion": "1.2.0",'));

  it('a document that violates the schema', () => createFails((s) => { (s.process!.user as unknown as { uid: string }).uid = 'root'; }, /uid/));

  it('an ociVersion of another major version', () => createFails((s) => { s.ociVersion = '2.0.0'; }, /2\.0\.0/));

  it('a missing root filesystem', () => createFails((s) => { s.root!.path = 'no-such-rootfs'; }, /no-such-rootfs/));

  it('an unknown namespace type', () => createFails((s) => { s.linux!.namespaces!.push({ type: 'bogus' as 'pid' }); }, /bogus/));

  it('a mount of a filesystem type the kernel does not have', () =>
    createFails((s) => { s.mounts!.push({ destination: '/x', type: 'nosuchfs', source: 'none' }); }, /mount none \(type nosuchfs.*No such device/));

  it('a bind mount whose source does not exist', () =>
    createFails((s) => { s.mounts!.push({ destination: '/x', type: 'bind', source: '/no/such/source', options: ['bind'] }); }, /\/no\/such\/source/));

  it('an invalid container id', () => {
    const r = rt.create('../escape', bundle.dir, join(bundle.dir, 'out'));
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /invalid container id/);
    assert.deepEqual(rt.ids(), []);
  });

  it('a failing sysctl (unknown key) after the process exists', () =>
    createFails((s) => { s.linux!.sysctl = { 'net.no.such.key': '1' }; }, /net\.no\.such\.key|no\/such\/key/));
});
