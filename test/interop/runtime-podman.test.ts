// podman (Debian's 4.3) driving berth-runtime through --runtime, on a local busybox image:
// run with output and exit code, a terminal through the console socket, detached run + exec +
// stop + rm. Needs root and podman (apt-get install -y podman); configured as
// docs/ARCHITECTURE.md "Tests and peers" says, with storage in a temp dir.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeRootfs } from '../helpers/bundle.js';
import { FRONT } from '../runtime/runtime-cli.js';
import { podmanEnv, removePodmanWork } from '../helpers/podman.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { parseMountinfo } from '../../src/runtime/mountinfo.js';


describe('podman --runtime berth-runtime (root)', { skip: skipUnless(peer('podman', 'podman'), root('containers')) }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-podman-'));
  const env: NodeJS.ProcessEnv = podmanEnv(dir);
  delete env.NODE_EXTRA_CA_CERTS;
  const podman = (args: string[], timeout = 60_000) => {
    const r = spawnSync('podman', ['--runtime', FRONT, ...args], { env, encoding: 'utf8', timeout });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };

  before(() => {
    const rootfs = join(dir, 'rootfs');
    makeRootfs(rootfs);
    const tar = execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 });
    const r = spawnSync('podman', ['import', '-', 'localhost/berth-bb:test'], { env, input: tar, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
  });

  after(() => {
    removePodmanWork(dir, env, ['--runtime', FRONT]);
  });

  it('runs a container: output, hostname, exit code, --rm', () => {
    const r = podman(['run', '--rm', '--hostname', 'podbox', 'localhost/berth-bb:test', 'sh', '-c', 'echo hello from berth; hostname; id -u; exit 5']);
    assert.equal(r.status, 5, r.stderr);
    assert.equal(r.stdout, 'hello from berth\npodbox\n0\n');
    const ps = podman(['ps', '-aq']);
    assert.equal(ps.stdout.trim(), '', '--rm removed it');
  });

  it('gives the container a terminal through --console-socket', () => {
    const r = podman(['run', '--rm', '-t', 'localhost/berth-bb:test', 'sh', '-c', 'tty; stty size']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\/dev\/pts\/\d+\r?\n/);
  });

  it('podman update changes a running container\'s limits through berth-runtime update', () => {
    const run = podman(['run', '-d', '--name', 'berthupd', '--memory', '64m', 'localhost/berth-bb:test', 'sleep', '60']);
    assert.equal(run.status, 0, run.stderr);
    const pid = podman(['inspect', '--format', '{{.State.Pid}}', 'berthupd']).stdout.trim();
    const limit = () => {
      const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
      const v1 = lines.find((l) => /^\d+:memory:/.test(l));
      return v1
        ? readFileSync(`/sys/fs/cgroup/memory${v1.split(':')[2]}/memory.limit_in_bytes`, 'utf8').trim()
        : readFileSync(`/sys/fs/cgroup${lines.find((l) => l.startsWith('0::'))!.slice(3)}/memory.max`, 'utf8').trim();
    };
    assert.equal(limit(), String(64 << 20));
    const up = podman(['update', '--memory', '128m', 'berthupd']);
    assert.equal(up.status, 0, up.stderr);
    assert.equal(limit(), String(128 << 20));
    assert.equal(podman(['rm', '-f', '-t', '0', 'berthupd']).status, 0);
  });

  it('detached run, exec (with and without a terminal), stop and rm', () => {
    const run = podman(['run', '-d', '--name', 'berthpod', 'localhost/berth-bb:test', 'sleep', '60']);
    assert.equal(run.status, 0, run.stderr);
    const ex = podman(['exec', 'berthpod', 'sh', '-c', 'echo in-exec; cat /proc/1/cmdline | tr "\\0" " "']);
    assert.equal(ex.status, 0, ex.stderr);
    assert.equal(ex.stdout, 'in-exec\nsleep 60 ');
    const code = podman(['exec', 'berthpod', 'sh', '-c', 'exit 9']);
    assert.equal(code.status, 9);
    const tty = podman(['exec', '-t', 'berthpod', 'tty']);
    assert.equal(tty.status, 0, tty.stderr);
    assert.match(tty.stdout, /^\/dev\/pts\/\d+/);
    const inspect = podman(['inspect', '--format', '{{.State.Status}} {{.State.Pid}}', 'berthpod']);
    const [status, pid] = inspect.stdout.trim().split(' ');
    assert.equal(status, 'running');
    assert.ok(existsSync(`/proc/${pid}`));
    const stop = podman(['stop', '-t', '1', 'berthpod']);
    assert.equal(stop.status, 0, stop.stderr);
    assert.equal(podman(['inspect', '--format', '{{.State.Status}}', 'berthpod']).stdout.trim(), 'exited');
    assert.equal(podman(['rm', 'berthpod']).status, 0);
  });

  it('every mount has the options runc gives it (read-only paths keep nosuid, nodev, noexec)', (t) => {
    const withRuntime = (runtime: string) => {
      const r = spawnSync('podman', ['--runtime', runtime, 'run', '--rm', 'localhost/berth-bb:test', 'cat', '/proc/self/mountinfo'], { env, encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `${runtime}: ${r.stderr}`);
      // Mount point → per-mount options; several mounts on one point keep their order.
      const out = new Map<string, string[]>();
      for (const m of parseMountinfo(r.stdout)) out.set(m.mountPoint, [...(out.get(m.mountPoint) ?? []), m.options.sort().join(',')]);
      return out;
    };
    const runc = withRuntime('runc');
    const berth = withRuntime(FRONT);
    // On a hybrid host berth-runtime also shows the cgroup2 hierarchy (/sys/fs/cgroup/unified),
    // which runc 1.1 leaves out: extra cgroup hierarchies are listed, not compared.
    const extra = [...berth.keys()].filter((p) => !runc.has(p));
    assert.deepEqual(extra.filter((p) => !p.startsWith('/sys/fs/cgroup/')), [], 'no mount points runc does not make');
    for (const [point, opts] of runc) assert.deepEqual(berth.get(point), opts, `options of ${point}`);
    for (const p of ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys']) assert.deepEqual(berth.get(p), ['nodev,noexec,nosuid,relatime,ro'], p);
    t.diagnostic(`${runc.size} mount points compared${extra.length ? `; berth-runtime also has ${extra.join(', ')}` : ''}`);
  });
});
