/**
 * berth run with bridge networking, end to end as a user runs it (the built CLI, as root): a
 * published port answered on 127.0.0.1 from the host, nothing left after rm -f, two containers
 * on a user network that reach each other by name and alias, container:NAME.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { vethName } from '../../src/engine/network/link.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { addBusyboxImage, engineRoot, type EngineRoot } from '../helpers/engine.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

/** A port nothing on 127.0.0.1 listens on now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((res) => s.listen(0, '127.0.0.1', res));
  const port = (s.address() as { port: number }).port;
  await new Promise((res) => s.close(res));
  return port;
}

/** GET http://127.0.0.1:PORT/PATH, retried while httpd starts (up to ~5 s). */
async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  for (let i = 0; ; i++) {
    try {
      return await new Promise((res, rej) => {
        get({ host: '127.0.0.1', port, path, timeout: 2000 }, (r) => {
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (d: string) => (body += d));
          r.on('end', () => res({ status: r.statusCode ?? 0, body }));
        }).on('error', rej).on('timeout', function (this: { destroy(e: Error): void }) { this.destroy(new Error('timeout')); });
      });
    } catch (err) {
      if (i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const links = (): string => spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
const ruleset = (): string => spawnSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).stdout;

describe('berth run --network bridge and user networks', { skip: skipUnless(root('containers and networks need root'), peer('ip', 'iproute2'), peer('nft', 'nftables'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let e: EngineRoot;
  let www: string;
  before(async () => {
    e = await engineRoot();
    www = mkdtempSync(join(tmpdir(), 'berth-www-'));
    chmodSync(www, 0o755);
    writeFileSync(join(www, 'index.html'), 'hello from berth\n');
  });
  after(async () => {
    await e.close();
    rmSync(www, { recursive: true, force: true });
  });

  it('publishes -p 127.0.0.1:P:80 of busybox httpd to the host, and rm -f leaves no veth or rule', async () => {
    const port = await freePort();
    const r = await e.berth(['run', '-d', '-p', `127.0.0.1:${port}:80`, '-v', `${www}:/www:ro`, 'busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    const got = await httpGet(port, '/index.html');
    assert.equal(got.status, 200);
    assert.equal(got.body, 'hello from berth\n');
    assert.equal((await e.berth(['port', id])).stdout, `80/tcp -> 127.0.0.1:${port}\n`);
    const doc = JSON.parse((await e.berth(['inspect', id])).stdout) as { NetworkSettings: { Ports: unknown }; HostConfig: { NetworkMode: string } }[];
    assert.deepEqual(doc[0]!.NetworkSettings.Ports, { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] });
    assert.equal(doc[0]!.HostConfig.NetworkMode, 'bridge');
    const veth = vethName(id, 'bridge');
    assert.match(links(), new RegExp(`: ${veth}@`), 'the host end of the veth pair');
    assert.match(ruleset(), new RegExp(`dport ${port} dnat to`), 'the DNAT rule');
    const rm = await e.berth(['rm', '-f', id]);
    assert.equal(rm.code, 0, rm.stderr);
    // The kernel deletes the veth with the namespace, in the background: allow it a moment.
    for (let i = 0; i < 50 && links().includes(`: ${veth}@`); i++) await new Promise((res) => setTimeout(res, 100));
    assert.doesNotMatch(links(), new RegExp(`: ${veth}@`));
    assert.doesNotMatch(ruleset(), new RegExp(`dport ${port} dnat to`));
    assert.equal((await e.berth(['port', id])).stdout, '');
  });

  it('-P publishes the image\'s EXPOSE on free host ports, which answer on 127.0.0.1', async () => {
    await addBusyboxImage(e.root, 'docker.io/library/web:latest', { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'], exposedPorts: ['80/tcp'] });
    const r = await e.berth(['run', '-d', '-P', '-v', `${www}:/www:ro`, 'web']);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    const m = /^80\/tcp -> 0\.0\.0\.0:(\d+)$/.exec((await e.berth(['port', id])).stdout.trim());
    assert.ok(m, 'one published port for EXPOSE 80/tcp');
    assert.equal((await httpGet(Number(m[1]), '/index.html')).body, 'hello from berth\n');
    assert.equal((await e.berth(['rm', '-f', id])).code, 0);
  });

  it('gives the container an address, a default route and a resolv.conf; --network none has only lo', async () => {
    const r = await e.berth(['run', '--rm', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0; ip route; grep -c ^nameserver /etc/resolv.conf']);
    assert.equal(r.code, 0, r.stderr);
    const subnet = e.env.BERTH_NETWORK_SUBNET!.replace(/\.0\/24$/, '');
    assert.match(r.stdout, new RegExp(`eth0\\s+inet ${subnet.replaceAll('.', '\\.')}\\.\\d+/24`));
    assert.match(r.stdout, new RegExp(`^default via ${subnet.replaceAll('.', '\\.')}\\.1 dev eth0`, 'm'));
    const none = await e.berth(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'ls /sys/class/net']);
    assert.equal(none.stdout, 'lo\n');
    // inspect says which, as docker's NetworkSettings (IPAddress, IPPrefixLen, Gateway, Networks.bridge).
    const d = await e.berth(['run', '-d', 'busybox', 'sleep', '60']);
    assert.equal(d.code, 0, d.stderr);
    const id = d.stdout.trim();
    const inside = / inet (\S+)\/24 /.exec((await e.berth(['exec', id, 'ip', '-o', '-4', 'addr', 'show', 'eth0'])).stdout)?.[1];
    const shown = (await e.berth(['inspect', '-f', '{{.NetworkSettings.IPAddress}} {{.NetworkSettings.IPPrefixLen}} {{.NetworkSettings.Gateway}} {{.NetworkSettings.Networks.bridge.IPAddress}}', id])).stdout;
    assert.equal(shown, `${inside} 24 ${subnet}.1 ${inside}\n`);
    assert.equal((await e.berth(['rm', '-f', id])).code, 0);
    const unattached = (await e.berth(['create', '--network', 'none', 'busybox', 'true'])).stdout.trim();
    assert.equal((await e.berth(['inspect', '-f', '{{json .NetworkSettings.Networks}} {{.NetworkSettings.IPAddress}}.', unattached])).stdout, '{} .\n');
    assert.equal((await e.berth(['rm', unattached])).code, 0);
  });

  it('berth-init plugs the namespace as it clones the container; when that fails, start says why and keeps no address', async (t) => {
    const c = await e.berth(['create', '--name', 'plugfail', 'busybox', 'true']);
    assert.equal(c.code, 0, c.stderr);
    const id = c.stdout.trim();
    const veth = vethName(id, 'bridge');
    // A link with the veth's name already on the host: the veth pair cannot be made.
    assert.equal(spawnSync('ip', ['link', 'add', veth, 'type', 'bridge']).status, 0);
    t.after(async () => { await e.berth(['rm', '-f', 'plugfail']); });
    try {
      const r = await e.berth(['start', '-a', 'plugfail']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /attaching the container to bridge \S+: creating the veth pair: File exists/);
      const recs = join(e.root, 'network', 'endpoints', 'bridge');
      const held = existsSync(recs) ? spawnSync('grep', ['-rl', id, recs], { encoding: 'utf8' }).stdout : '';
      assert.equal(held, '', 'no address recorded for the container');
    } finally {
      spawnSync('ip', ['link', 'del', veth]);
    }
    const ok = await e.berth(['start', '-a', 'plugfail']);
    assert.equal(ok.code, 0, `starts once the name is free: ${ok.stderr}`);
    assert.equal((await e.berth(['rm', 'plugfail'])).code, 0);
    assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
  });

  it('--dns, --dns-search and --dns-option make /etc/resolv.conf (bridge and none); a value that would add a line is refused', async () => {
    const want = 'search example.test corp.test\nnameserver 10.9.9.9\nnameserver 10.9.9.8\noptions ndots:2 timeout:1\n';
    const args = ['--dns', '10.9.9.9', '--dns', '10.9.9.8', '--dns-search', 'example.test', '--dns-search', 'corp.test', '--dns-option', 'ndots:2', '--dns-option', 'timeout:1', 'busybox', 'cat', '/etc/resolv.conf'];
    for (const network of ['bridge', 'none']) {
      const r = await e.berth(['run', '--rm', '--network', network, ...args]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, want, `--network ${network}`);
    }
    // Only a search domain: the host's servers stay (docker keeps those it can reach).
    const only = await e.berth(['run', '--rm', '--dns-search', 'example.test', 'busybox', 'cat', '/etc/resolv.conf']);
    assert.match(only.stdout, /^search example\.test\n(nameserver \S+\n)+$/);
    const bad = await e.berth(['run', '--rm', '--dns-option', 'ndots:1\nnameserver 10.6.6.6', 'busybox', 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /--dns-option "ndots:1\\nnameserver 10\.6\.6\.6" is not a resolver option/);
    const shared = await e.berth(['run', '--rm', '--network', 'container:x', '--dns-search', 'a.test', 'busybox', 'true']);
    assert.match(shared.stderr, /--dns-search cannot be used with --network container:x/);
  });

  for (const runtime of ['runc', 'crun'] as const) {
    it(`--runtime ${runtime} on a bridge network: a namespace the engine owns, attached, published, removed with the container`, { skip: skipUnless(peer(runtime, runtime), peer('unshare', 'util-linux')) }, async (t) => {
      let rt: string = runtime;
      const wrapDir = mkdtempSync(join(tmpdir(), 'berth-crun-'));
      t.after(() => rmSync(wrapDir, { recursive: true, force: true }));
      if (runtime === 'crun') {
        // crun refuses hybrid cgroup hosts: it runs where the cgroup2 controller list reads empty
        // (a private mount namespace; nothing global changes).
        writeFileSync(join(wrapDir, 'empty'), '');
        rt = join(wrapDir, 'crun');
        writeFileSync(rt, `#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount --bind ${join(wrapDir, 'empty')} /sys/fs/cgroup/unified/cgroup.controllers && exec crun "$@"' crun "$@"\n`);
        chmodSync(rt, 0o755);
      }
      const fg = await e.berth(['run', '--rm', '--runtime', rt, 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0; ip route']);
      assert.equal(fg.code, 0, fg.stderr);
      const subnet = e.env.BERTH_NETWORK_SUBNET!.replace(/\.0\/24$/, '').replaceAll('.', '\\.');
      assert.match(fg.stdout, new RegExp(`eth0\\s+inet ${subnet}\\.\\d+/24`));
      assert.match(fg.stdout, new RegExp(`^default via ${subnet}\\.1 dev eth0`, 'm'));
      const port = await freePort();
      const r = await e.berth(['run', '-d', '--runtime', rt, '-p', `127.0.0.1:${port}:80`, '-v', `${www}:/www:ro`, 'busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
      assert.equal(r.code, 0, r.stderr);
      const id = r.stdout.trim();
      assert.equal((await httpGet(port, '/index.html')).body, 'hello from berth\n');
      const nsFile = join(e.root, 'netns', id);
      assert.match(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${nsFile} .* nsfs `), 'the namespace is kept by a bind mount');
      const veth = vethName(id, 'bridge');
      assert.equal((await e.berth(['rm', '-f', id])).code, 0);
      assert.equal(existsSync(nsFile), false);
      assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${nsFile} `));
      for (let i = 0; i < 50 && links().includes(`: ${veth}@`); i++) await new Promise((res) => setTimeout(res, 100));
      assert.doesNotMatch(links(), new RegExp(`: ${veth}@`));
      assert.doesNotMatch(ruleset(), new RegExp(`dport ${port} dnat to`));
      assert.equal((await e.berth(['ps', '-aq'])).stdout, '');
    });
  }

  it('lets two containers on a user network reach each other by name and alias; container:NAME shares a namespace', async () => {
    const net = await e.berth(['network', 'create', 'app']);
    assert.equal(net.code, 0, net.stderr);
    const srv = await e.berth(['run', '-d', '--name', 'srv', '--network', 'app', '--network-alias', 'www', '-v', `${www}:/www:ro`, 'busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
    assert.equal(srv.code, 0, srv.stderr);
    const script = 'for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://srv/index.html && break; sleep 0.2; done; wget -qO- http://www/index.html';
    const c = await e.berth(['run', '--rm', '--name', 'client', '--network', 'app', 'busybox', 'sh', '-c', script]);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'hello from berth\nhello from berth\n');
    // inspect shows its address on the user network as docker does (the top-level fields are the default network's).
    const shown = JSON.parse((await e.berth(['inspect', '-f', '{{json .NetworkSettings}}', 'srv'])).stdout) as { IPAddress: string; Networks: Record<string, { IPAddress: string; IPPrefixLen: number; Gateway: string; Aliases: string[] }> };
    const info = JSON.parse((await e.berth(['network', 'inspect', 'app'])).stdout) as [{ IPAM: { Config: [{ Subnet: string; Gateway: string }] }; Containers: Record<string, { IPv4Address: string }> }] | { subnet: string }[];
    assert.equal(shown.IPAddress, '');
    assert.deepEqual(Object.keys(shown.Networks), ['app']);
    assert.deepEqual(shown.Networks.app!.Aliases, ['www']);
    assert.ok(JSON.stringify(info).includes(shown.Networks.app!.IPAddress), `${shown.Networks.app!.IPAddress} in ${JSON.stringify(info)}`);
    // Renamed: the others resolve the new name, and no longer the old one (the alias stays).
    assert.equal((await e.berth(['rename', 'srv', 'srv2'])).code, 0);
    const renamed = await e.berth(['run', '--rm', '--network', 'app', 'busybox', 'sh', '-c', 'wget -qO- http://srv2/index.html; wget -qO- http://www/index.html; wget -T 2 -qO- http://srv/index.html || echo old-gone']);
    assert.equal(renamed.stdout, 'hello from berth\nhello from berth\nold-gone\n', renamed.stderr);
    assert.equal((await e.berth(['rename', 'srv2', 'srv'])).code, 0);
    const shared = await e.berth(['run', '--rm', '--network', 'container:srv', 'busybox', 'wget', '-qO-', 'http://127.0.0.1/index.html']);
    assert.equal(shared.stdout, 'hello from berth\n', shared.stderr);
    assert.notEqual((await e.berth(['network', 'rm', 'app'])).code, 0, 'a network in use is refused');
    assert.equal((await e.berth(['stop', '-t', '1', 'srv'])).code, 0);
    const stopped = await e.berth(['run', '--rm', '--network', 'container:srv', 'busybox', 'true']);
    assert.equal(stopped.code, 125);
    assert.match(stopped.stderr, /container srv is not running; start it first/);
    assert.equal((await e.berth(['rm', 'srv'])).code, 0);
    const rm = await e.berth(['network', 'rm', 'app']);
    assert.equal(rm.code, 0, rm.stderr);
  });
});
