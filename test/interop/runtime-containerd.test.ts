// containerd 1.6 (Debian's) driving berth-runtime through its runc shim (`ctr run --runc-binary`):
// run with output and exit code, detached run + task exec + kill + delete. Needs root and
// containerd; containerd runs standalone with CRI disabled and everything in a temp dir.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeRootfs } from '../helpers/bundle.js';
import { FRONT } from '../runtime/runtime-cli.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';


describe('containerd (ctr run --runc-binary berth-runtime) (root)', { skip: skipUnless(peer('containerd', 'containerd'), peer('ctr', 'containerd'), root('containers')) }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-containerd-'));
  const sock = join(dir, 'containerd.sock');
  const rootfs = join(dir, 'rootfs');
  let daemon: ChildProcess | undefined;
  const ctr = (args: string[]) => {
    const r = spawnSync('ctr', ['-a', sock, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };

  before(async () => {
    makeRootfs(rootfs);
    writeFileSync(join(dir, 'config.toml'), [
      'version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]', `  address = "${sock}"`, '',
    ].join('\n'));
    daemon = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(existsSync(sock), 'containerd is serving');
  });

  after(async () => {
    for (const id of ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    await new Promise((r) => setTimeout(r, 300));
    for (const id of ctr(['task', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['task', 'rm', '-f', id]);
    for (const id of ctr(['c', 'ls', '-q']).stdout.split('\n').filter(Boolean)) ctr(['c', 'rm', id]);
    daemon?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    daemon?.kill('SIGKILL');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m && m.startsWith(dir));
    for (const m of mounts.sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs a container to completion with its output and exit code', () => {
    const r = ctr(['run', '--rm', '--rootfs', '--runc-binary', FRONT, rootfs, 'berthctr1', 'sh', '-c', 'echo hi from containerd; id -u; exit 4']);
    assert.equal(r.status, 4, r.stderr);
    assert.equal(r.stdout, 'hi from containerd\n0\n');
  });

  it('detached task: exec, kill, delete', async () => {
    const run = ctr(['run', '-d', '--rootfs', '--runc-binary', FRONT, rootfs, 'berthctr2', 'sleep', '60']);
    assert.equal(run.status, 0, run.stderr);
    const ex = ctr(['task', 'exec', '--exec-id', 'e1', 'berthctr2', 'sh', '-c', 'echo exec ok; cat /proc/1/cmdline | tr "\\0" " "; exit 6']);
    assert.equal(ex.status, 6, ex.stderr);
    assert.equal(ex.stdout, 'exec ok\nsleep 60 ');
    assert.match(ctr(['task', 'ls']).stdout, /berthctr2\s+\d+\s+RUNNING/);
    assert.equal(ctr(['task', 'kill', '-s', 'SIGKILL', 'berthctr2']).status, 0);
    for (let i = 0; i < 100 && !/STOPPED/.test(ctr(['task', 'ls']).stdout); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(ctr(['task', 'ls']).stdout, /berthctr2\s+\d+\s+STOPPED/);
    assert.equal(ctr(['task', 'rm', 'berthctr2']).status, 0);
    assert.equal(ctr(['c', 'rm', 'berthctr2']).status, 0);
  });
});
