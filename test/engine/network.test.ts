/**
 * Container networking against the kernel: namespaces this test makes (ip netns), busybox httpd
 * and nc inside, published ports reached on 127.0.0.1 from the host, names on a user network,
 * --internal, conflicts, and teardown that leaves no veth, rule or address. Traffic only goes to
 * 127.0.0.0/8 and to the subnets of the namespaces made here.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  attachContainer, cleanupLeftovers, createNetwork, detachContainer, inspectNetwork, listNetworks, parsePublishAll,
  pruneNetworks, removeDefaultBridge, removeNetwork, type NetworkDefaults, type StoreRef,
} from '../../src/engine/network/index.js';
import { vethName } from '../../src/engine/network/link.js';
import { isBerthError } from '../../src/base/errors.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { Netns, randomSubnet24, runTag } from '../helpers/netns.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

const tag = runTag();
const defaults: NetworkDefaults = { defaultName: 'bridge', defaultBridge: `${tag}0`, defaultSubnet: randomSubnet24(), userPool: '10.208.0.0/16' };

/** A DNS answer to query `q`: `addr` for `name`, REFUSED for anything else. */
function fakeAnswer(q: Buffer, name: string, addr: number[]): Buffer {
  let off = 12;
  const labels: string[] = [];
  while (q[off]) {
    labels.push(q.subarray(off + 1, off + 1 + q[off]!).toString());
    off += q[off]! + 1;
  }
  const qend = off + 5;
  const head = Buffer.from(q.subarray(0, qend));
  head[2] = 0x81;
  if (labels.join('.') !== name || q.readUInt16BE(off + 1) !== 1) {
    head[3] = 0x85;
    return head;
  }
  head[3] = 0x80;
  head.writeUInt16BE(1, 6);
  return Buffer.concat([head, Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...addr])]);
}

/** busybox wget inside a namespace, retried while the server there starts. */
async function wgetIn(ns: Netns, url: string): Promise<{ stdout: string; stderr: string }> {
  let r = { stdout: '', stderr: '' };
  for (let i = 0; i < 30; i++) {
    r = await ns.exec(['timeout', '5', BUSYBOX, 'wget', '-q', '-O', '-', url]);
    if (!/Connection refused/.test(r.stderr)) return r;
    await new Promise((res) => setTimeout(res, 200));
  }
  return r;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    return '';
  }
}
const links = () => sh('ip', ['-o', 'link', 'show']);
const rules = () => sh('nft', ['list', 'table', 'ip', 'berth']);

/** GET http://127.0.0.1:port/path, retried while the server inside starts. */
async function get(port: number, host = '127.0.0.1', tries = 30): Promise<string> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const req = request({ host, port, path: '/', timeout: 2000 }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve(body));
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
        req.end();
      });
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}

