// The init plan is plain data: these tests need no root.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildInitPlan, capMask, encodePlan, parseMountOptions, type PlanRecord } from '../../src/runtime/plan.js';
import { defaultSpec } from '../../src/runtime/spec/default.js';
import { MS } from '../../src/runtime/linux-constants.js';
import { isBerthError } from '../../src/base/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'berth-plan-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const values = (recs: PlanRecord[], key: string) => recs.filter(([k]) => k === key).map(([, v]) => String(v));

describe('init plan', () => {
  it('encodes records as "KEY LEN\\n" + bytes + "\\n" and ends with "end"', () => {
    const buf = encodePlan([['arg', 'a b'], ['seccomp', Buffer.from([0, 1, 2])]]);
    assert.deepEqual(buf, Buffer.concat([Buffer.from('arg 3\na b\nseccomp 3\n'), Buffer.from([0, 1, 2]), Buffer.from('\nend 0\n\n')]));
    // Lengths count bytes, not UTF-16 units; text after a binary record keeps its framing.
    const mixed = encodePlan([['env', 'É=ü'], ['seccomp', Buffer.from([10, 0])], ['arg', '/bin/sh']]);
    assert.deepEqual(mixed, Buffer.concat([Buffer.from('env 5\nÉ=ü\nseccomp 2\n'), Buffer.from([10, 0]), Buffer.from('\narg 7\n/bin/sh\nend 0\n\n')]));
  });

  it('maps capability names to bits and refuses unknown ones', () => {
    assert.equal(capMask(['CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_ADMIN'], 'x'), (1n << 0n) | (1n << 5n) | (1n << 21n));
    assert.throws(() => capMask(['CAP_BOGUS'], 'process.capabilities.bounding'), /CAP_BOGUS/);
  });

  it('parses mount options into flags, propagation, recursive attributes and data', () => {
    const o = parseMountOptions(['rbind', 'ro', 'nosuid', 'rslave', 'rnoexec', 'mode=755', 'size=1m'], 'm');
    assert.equal(o.flags, MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID);
    assert.deepEqual(o.propagation, [MS.SLAVE | MS.REC]);
    assert.equal(o.attrSet, 0x8);
    assert.deepEqual(o.data, ['mode=755', 'size=1m']);
    const rw = parseMountOptions(['ro', 'rw'], 'm');
    assert.equal(rw.flags & MS.RDONLY, 0, 'a later rw clears ro');
    assert.throws(() => parseMountOptions(['idmap'], 'mounts[0]'), (e) => isBerthError(e, 'UNSUPPORTED'));
  });

  it('plans the default spec: clone flags, mounts, devices, masks, credentials, command', () => {
    const root = join(tmp, 'r2');
    mkdirSync(root, { recursive: true });
    const spec = defaultSpec();
    spec.process!.terminal = false;
    spec.process!.args = ['/bin/echo', 'hi'];
    const plan = buildInitPlan({ spec, rootfs: root, fifoPath: '/run/x/exec.fifo', cgroupPaths: {} });
    const r = plan.records;
    // pid|net|ipc|uts|mount
    assert.equal(Number(values(r, 'clone')[0]), 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000 | 0x00020000);
    assert.equal(values(r, 'mountns').length, 1);
    assert.equal(values(r, 'hostname')[0], 'berth');
    const mounts = values(r, 'mount').map((v) => v.split('\0'));
    // Destinations stay container paths: berth-init resolves them inside the rootfs (mount-paths.test.ts).
    assert.deepEqual(mounts[0]!.slice(0, 3), ['proc', '/proc', 'proc']);
    const dev = mounts.find((m) => m[1] === '/dev')!;
    assert.equal(dev[4], 'mode=755,size=65536k');
    assert.equal(Number(dev[3]), MS.NOSUID | MS.STRICTATIME);
    assert.ok(values(r, 'device').some((d) => d.startsWith('/dev/null\0c\x001\x003\0')));
    assert.ok(values(r, 'symlink').includes('pts/ptmx\0/dev/ptmx'));
    assert.ok(values(r, 'mask').includes('/proc/kcore'));
    assert.ok(values(r, 'readonly').includes('/proc/sys'));
    assert.deepEqual(values(r, 'arg'), ['/bin/echo', 'hi']);
    assert.equal(values(r, 'cap_bounding')[0], '0x' + ((1n << 29n) | (1n << 5n) | (1n << 10n)).toString(16));
    assert.equal(values(r, 'nnp')[0], '1');
    assert.deepEqual(values(r, 'rlimit'), ['7\x001024\x001024']);
    assert.equal(values(r, 'fifo')[0], '/run/x/exec.fifo');
  });

  it('refuses what it cannot plan with a clear error', () => {
    const root = join(tmp, 'r3');
    mkdirSync(root, { recursive: true });
    const base = () => { const s = defaultSpec(); s.process!.terminal = false; return s; };
    const s1 = base();
    s1.process!.rlimits!.push({ type: 'RLIMIT_NOFILE', soft: 1, hard: 1 });
    assert.throws(() => buildInitPlan({ spec: s1, rootfs: root, fifoPath: 'f', cgroupPaths: {} }), /given twice/);
    const s2 = base();
    s2.process!.terminal = true;
    assert.throws(() => buildInitPlan({ spec: s2, rootfs: root, fifoPath: 'f', cgroupPaths: {} }), /console-socket/);
    const s3 = base();
    s3.linux!.timeOffsets = { monotonic: { secs: 1 } };
    assert.throws(() => buildInitPlan({ spec: s3, rootfs: root, fifoPath: 'f', cgroupPaths: {} }), /time namespace/);
    const s4 = base();
    s4.linux!.intelRdt = { closID: 'x' };
    assert.throws(() => buildInitPlan({ spec: s4, rootfs: root, fifoPath: 'f', cgroupPaths: {} }), (e) => isBerthError(e, 'UNSUPPORTED') && /intelRdt/.test(e.message));
  });
});
