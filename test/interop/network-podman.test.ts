/**
 * Differential with podman 4.3 (netavark, aardvark-dns) on a user network: what a container sees
 * inside (/etc/resolv.conf, /etc/hosts, `ip addr`, `ip route`) has the same shape with berth.
 * podman keeps its network configuration in a temp dir (network_config_dir), not /etc.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachContainer, cleanupLeftovers, createNetwork, detachContainer, pruneNetworks, type StoreRef } from '../../src/engine/network/index.js';
import { makeRootfs } from '../helpers/bundle.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { Netns, randomSubnet24, runTag } from '../helpers/netns.js';
import { podmanEnv, removePodmanWork } from '../helpers/podman.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const SCRIPT = 'cat /etc/resolv.conf; echo ===; cat /etc/hosts; echo ===; ip -4 -o addr; echo ===; ip route';

interface Seen { nameservers: string[]; hosts: string; addr: string[]; route: string[] }

/** The shape of what a container sees: addresses replaced by their role. */
function shape(out: string, ip: string, gateway: string, subnet: string): Seen {
  const [resolv = '', hosts = '', addr = '', route = ''] = out.split('===\n');
  const broadcast = subnet.replace(/0\/24$/, '255');
  const roles = (s: string) => s.replaceAll(subnet, 'SUBNET').replaceAll(broadcast, 'BROADCAST').replaceAll(gateway, 'GATEWAY').replaceAll(ip, 'IP').replace(/[ \t]+/g, ' ').trim();
  return {
    nameservers: resolv.split('\n').filter((l) => l.startsWith('nameserver')).map(roles),
    hosts,
    addr: addr.split('\n').filter(Boolean).map((l) => roles(l).replace(/^\d+: /, '').replace(/ valid_lft.*$/, '').replace(/\\$/, '').trim()).sort(),
    route: route.split('\n').filter(Boolean).map((l) => roles(l).replace(/ proto kernel/, '')).sort(),
  };
}

describe('networking differential with podman (netavark)', { skip: skipUnless(root('podman bridge networks'), peer('podman', 'podman'), peer('nft', 'nftables'), peer(BUSYBOX, 'busybox-static')) }, () => {
  const tag = runTag();
  const dir = mkdtempSync(join(tmpdir(), 'berth-netdiff-'));
  const env: NodeJS.ProcessEnv = podmanEnv(dir, {}, { tables: ['[network]', `network_config_dir = "${join(dir, 'networks')}"`] });
  delete env.NODE_EXTRA_CA_CERTS;
  const podman = (args: string[]) => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 0, `podman ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const ref: StoreRef = { root: join(dir, 'berth'), defaults: { defaultName: 'bridge', defaultBridge: `${tag}0`, defaultSubnet: randomSubnet24(), userPool: '10.208.0.0/16' }, dnsUpstreams: [] };
  const podNet = `${tag}-pod`;
  let ns: Netns | undefined;

  before(() => {
    const rootfs = join(dir, 'rootfs');
    makeRootfs(rootfs);
    const r = spawnSync('podman', ['import', '-', `localhost/${tag}:1`], { env, input: execFileSync('tar', ['-C', rootfs, '-c', '.'], { maxBuffer: 64 << 20 }), encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
  });

  after(() => {
    spawnSync('podman', ['rm', '-af', '-t', '0'], { env, timeout: 120_000 });
    spawnSync('podman', ['network', 'rm', '-f', podNet], { env, timeout: 60_000 });
    try {
      cleanupLeftovers([], ref);
      pruneNetworks(ref);
    } finally {
      ns?.destroy();
      removePodmanWork(dir, env);
    }
  });

  it('shows a container the same resolv.conf, hosts, addresses and routes on a user network', async () => {
    // podman
    let podSubnet = '';
    for (let i = 0; i < 20 && !podSubnet; i++) {
      const s = randomSubnet24();
      if (spawnSync('podman', ['network', 'create', '--subnet', s, podNet], { env, encoding: 'utf8', timeout: 60_000 }).status === 0) podSubnet = s;
    }
    assert.ok(podSubnet, 'podman network create');
    const podGw = podSubnet.replace(/0\/24$/, '1');
    const podOut = podman(['run', '--rm', '--network', podNet, '--name', 'web', `localhost/${tag}:1`, 'sh', '-c', SCRIPT]);
    const podIp = /inet (\S+)\/24/.exec(podOut)?.[1];
    assert.ok(podIp, podOut);
    // berth
    let net;
    for (let i = 0; i < 20 && !net; i++) {
      try {
        net = createNetwork({ ...ref, name: 'app', subnet: randomSubnet24() });
      } catch (err) {
        if (!/overlaps/.test((err as Error).message)) throw err;
      }
    }
    assert.ok(net);
    ns = new Netns(`${tag}-web`);
    const a = attachContainer({ ...ref, id: `${tag}web`, name: 'web', network: 'app', netnsPath: ns.path, hostsPath: ns.hostsPath });
    writeFileSync(ns.resolvPath, a.resolvConf);
    const r = await ns.exec(['sh', '-c', SCRIPT.replaceAll('ip ', `${BUSYBOX} ip `)]);
    assert.equal(r.status, 0, r.stderr);
    detachContainer(`${tag}web`, ref);

    const pod = shape(podOut, podIp!, podGw, podSubnet);
    const ours = shape(r.stdout, a.ip, a.gateway, net!.subnet);
    // podman lists the host's servers after its own; berth's name server relays to them instead (as docker's)
    assert.equal(pod.nameservers[0], 'nameserver GATEWAY', 'podman: the network\'s name server first');
    assert.deepEqual(ours.nameservers, ['nameserver GATEWAY'], 'berth: the network\'s name server');
    assert.deepEqual(ours.addr, pod.addr, 'ip addr');
    assert.deepEqual(ours.route, pod.route, 'ip route');
    for (const [who, seen, ip] of [['podman', pod, podIp!], ['berth', ours, a.ip]] as const) {
      assert.match(seen.hosts, /^127\.0\.0\.1\s+localhost/m, `${who}: localhost`);
      assert.match(seen.hosts, new RegExp(`^${ip.replaceAll('.', '\\.')}\\s.*\\bweb\\b`, 'm'), `${who}: its own name`);
    }
  });
});
