/** `ps --filter` as docker 20.10 reads it (src/engine/containers/ps-filter.ts), on container records. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePsFilters } from '../../src/engine/containers/ps-filter.js';
import type { Container, ContainerConfig, ContainerStatus } from '../../src/engine/containers/store.js';

function ctr(name: string, status: ContainerStatus, created: string, config: Partial<ContainerConfig> = {}, exitCode?: number): Container {
  return {
    id: `${name}`.padEnd(64, '0'), name, created, dir: `/nonexistent/${name}`,
    state: { status, pid: 0, pidStart: 0, monitorPid: 0, ...(exitCode !== undefined ? { exitCode } : {}) },
    config: {
      image: 'docker.io/library/busybox:latest', imageDigest: 'sha256:abcd', args: ['sh'], env: [], user: '', workdir: '/', hostname: name,
      labels: {}, stopSignal: 'SIGTERM', tty: false, interactive: false, autoRemove: false, runtime: 'berth', network: 'bridge',
      readOnly: false, mounts: [], logMaxSize: 1, ...config,
    },
  };
}

const ALL = [
  ctr('web1', 'running', '2026-01-01T00:00:01Z', { labels: { app: 'web', tier: '' }, publish: [{ hostIp: '', hostPort: 8080, containerPort: 80, proto: 'tcp' }] }),
  ctr('db1', 'exited', '2026-01-01T00:00:02Z', { labels: { app: 'db' }, network: 'none', mounts: [{ type: 'volume', source: 'data', destination: '/var/lib/db', options: [] }] }, 3),
  ctr('web2', 'created', '2026-01-01T00:00:03Z', { labels: { app: 'web' } }),
];

function names(filters: string[]): string[] {
  const f = parsePsFilters(filters, (ref) => ALL.find((c) => c.name === ref) ?? assert.fail(`no such container: ${ref}`));
  return ALL.filter((c) => f.matches(c, c.state.exitCode)).map((c) => c.name);
}

describe('ps --filter (docker\'s rules)', () => {
  it('values of one key are alternatives; different keys must all hold; label filters all hold', () => {
    assert.deepEqual(names(['status=exited', 'status=created']), ['db1', 'web2']);
    assert.deepEqual(names(['status=exited', 'status=created', 'label=app=web']), ['web2']);
    assert.deepEqual(names(['label=app', 'label=tier']), ['web1']);
    assert.deepEqual(names(['label=app=db']), ['db1']);
  });

  it('name is a regular expression over NAME and /NAME; id a prefix', () => {
    assert.deepEqual(names(['name=^web']), ['web1', 'web2']);
    assert.deepEqual(names(['name=^web1$']), ['web1']);
    assert.deepEqual(names(['name=/db1']), ['db1']);
    assert.deepEqual(names(['name=b']), ['web1', 'db1', 'web2']);
    assert.deepEqual(names(['id=db1']), ['db1']);
  });

  it('exited, before, since, network, volume, publish, expose, and the keys with one answer here', () => {
    assert.deepEqual(names(['exited=3']), ['db1']);
    assert.deepEqual(names(['exited=0']), []);
    assert.deepEqual(names(['before=db1']), ['web1']);
    assert.deepEqual(names(['since=db1']), ['web2']);
    assert.deepEqual(names(['network=none']), ['db1']);
    assert.deepEqual(names(['volume=data']), ['db1']);
    assert.deepEqual(names(['volume=/var/lib/db']), ['db1']);
    assert.deepEqual(names(['publish=8080']), ['web1']);
    assert.deepEqual(names(['publish=8000-8100/tcp']), ['web1']);
    assert.deepEqual(names(['publish=80']), []);
    assert.deepEqual(names(['expose=80']), ['web1']);
    assert.deepEqual(names(['expose=80/udp']), []);
    assert.deepEqual(names(['health=none']), ['web1', 'db1', 'web2']);
    assert.deepEqual(names(['health=healthy']), []);
    assert.deepEqual(names(['is-task=false']), ['web1', 'db1', 'web2']);
    assert.deepEqual(names(['isolation=default']), ['web1', 'db1', 'web2']);
  });

  it('status and exited filters look past running containers (as -a); the others do not', () => {
    assert.equal(parsePsFilters(['status=running'], () => ALL[0]!).all, true);
    assert.equal(parsePsFilters(['exited=0'], () => ALL[0]!).all, true);
    assert.equal(parsePsFilters(['name=web'], () => ALL[0]!).all, false);
  });

  it('refuses what docker refuses, before listing anything', () => {
    assert.throws(() => names(['status=bogus']), /invalid filter 'status=bogus'/);
    assert.throws(() => names(['bogus=1']), /invalid filter 'bogus'/);
    assert.throws(() => names(['exited=x']), /invalid filter 'exited=x'/);
    assert.throws(() => names(['health=ok']), /invalid filter 'health=ok'/);
    assert.throws(() => names(['name=(']), /invalid filter 'name=\('/);
    assert.throws(() => names(['status']), /expected name=value/);
    assert.throws(() => names(['before=nosuch']), /no such container: nosuch/);
  });
});
