/**
 * Differential: the same busybox image and command under `berth run` and `docker run` (Debian's
 * docker 20.10, a dockerd of its own in a temp dir, no bridge: both with --network none) must
 * print the same: id, pwd, env, the capability, no_new_privs and seccomp lines of
 * /proc/self/status, the mounts (targets and options), /etc/hosts, exit codes 0/1/7/126/127,
 * stdout and stderr apart, a -v file read and written, --read-only, -u 65534, --entrypoint, -w.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { DOCKER, DOCKERD, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { OPTION_CASES, sameExitCodesAndStreams, sameVolumeAndOptions, type Both } from './differential.js';

describe('berth run vs docker run', { skip: skipUnless(root('containers and dockerd need root'), peer(DOCKER, 'docker.io'), peer(DOCKERD, 'docker.io'), peer(BUSYBOX, 'busybox-static')) }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-vs-docker-'));
  let d: Dockerd;
  let e: EngineRoot;
  const both = async (args: string[], cmd: string[]) => {
    const dk = d.run(['run', '--rm', '--network', 'none', ...args, 'bb:test', ...cmd]);
    const b = await e.berth(['run', '--rm', '--network', 'none', ...args, 'busybox', ...cmd]);
    return { dk, b };
  };
  const pair: Both = async (args, cmd) => {
    const { dk, b } = await both(args, cmd);
    return { peer: dk, berth: b };
  };

  before(async () => {
    await buildBusyboxRootfs(join(dir, 'rootfs'));
    const tar = execFileSync('tar', ['-C', join(dir, 'rootfs'), '-c', '.'], { maxBuffer: 64 << 20 });
    d = await startDockerd();
    const r = d.run(['import', '--change', 'CMD ["sh"]', '-', 'bb:test'], tar);
    assert.equal(r.code, 0, r.stderr);
    e = await engineRoot();
  });

  after(async () => {
    await d?.stop();
    await e?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('id, pwd, env and the security lines of /proc/self/status', async () => {
    const { dk, b } = await both([], ['sh', '-c', 'id; pwd; env | sort; grep -E "^(CapEff|CapBnd|CapPrm|NoNewPrivs|Seccomp):" /proc/self/status']);
    assert.equal(dk.code, 0, dk.stderr);
    assert.equal(b.code, 0, b.stderr);
    const norm = (s: string) => s.replace(/^HOSTNAME=[0-9a-f]{12}$/m, 'HOSTNAME=<id>');
    assert.equal(norm(b.stdout), norm(dk.stdout));
  });

  it('the mounts: the same targets with the same options; /etc/hosts of the same shape', async () => {
    const { dk, b } = await both([], ['sh', '-c', 'cut -d" " -f5,6 /proc/self/mountinfo']);
    // On a hybrid host berth also mounts the container's cgroup2 directory at
    // /sys/fs/cgroup/unified (runc, which docker runs, mounts only the v1 hierarchies).
    const parse = (s: string) => new Map(s.trim().split('\n').map((l) => l.split(' ') as [string, string]).filter(([t]) => t !== '/sys/fs/cgroup/unified'));
    const dm = parse(dk.stdout);
    const bm = parse(b.stdout);
    assert.deepEqual([...bm.keys()].sort(), [...dm.keys()].sort());
    for (const [target, opts] of bm) assert.equal(opts, dm.get(target), target);
    const hosts = await both([], ['cat', '/etc/hosts']);
    const shape = (s: string) => s.replace(/\b[0-9a-f]{12}\b/g, '<id>');
    assert.equal(shape(hosts.b.stdout), shape(hosts.dk.stdout));
  });

  it('exit codes 0, 1, 7, 126, 127 and stdout/stderr apart', () => sameExitCodesAndStreams(pair, 'docker'));

  it('-v (a file read and written), --read-only, -u 65534, --entrypoint, -w (also of a directory the image lacks)', () =>
    sameVolumeAndOptions(pair, 'docker', [...OPTION_CASES, [['-w', '/no/such/dir'], ['pwd']]]));
});
