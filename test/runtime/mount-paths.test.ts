/**
 * Mount, device and symlink destinations are resolved inside the root filesystem when they are
 * mounted (berth-init: openat2 RESOLVE_IN_ROOT): symlinks in the image, and symlinks inside an
 * earlier bind mount's source, resolve as they would in the container and never lead a mount
 * outside it. Checked from inside the container (/proc/self/mountinfo) and on the host.
 * Needs root (namespaces, mounts); CI runs as root.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBusyboxBundle, type Bundle } from '../helpers/bundle.js';
import { Runtime } from './runtime-cli.js';
import { root, skipUnless } from '../helpers/requirements.js';


describe('mount destinations resolve inside the root filesystem', { skip: skipUnless(root('mounts')) }, () => {
  let rt: Runtime;
  let bundle: Bundle;
  let host: string;
  before(() => {
    rt = new Runtime();
    bundle = makeBusyboxBundle();
    host = mkdtempSync(join(tmpdir(), 'berth-mount-paths-'));
  });
  after(() => {
    rt.cleanup();
    bundle.cleanup();
    rmSync(host, { recursive: true, force: true });
  });

  it('follows symlinks as the container sees them, and never mounts on the host', () => {
    const root = bundle.rootfs;
    mkdirSync(join(root, 'real'));
    symlinkSync('/real', join(root, 'abs'));                  // absolute: the container's /real
    symlinkSync('../../../../../../etc', join(root, 'escape')); // climbs past / : stays at /
    symlinkSync('../missing/resolv.conf', join(root, 'etc/dangling')); // made where it points
    // A bind-mounted directory (a volume) holding a symlink to a host path, and a later mount
    // below it: the later mount must land in the container's /HOSTDIR, not the host's.
    const volume = join(host, 'volume');
    const hostTarget = join(host, 'target');
    mkdirSync(volume);
    mkdirSync(hostTarget);
    symlinkSync(hostTarget, join(volume, 'sub'));
    const marker = join(host, 'file');
    writeFileSync(marker, 'from the host\n');
    bundle.spec.mounts!.push(
      { destination: '/abs/x', type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] },
      { destination: '/escape/y', type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] },
      { destination: '/etc/dangling', type: 'bind', source: marker, options: ['bind', 'ro'] },
      { destination: '/data', type: 'bind', source: volume, options: ['rbind'] },
      { destination: '/data/sub', type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] },
    );
    bundle.spec.process!.args = ['/bin/sh', '-c', 'cut -d" " -f5 /proc/self/mountinfo; cat /missing/resolv.conf'];
    bundle.save();
    const r = rt.run(['run', '--bundle', bundle.dir, 'mountpaths']);
    assert.equal(r.status, 0, r.stderr);
    const points = r.stdout.split('\n');
    for (const p of ['/real/x', '/etc/y', '/missing/resolv.conf', hostTarget]) assert.ok(points.includes(p), `${p} is not a mount point inside: ${r.stdout}`);
    assert.match(r.stdout, /from the host/);
    // The host's side: nothing was mounted on or created in the symlink's host target, and the
    // rootfs got the directories the container sees.
    assert.deepEqual(readdirSync(hostTarget), []);
    assert.ok(existsSync(join(root, 'real/x')) && existsSync(join(root, 'etc/y')) && existsSync(join(root, hostTarget.slice(1))));
  });
});
