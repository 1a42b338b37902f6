/** Which RUN platforms this host runs: natively, through a binfmt_misc handler it already has (F flag), or not, with the reason. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertCanRun, runSupport } from '../../../src/engine/build/emulation.js';

const AMD64 = { os: 'linux', architecture: 'amd64' };
const ARM64 = { os: 'linux', architecture: 'arm64' };

describe('RUN for another platform', () => {
  it('runs natively what the host runs (arm64 hosts run arm/v7), and nothing else without a handler', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-binfmt-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    assert.deepEqual(runSupport(AMD64, AMD64, dir), { native: true });
    assert.deepEqual(runSupport({ os: 'linux', architecture: 'arm', variant: 'v7' }, ARM64, dir), { native: true });
    const none = runSupport(ARM64, AMD64, dir);
    assert.ok('error' in none && /binfmt_misc is not mounted or disabled/.test(none.error) && /qemu-user-static/.test(none.error), JSON.stringify(none));
    assert.throws(() => assertCanRun(ARM64, 'Dockerfile:3:1', join(dir, 'missing')), /^BerthError: Dockerfile:3:1: RUN for linux\/arm64: .*install qemu-user-static/);
    const windows = runSupport({ os: 'windows', architecture: 'amd64' }, AMD64, dir);
    assert.ok('error' in windows && /build it on a windows\/amd64 host/.test(windows.error));
  });

  it('uses a handler registered for the architecture with the F flag; names one without F or a missing one', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-binfmt-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'status'), 'enabled\n');
    await writeFile(join(dir, 'register'), '');
    await writeFile(join(dir, 'qemu-riscv64'), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200f300\n');
    const missing = runSupport(ARM64, AMD64, dir);
    assert.ok('error' in missing && /no binfmt_misc handler for aarch64/.test(missing.error), JSON.stringify(missing));
    await writeFile(join(dir, 'qemu-aarch64'), 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n');
    const noF = runSupport(ARM64, AMD64, dir);
    assert.ok('error' in noF && /without the F flag/.test(noF.error), JSON.stringify(noF));
    await writeFile(join(dir, 'qemu-aarch64'), 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n');
    assert.deepEqual(runSupport(ARM64, AMD64, dir), { native: false, interpreter: '/usr/bin/qemu-aarch64-static' });
    assert.doesNotThrow(() => assertCanRun(ARM64, 'Dockerfile:3:1', dir));
    await writeFile(join(dir, 'qemu-aarch64'), 'disabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\n');
    assert.ok('error' in runSupport(ARM64, AMD64, dir), 'a disabled handler is none');
  });
});
