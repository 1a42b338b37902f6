/**
 * Differential with docker 20.10 (Debian's): what a container sees inside on docker's default
 * bridge and on a user network (/etc/resolv.conf, /etc/hosts, `ip addr`, `ip route`) has the same
 * shape under `berth run`, addresses replaced by their role. docker's defaults (docker0, iptables
 * rules) change a host's firewall, so its dockerd runs inside a network namespace of the test's
 * own (test/helpers/dockerd.ts): nothing it does reaches the host's network, and it all goes
 * with the namespace.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BUSYBOX, buildBusyboxRootfs } from '../helpers/busybox.js';
import { DOCKER, DOCKERD, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { runTag } from '../helpers/netns.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const SCRIPT = 'hostname; echo ===; cat /etc/resolv.conf; echo ===; cat /etc/hosts; echo ===; ip -4 -o addr; echo ===; ip route';

interface Seen { resolv: string[]; hosts: string[]; addr: string[]; route: string[] }

/** Another: berth's default route has metric 100, as podman's (netavark) has; docker's none. */
function withoutMetric(route: string[]): string[] {
  assert.ok(route.includes('default via GATEWAY dev eth0 metric 100'), `berth's default route: ${route.join(' | ')}`);
  return route.map((l) => l.replace(/ metric 100$/, ''));
}

/**
 * A known difference: docker 20.10's line for the container itself names its hostname only;
 * berth's (as podman's) names the container too, so that it resolves its own name. Checked, then left out.
 */
function withoutOwnName(hosts: string[], name: string): string[] {
  assert.ok(hosts.includes(`IP HOSTNAME ${name}`), `berth lists its own name: ${hosts.join(' | ')}`);
  return hosts.map((l) => (l === `IP HOSTNAME ${name}` ? 'IP HOSTNAME' : l));
}

/** What a container saw, its own address, gateway, subnet and name replaced by their role. */
function shape(out: string): Seen {
  const [name = '', resolv = '', hosts = '', addr = '', route = ''] = out.split('===\n');
  const m = /eth0\s+inet (\d+\.\d+\.\d+\.\d+)\/(\d+) brd (\S+)/.exec(addr);
  assert.ok(m, `an address on eth0: ${addr}`);
  const [, ip, prefix, brd] = m;
  const gw = /^default via (\S+)/m.exec(route)?.[1] ?? 'none';
  const subnet = /^(\S+\/\d+) dev eth0/m.exec(route)?.[1] ?? 'none';
  const roles = (s: string) => s.replaceAll(subnet, 'SUBNET').replaceAll(`${ip}/${prefix}`, 'IP/PREFIX').replaceAll(brd!, 'BROADCAST')
    .replaceAll(gw, 'GATEWAY').replaceAll(ip!, 'IP').replaceAll(name.trim(), 'HOSTNAME').replace(/[ \t]+/g, ' ').trim();
  const lines = (s: string) => s.split('\n').filter((l) => l.trim() && !l.startsWith('#')).map(roles);
  return {
    resolv: lines(resolv),
    hosts: lines(hosts),
    addr: lines(addr).map((l) => l.replace(/^\d+: /, '').replace(/ valid_lft.*$/, '').replace(/\\$/, '').trim()).sort(),
    route: lines(route).map((l) => l.replace(/ proto kernel/, '')).sort(),
  };
}

describe('networking differential with docker (in a namespace of its own)', { skip: skipUnless(root('containers, dockerd and namespaces need root'), peer(DOCKER, 'docker.io'), peer(DOCKERD, 'docker.io'), peer('nsenter', 'util-linux'), peer('nft', 'nftables'), peer(BUSYBOX, 'busybox-static')) }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-netdocker-'));
  const netns = `${runTag()}-dk`;
  let d: Dockerd | undefined;
  let e: EngineRoot | undefined;

  before(async () => {
    await buildBusyboxRootfs(join(dir, 'rootfs'));
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    d = await startDockerd({ netns });
    const r = d.run(['import', '--change', 'CMD ["sh"]', '-', 'bb:test'], execFileSync('tar', ['-C', join(dir, 'rootfs'), '-c', '.'], { maxBuffer: 64 << 20 }));
    assert.equal(r.code, 0, r.stderr);
    e = await engineRoot();
  });

  after(async () => {
    if (d) {
      d.run(['rm', '-f', ...d.run(['ps', '-aq']).stdout.split('\n').filter(Boolean)]);
      await d.stop();
    }
    spawnSync('ip', ['netns', 'del', netns]);
    await e?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the default bridge: the same resolv.conf, hosts, addresses and routes', async () => {
    const dk = d!.run(['run', '--rm', 'bb:test', 'sh', '-c', SCRIPT]);
    assert.equal(dk.code, 0, dk.stderr);
    const b = await e!.berth(['run', '--rm', '--name', 'plain', 'busybox', 'sh', '-c', SCRIPT]);
    assert.equal(b.code, 0, b.stderr);
    const docker = shape(dk.stdout);
    const ours = shape(b.stdout);
    assert.deepEqual(ours.resolv, docker.resolv, '/etc/resolv.conf (the host\'s, loopback servers left out)');
    assert.deepEqual(withoutOwnName(ours.hosts, 'plain'), docker.hosts, '/etc/hosts');
    assert.deepEqual(ours.addr, docker.addr, 'ip addr');
    assert.deepEqual(withoutMetric(ours.route), docker.route, 'ip route');
  });

  it('a user network: the same hosts, addresses and routes; each names its network\'s own name server', async () => {
    d!.docker('network', 'create', 'app');
    const dk = d!.run(['run', '--rm', '--network', 'app', '--name', 'web', 'bb:test', 'sh', '-c', SCRIPT]);
    assert.equal(dk.code, 0, dk.stderr);
    assert.equal((await e!.berth(['network', 'create', 'app'])).code, 0);
    const b = await e!.berth(['run', '--rm', '--network', 'app', '--name', 'web', 'busybox', 'sh', '-c', SCRIPT]);
    assert.equal(b.code, 0, b.stderr);
    const docker = shape(dk.stdout);
    const ours = shape(b.stdout);
    assert.deepEqual(withoutOwnName(ours.hosts, 'web'), docker.hosts, '/etc/hosts');
    assert.deepEqual(ours.addr, docker.addr, 'ip addr');
    assert.deepEqual(withoutMetric(ours.route), docker.route, 'ip route');
    // docker's embedded server listens on 127.0.0.11 inside each container; berth's on the gateway (as podman's aardvark-dns)
    assert.deepEqual(docker.resolv.filter((l) => l.startsWith('nameserver')), ['nameserver 127.0.0.11']);
    assert.deepEqual(ours.resolv.filter((l) => l.startsWith('nameserver')), ['nameserver GATEWAY']);
    assert.equal((await e!.berth(['network', 'rm', 'app'])).code, 0);
  });
});