describe('container networking (bridge, veth, nftables)', { skip: skipUnless(root('network namespaces, links and nftables'), peer('ip', 'iproute2'), peer('nft', 'nftables'), peer(BUSYBOX, 'busybox-static')) }, () => {
  let dir: string;
  let ref: StoreRef;
  const spaces: Netns[] = [];
  let n = 0;
  const ns = () => {
    const s = new Netns(`${tag}-${n++}`);
    spaces.push(s);
    return s;
  };
  const servers: Server[] = [];
  /** A user network on a random free /24 (retried when the subnet is taken on this host). */
  const network = (name: string, extra: { internal?: boolean } = {}) => {
    for (let i = 0; ; i++) {
      try {
        return createNetwork({ ...ref, name, subnet: randomSubnet24(), ...extra });
      } catch (err) {
        if (i > 20 || !/overlaps/.test((err as Error).message)) throw err;
      }
    }
  };
  const httpd = (s: Netns, text: string, port = 80) => {
    const www = mkdtempSync(join(dir, 'www-'));
    writeFileSync(join(www, 'index.html'), text);
    s.start([BUSYBOX, 'httpd', '-f', '-p', String(port), '-h', www]);
  };

  /** The name server user networks relay unknown names to: a fake on 127.0.0.1 that knows one name. */
  let upstream: Socket;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-net-'));
    upstream = createSocket('udp4', (q, from) => upstream.send(fakeAnswer(q, 'outside.test', [192, 0, 2, 7]), from.port, from.address));
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
    ref = { root: dir, defaults, dnsUpstreams: [`127.0.0.1:${upstream.address().port}`] };
  });

  after(() => {
    upstream.close();
    for (const s of servers) s.close();
    try {
      cleanupLeftovers([], ref);
      pruneNetworks(ref);
      removeDefaultBridge(ref);
    } finally {
      for (const s of spaces) s.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(!links().includes(tag), `links of this run left behind:\n${links()}`);
    assert.ok(!rules().includes(tag), `rules of this run left behind:\n${rules()}`);
  });

  it('publishes a TCP port on 127.0.0.1 and on all addresses, and answers from busybox httpd inside', async () => {
    const s = ns();
    const a = attachContainer({ ...ref, id: `${tag}web`, name: 'web', netnsPath: s.path, publish: parsePublishAll(['127.0.0.1::80', '80']), hostsPath: s.hostsPath });
    assert.equal(a.network, 'bridge');
    assert.equal(a.gateway, defaults.defaultSubnet.replace(/0\/24$/, '1'));
    assert.equal(a.iface, 'eth0');
    const [local, any] = a.ports;
    assert.ok(local && any && local.hostPort !== any.hostPort);
    // ip addr inside: the address, lo up, a default route via the gateway
    const addr = (await s.exec(['ip', '-4', '-o', 'addr'])).stdout;
    assert.match(addr, new RegExp(`eth0\\s+inet ${a.ip.replaceAll('.', '\\.')}/24`));
    assert.match(addr, /lo\s+inet 127\.0\.0\.1\/8/);
    assert.match((await s.exec(['ip', 'route'])).stdout, new RegExp(`default via ${a.gateway.replaceAll('.', '\\.')} dev eth0`));
    assert.match(readFileSync(s.hostsPath, 'utf8'), new RegExp(`${a.ip}\\t${tag}web`.replaceAll('.', '\\.').slice(0, 20)));
    httpd(s, 'hello from a namespace\n');
    assert.equal(await get(local.hostPort), 'hello from a namespace\n');
    assert.equal(await get(any.hostPort), 'hello from a namespace\n');
    assert.equal(await get(any.hostPort, '127.0.0.2'), 'hello from a namespace\n', '0.0.0.0 covers every local address');
    // hairpin: the container reaches its own published port through a host address
    assert.equal((await wgetIn(s, `http://${a.gateway}:${any.hostPort}/`)).stdout, 'hello from a namespace\n');
    // the container reaches the host through its gateway (outbound path)
    const probe = createServer((c) => c.end('host says hi\n'));
    servers.push(probe);
    await new Promise<void>((r) => probe.listen(0, a.gateway, r));
    const port = (probe.address() as { port: number }).port;
    assert.equal((await s.exec([BUSYBOX, 'nc', a.gateway, String(port)])).stdout, 'host says hi\n');
    detachContainer(`${tag}web`, ref);
    assert.ok(!links().includes(a.veth), 'veth deleted');
    assert.ok(!rules().includes(`${a.ip}:80`), 'DNAT rules deleted');
    assert.doesNotMatch((await s.exec(['ip', '-4', '-o', 'addr'])).stdout, /eth0/, 'no address left in the namespace');
    await assert.rejects(get(local.hostPort, '127.0.0.1', 1));
  });

  it('publishes a UDP port', async () => {
    const s = ns();
    const a = attachContainer({ ...ref, id: `${tag}udp`, name: 'udp', netnsPath: s.path, publish: parsePublishAll(['127.0.0.1::5353/udp']) });
    // busybox has no UDP server: a few lines of Node echo inside the namespace
    const echo = s.start([process.execPath, '-e', "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('echo:'+m,r.port,r.address));s.bind(5353,()=>console.log('ready'))"]);
    // Node takes seconds to start on a loaded machine: send once it listens
    await new Promise<void>((resolve, reject) => {
      echo.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      echo.once('exit', (code) => reject(new Error(`the UDP echo server exited (${code})`)));
    });
    const port = a.ports[0]!.hostPort;
    const sock = createSocket('udp4');
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        const timer = setInterval(() => sock.send('ping', port, '127.0.0.1'), 200);
        sock.on('message', (m) => {
          clearInterval(timer);
          resolve(m.toString());
        });
        setTimeout(() => {
          clearInterval(timer);
          reject(new Error('no UDP answer through the published port'));
        }, 15000);
      });
      assert.equal(answer, 'echo:ping');
    } finally {
      sock.close();
      detachContainer(`${tag}udp`, ref);
    }
  });

  it('lets containers on a user network reach each other by name and alias, and follows connect/disconnect', async () => {
    const net = network('app');
    const web = ns();
    const client = ns();
    const w = attachContainer({ ...ref, id: `${tag}w`, name: 'web1', aliases: ['www'], network: 'app', netnsPath: web.path, hostsPath: web.hostsPath, addHosts: ['gw:host-gateway'] });
    httpd(web, 'by name\n');
    const c = attachContainer({ ...ref, id: `${tag}c`, name: 'client1', network: 'app', netnsPath: client.path, hostsPath: client.hostsPath, dns: ['10.0.0.53'] });
    assert.notEqual(w.ip, c.ip);
    assert.equal(c.resolvConf.split('\n').filter((l) => l.startsWith('nameserver')).join(), 'nameserver 10.0.0.53', '--dns wins');
    assert.equal(w.dnsServer, net.gateway);
    assert.deepEqual(w.warnings, []);
    assert.match(w.resolvConf, new RegExp(`^nameserver ${net.gateway.replaceAll('.', '\\.')}$`, 'm'), 'the network\'s name server');
    writeFileSync(client.resolvPath, w.resolvConf);
    // the network's name server (berth-dns on the gateway) answers names and aliases, and relays the rest
    for (const [name, ip] of [['web1', w.ip], ['www', w.ip], ['client1', c.ip], ['outside.test', '192.0.2.7']]) {
      const r = await client.exec(['timeout', '5', BUSYBOX, 'nslookup', name!, net.gateway]);
      assert.match(r.stdout, new RegExp(`Address: ${ip!.replaceAll('.', '\\.')}$`, 'm'), `nslookup ${name}: ${r.stdout}${r.stderr}`);
    }
    const nxdomain = await client.exec(['timeout', '5', BUSYBOX, 'nslookup', 'nowhere.test', net.gateway]);
    assert.doesNotMatch(nxdomain.stdout, /Address: \d/, 'an unknown name has no address');
    for (const name of ['web1', 'www']) {
      const r = await wgetIn(client, `http://${name}/`);
      assert.equal(r.stdout, 'by name\n', `${name}: ${r.stderr}`);
    }
    // the first container's hosts file was rewritten when the second joined
    const webHosts = readFileSync(web.hostsPath, 'utf8');
    assert.match(webHosts, new RegExp(`^${c.ip.replaceAll('.', '\\.')}\\tclient1 `, 'm'));
    assert.match(webHosts, new RegExp(`^${net.gateway.replaceAll('.', '\\.')}\\tgw$`, 'm'));
    assert.deepEqual(inspectNetwork('app', ref).containers.map((x) => x.name).sort(), ['client1', 'web1']);
    assert.throws(() => removeNetwork('app', ref), (e) => isBerthError(e) && /network app is in use by web1, client1|network app is in use by client1, web1/.test(e.message));
    detachContainer(`${tag}c`, { ...ref, network: 'app' });
    assert.doesNotMatch(readFileSync(web.hostsPath, 'utf8'), /client1/, 'the name is gone when the container leaves');
    writeFileSync(web.resolvPath, w.resolvConf);
    const gone = await web.exec(['timeout', '5', BUSYBOX, 'nslookup', 'client1', net.gateway]);
    assert.doesNotMatch(gone.stdout, new RegExp(`Address: ${c.ip.replaceAll('.', '\\.')}`), 'nor does the name server know it');
    const responder = () => sh('ss', ['-ulpn', `src ${net.gateway}:53`]);
    assert.match(responder(), /berth-dns/);
    detachContainer(`${tag}w`, ref);
    assert.doesNotMatch(responder(), /berth-dns/, 'the name server stops with the last container');
    assert.equal(removeNetwork('app', ref).name, 'app');
    assert.ok(!links().includes(`${net.bridge}:`), 'bridge removed');
    assert.ok(!rules().includes(`_${net.bridge}`), 'chains removed');
  });

  it('keeps an --internal network off the host\'s other addresses and off other networks', async () => {
    const inner = network('inner', { internal: true });
    const outer = network('outer');
    const a = ns();
    const b = ns();
    attachContainer({ ...ref, id: `${tag}in`, name: 'in', network: 'inner', netnsPath: a.path });
    const ob = attachContainer({ ...ref, id: `${tag}out`, name: 'out', network: 'outer', netnsPath: b.path });
    assert.throws(() => attachContainer({ ...ref, id: `${tag}p`, name: 'p', network: 'inner', netnsPath: a.path, publish: parsePublishAll(['80']) }), /internal: ports cannot be published/);
    // a host address on the other network (its gateway), with a listener
    const probe = createServer((c) => c.end('reached\n'));
    servers.push(probe);
    await new Promise<void>((r) => probe.listen(0, outer.gateway, r));
    const port = String((probe.address() as { port: number }).port);
    assert.equal((await b.exec([BUSYBOX, 'nc', outer.gateway, port])).stdout, 'reached\n', 'control: the normal network reaches it');
    assert.doesNotMatch((await a.exec(['ip', 'route'])).stdout, /default/, 'no default route on an internal network');
    // even a container that adds its own route (CAP_NET_ADMIN) is dropped by the rules
    await a.exec(['ip', 'route', 'add', 'default', 'via', inner.gateway]);
    assert.notEqual((await a.exec([BUSYBOX, 'nc', '-w', '2', outer.gateway, port], 6000)).stdout, 'reached\n');
    assert.notEqual((await a.exec([BUSYBOX, 'nc', '-w', '2', ob.ip, '80'], 6000)).status, 0, 'nor another network\'s container');
    detachContainer(`${tag}in`, ref);
    detachContainer(`${tag}out`, ref);
    assert.deepEqual(pruneNetworks(ref).sort(), ['inner', 'outer']);
  });

  it('refuses a host port in use by a process or another container, with clear errors', async () => {
    const server = createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const busy = (server.address() as { port: number }).port;
    const s1 = ns();
    const s2 = ns();
    assert.throws(
      () => attachContainer({ ...ref, id: `${tag}x`, name: 'x', netnsPath: s1.path, publish: parsePublishAll([`127.0.0.1:${busy}:80`]) }),
      /host port 127.0.0.1:\d+\/tcp is already in use \(a process on this host listens on it\): choose another host port/,
    );
    assert.ok(!links().includes(vethName(`${tag}x`, 'bridge')), 'no veth made by the failed attach');
    assert.ok(!inspectNetwork('bridge', ref).containers.some((c) => c.id === `${tag}x`), 'nothing recorded by the failed attach');
    const a = attachContainer({ ...ref, id: `${tag}x`, name: 'x', netnsPath: s1.path, publish: parsePublishAll(['127.0.0.1::80']) });
    const taken = a.ports[0]!.hostPort;
    assert.throws(
      () => attachContainer({ ...ref, id: `${tag}y`, name: 'y', netnsPath: s2.path, publish: parsePublishAll([`${taken}:80`]) }),
      (e) => isBerthError(e) && e.message.includes(`container ${tag}x publishes it`),
    );
    assert.throws(() => createNetwork({ ...ref, name: 'clash', subnet: defaults.defaultSubnet }), /overlaps network bridge/);
    assert.throws(() => attachContainer({ ...ref, id: `${tag}x`, name: 'x', netnsPath: s1.path }), /already on network bridge/);
    assert.throws(() => attachContainer({ ...ref, id: `${tag}z`, name: 'z', network: 'nonesuch', netnsPath: s2.path }), /network "nonesuch" not found/);
    assert.throws(() => attachContainer({ ...ref, id: `${tag}z`, name: 'z', netnsPath: '/proc/999999999/ns/net' }), /\/proc\/999999999\/ns\/net: No such file or directory/);
    assert.ok(!inspectNetwork('bridge', ref).containers.some((c) => c.id === `${tag}z`), 'a failed attach records nothing');
    detachContainer(`${tag}x`, ref);
  });

  it('cleans up after a crash: records of dead containers, stray veths, stale rules', async () => {
    const s1 = ns();
    const s2 = ns();
    const a = attachContainer({ ...ref, id: `${tag}live`, name: 'live', netnsPath: s1.path, publish: parsePublishAll(['127.0.0.1::81']) });
    const d = attachContainer({ ...ref, id: `${tag}dead`, name: 'dead', netnsPath: s2.path, publish: parsePublishAll(['127.0.0.1::82']) });
    // a veth a killed `run` made before it could record it
    execFileSync('ip', ['link', 'add', 'vb0123456789ab', 'type', 'veth', 'peer', 'name', `${tag}p`]);
    execFileSync('ip', ['link', 'set', 'vb0123456789ab', 'master', defaults.defaultBridge]);
    // rules someone removed by hand come back from the records with repairRules
    for (const c of ['pre', 'out']) execFileSync('nft', ['flush', 'chain', 'ip', 'berth', `${c}_${defaults.defaultBridge}`]);
    assert.ok(!rules().includes(`${a.ip}:81`));
    assert.deepEqual(cleanupLeftovers([`${tag}live`], { ...ref, repairRules: true }), [`${tag}dead`]);
    const l = links();
    assert.ok(!l.includes('vb0123456789ab') && !l.includes(d.veth), 'stray and dead veths deleted');
    assert.ok(l.includes(a.veth), 'the live container keeps its veth');
    assert.ok(rules().includes(`${a.ip}:81`) && !rules().includes(`${d.ip}:82`), 'rules of the live container only');
    assert.deepEqual(inspectNetwork('bridge', ref).containers.map((c) => c.name), ['live']);
    detachContainer(`${tag}live`, ref);
    assert.ok(!rules().includes(`${a.ip}:81`));
    assert.ok(listNetworks(ref).some((x) => x.name === 'bridge'));
  });

  it('leaves the veth to the kernel when the namespace is gone (run --rm), and frees the address', async () => {
    const s = new Netns(`${tag}-gone`);
    try {
      const a = attachContainer({ ...ref, id: `${tag}gone`, name: 'gone', netnsPath: s.path });
      assert.ok(links().includes(a.veth));
      s.destroy();
      detachContainer(`${tag}gone`, { ...ref, namespaceGone: true });
      assert.ok(!inspectNetwork('bridge', ref).containers.some((c) => c.id === `${tag}gone`), 'address released');
      for (let i = 0; i < 50 && links().includes(a.veth); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(!links().includes(a.veth), 'the kernel deleted the pair with the namespace');
    } finally {
      s.destroy();
    }
  });

  it('attaches 10 namespaces at once from separate processes, each with its own address', async () => {
    const spacesNow = Array.from({ length: 10 }, () => ns());
    const mod = new URL('../../src/engine/network/index.js', import.meta.url).href;
    const script = `const n = await import(${JSON.stringify(mod)}); const [root, defaults, id, path] = process.argv.slice(1);
process.stdout.write(n.attachContainer({ root, defaults: JSON.parse(defaults), id, name: id, netnsPath: path }).ip);`;
    const { spawn } = await import('node:child_process');
    const ips = await Promise.all(
      spacesNow.map(
        (s, i) =>
          new Promise<string>((resolve, reject) => {
            const c = spawn(process.execPath, ['--input-type=module', '-e', script, dir, JSON.stringify(defaults), `${tag}m${i}`, s.path], { stdio: ['ignore', 'pipe', 'pipe'] });
            let out = '';
            let err = '';
            c.stdout.on('data', (x) => (out += x));
            c.stderr.on('data', (x) => (err += x));
            c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(err))));
          }),
      ),
    );
    assert.equal(new Set(ips).size, 10);
    for (const [i, s] of spacesNow.entries()) assert.match((await s.exec(['ip', '-4', '-o', 'addr', 'show', 'eth0'])).stdout, new RegExp(`inet ${ips[i]!.replaceAll('.', '\\.')}/`));
    // every namespace reaches the first over the bridge
    const first = spacesNow[0]!;
    httpd(first, 'bridge ok\n');
    const r = await wgetIn(spacesNow[9]!, `http://${ips[0]}/`);
    assert.equal(r.stdout, 'bridge ok\n', r.stderr);
    for (let i = 0; i < 10; i++) detachContainer(`${tag}m${i}`, ref);
    assert.equal(inspectNetwork('bridge', ref).containers.length, 0);
  });
});
