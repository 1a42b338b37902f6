/** The engine's plain-data parts, without root: docker's rules for the command, capabilities, options, seccomp. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { containerResolvConf } from '../../src/engine/containers/hostfiles.js';
import { parseEnv, parseMount, parseSecurityOpts, parseSize, parseTmpfs, parseUlimit, parseVolume, signalNumber } from '../../src/engine/containers/options.js';
import { DOCKER_CAPS, effectiveCaps, processArgs } from '../../src/engine/containers/spec.js';
import { defaultSeccomp, dockerProfileToSeccomp } from '../../src/engine/seccomp-profile.js';
import type { ImageConfig } from '../../src/base/types.js';

const image = (c: { Entrypoint?: string[]; Cmd?: string[] }): ImageConfig =>
  ({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: c }) as ImageConfig;

describe('docker\'s rules for entrypoint and command', () => {
  it('ENTRYPOINT + CMD; a command replaces CMD; --entrypoint replaces ENTRYPOINT and drops CMD', () => {
    const img = image({ Entrypoint: ['/ep'], Cmd: ['a', 'b'] });
    assert.deepEqual(processArgs(img, undefined, []), ['/ep', 'a', 'b']);
    assert.deepEqual(processArgs(img, undefined, ['x']), ['/ep', 'x']);
    assert.deepEqual(processArgs(img, 'sh', []), ['sh']);
    assert.deepEqual(processArgs(img, 'sh', ['-c', 'true']), ['sh', '-c', 'true']);
    assert.deepEqual(processArgs(img, '', ['echo', 'hi']), ['echo', 'hi']);
    assert.throws(() => processArgs(image({}), undefined, []), /no command specified/);
    assert.throws(() => processArgs(img, '', []), /no command specified/);
  });
});

describe('capabilities', () => {
  it('docker\'s 14 by default; ALL, add and drop as docker combines them', () => {
    const base = { capAdd: [], capDrop: [], privileged: false };
    assert.deepEqual(effectiveCaps(base), [...DOCKER_CAPS]);
    assert.equal(DOCKER_CAPS.length, 14);
    assert.deepEqual(effectiveCaps({ ...base, capDrop: ['ALL'], capAdd: ['net_admin'] }), ['CAP_NET_ADMIN']);
    assert.ok(!effectiveCaps({ ...base, capDrop: ['CHOWN'] }).includes('CAP_CHOWN'));
    assert.ok(effectiveCaps({ ...base, capAdd: ['ALL'] }).includes('CAP_SYS_ADMIN'));
    assert.throws(() => effectiveCaps({ ...base, capAdd: ['CAP_NOPE'] }), /unknown capability/);
  });
});

describe('run options', () => {
  it('-e and --env-file: K=V, K from our environment (dropped when unset), comments', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-opts-'));
    try {
      writeFileSync(join(dir, 'f'), '# c\n\nA=1\nFROM_ENV\n');
      assert.deepEqual(parseEnv(['B=2', 'UNSET_HERE', 'FROM_ENV'], [join(dir, 'f')], { FROM_ENV: 'x' }), ['A=1', 'FROM_ENV=x', 'B=2', 'FROM_ENV=x']);
      assert.throws(() => parseEnv([], [join(dir, 'missing')]), /--env-file .*no such file/);
      assert.throws(() => parseEnv(['=x'], []), /name is empty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('-v, --mount, --tmpfs: checked, with clear errors', () => {
    assert.deepEqual(parseVolume('/tmp:/data:ro'), { type: 'bind', source: '/tmp', destination: '/data', options: ['rbind', 'rprivate', 'ro'] });
    assert.deepEqual(parseVolume('cache:/c'), { type: 'volume', source: 'cache', destination: '/c', options: ['rbind', 'rprivate'] });
    assert.throws(() => parseVolume('/nonexistent-xyz:/d'), /does not exist/);
    assert.throws(() => parseVolume('/tmp:relative'), /must be absolute/);
    assert.throws(() => parseVolume('/tmp:/d:bogus'), /unknown mode/);
    // `-v /path` alone, and --mount type=volume without a source: an anonymous volume (source '').
    assert.deepEqual(parseVolume('/cache'), { type: 'volume', source: '', destination: '/cache', options: ['rbind', 'rprivate'] });
    assert.equal(parseMount('type=volume,target=/v').source, '');
    assert.throws(() => parseVolume('cache'), /HOST-PATH:CONTAINER-PATH/);
    assert.deepEqual(parseMount('type=tmpfs,target=/t,tmpfs-size=1m'), { type: 'tmpfs', source: 'tmpfs', destination: '/t', options: ['nosuid', 'nodev', 'noexec', 'size=1048576'] });
    assert.equal(parseMount('type=bind,source=/tmp,target=/x,readonly').options.at(-1), 'ro');
    assert.throws(() => parseMount('type=bind,target=/x'), /needs source/);
    assert.throws(() => parseMount('type=nfs,target=/x'), /unknown type/);
    assert.deepEqual(parseTmpfs('/run:size=64k'), { type: 'tmpfs', source: 'tmpfs', destination: '/run', options: ['noexec', 'nosuid', 'nodev', 'size=64k'] });
  });

  it('--ulimit, sizes, signals, --security-opt', () => {
    assert.deepEqual(parseUlimit('nofile=100:200'), { name: 'nofile', soft: 100, hard: 200 });
    assert.deepEqual(parseUlimit('nproc=50'), { name: 'nproc', soft: 50, hard: 50 });
    assert.throws(() => parseUlimit('nofile=300:200'), /soft limit exceeds/);
    assert.throws(() => parseUlimit('bogus=1'), /unknown name/);
    assert.equal(parseSize('memory', '64m'), 64 << 20);
    assert.equal(parseSize('memory', '1.5g'), 1.5 * 2 ** 30);
    assert.throws(() => parseSize('memory', 'lots'), /not a size/);
    assert.equal(signalNumber('SIGTERM'), 15);
    assert.equal(signalNumber('kill'), 9);
    assert.equal(signalNumber('10'), 10);
    assert.equal(signalNumber('RTMIN+2'), 36);
    assert.throws(() => signalNumber('SIGNOPE'), /invalid signal/);
    assert.deepEqual(parseSecurityOpts(['no-new-privileges']), { noNewPrivileges: true });
    assert.deepEqual(parseSecurityOpts(['seccomp=unconfined']), { noNewPrivileges: false, seccomp: 'unconfined' });
    assert.throws(() => parseSecurityOpts(['seccomp=/nonexistent.json']), /cannot read the profile/);
    assert.throws(() => parseSecurityOpts(['bogus']), /invalid --security-opt/);
  });

  it('resolv.conf without loopback name servers for a container network', () => {
    const host = 'search example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n';
    assert.equal(containerResolvConf(host, 'none'), 'search example\nnameserver 10.0.0.2\n');
    assert.equal(containerResolvConf(host, 'host'), host);
  });
});

describe('the default seccomp profile', () => {
  it('allows what the capabilities allow, on this architecture', () => {
    const plain = defaultSeccomp(DOCKER_CAPS, 'x64');
    assert.equal(plain.defaultAction, 'SCMP_ACT_ERRNO');
    assert.deepEqual(plain.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const allowed = (s: typeof plain, name: string) => s.syscalls!.some((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes(name) && !r.args);
    assert.ok(allowed(plain, 'read'));
    assert.ok(allowed(plain, 'arch_prctl'), 'an amd64-only rule');
    assert.ok(!allowed(plain, 'sync_file_range2'), 'a ppc64le-only rule');
    assert.ok(!allowed(plain, 'bpf'), 'CAP_SYS_ADMIN only');
    assert.ok(allowed(defaultSeccomp([...DOCKER_CAPS, 'CAP_SYS_ADMIN'], 'x64'), 'bpf'));
    assert.ok(!allowed(plain, 'settimeofday'));
    assert.ok(allowed(defaultSeccomp([...DOCKER_CAPS, 'CAP_SYS_TIME'], 'x64'), 'settimeofday'));
  });

  it('reads a profile in docker\'s format for --security-opt seccomp=FILE', () => {
    const text = JSON.stringify({
      defaultAction: 'SCMP_ACT_ALLOW',
      archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
      syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }, { name: 'chroot', action: 'SCMP_ACT_ERRNO', excludes: { caps: ['CAP_SYS_CHROOT'] } }],
    });
    const s = dockerProfileToSeccomp(text, DOCKER_CAPS, 'x64');
    assert.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
    assert.deepEqual(s.syscalls, [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }]);
    assert.throws(() => dockerProfileToSeccomp('{}', DOCKER_CAPS), /no defaultAction/);
    assert.throws(() => dockerProfileToSeccomp('nope', DOCKER_CAPS), /not JSON/);
  });
});
