/** Network records and the address allocator: subnets, overlaps, allocation, release, reconcile, 50 processes at once. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULTS, NetworkStore, capacity, defaultsFromEnv, type NetworkDefaults } from '../../src/engine/network/store.js';
import { contains, formatIPv4, overlaps, parseIPv4, parseSubnet } from '../../src/engine/network/ipv4.js';
import { isBerthError } from '../../src/base/errors.js';
import { LEGACY_SCHEMA } from '../../src/engine/network/legacy.js';

const defaults: NetworkDefaults = { defaultName: 'bridge', defaultBridge: 'tst0', defaultSubnet: '10.90.0.0/16', userPool: '10.91.0.0/16' };

function ep(container: string) {
  return { container, name: container, aliases: [], iface: 'eth0', veth: `v${container}`, hostsPath: null, hostsExtra: [], hostname: container };
}

describe('IPv4 subnets', () => {
  it('parses, checks host bits and overlap', () => {
    assert.equal(formatIPv4(parseIPv4('10.90.1.2')), '10.90.1.2');
    assert.equal(parseIPv4('255.255.255.255'), 0xffffffff);
    assert.throws(() => parseIPv4('10.0.0.256'), /not an IPv4 address/);
    assert.throws(() => parseIPv4('10.01.0.1'), /not an IPv4 address/);
    assert.throws(() => parseSubnet('10.90.0.1/16'), /host bits set: did you mean 10.90.0.0\/16/);
    assert.throws(() => parseSubnet('10.90.0.0'), /CIDR/);
    assert.throws(() => parseSubnet('10.90.0.0/31'), /too small/);
    assert.ok(overlaps(parseSubnet('10.0.0.0/8'), parseSubnet('10.91.3.0/24')));
    assert.ok(!overlaps(parseSubnet('10.90.0.0/16'), parseSubnet('10.91.0.0/16')));
    assert.ok(contains(parseSubnet('10.90.0.0/16'), parseIPv4('10.90.255.254')));
    assert.equal(capacity('10.0.0.0/24'), 253);
  });
});

describe('default subnets', () => {
  it('keep clear of podman\'s and docker\'s default networks and address pools', () => {
    const podman = ['10.88.0.0/16', '10.89.0.0/16', '10.90.0.0/15', '10.92.0.0/14', '10.96.0.0/11', '10.128.0.0/9'];
    const docker = ['172.17.0.0/16', '172.16.0.0/12', '192.168.0.0/16'];
    for (const ours of [DEFAULTS.defaultSubnet, DEFAULTS.userPool]) {
      for (const theirs of [...podman, ...docker]) assert.ok(!overlaps(parseSubnet(ours), parseSubnet(theirs)), `${ours} overlaps ${theirs}`);
    }
    assert.ok(!overlaps(parseSubnet(DEFAULTS.defaultSubnet), parseSubnet(DEFAULTS.userPool)));
    assert.equal(defaultsFromEnv({ BERTH_NETWORK_SUBNET: '10.5.0.0/16', BERTH_NETWORK_BRIDGE: 'br9' }).defaultSubnet, '10.5.0.0/16');
    assert.equal(defaultsFromEnv({}).defaultBridge, 'berth0');
  });
});

describe('network records and allocator', () => {
  let root: string;
  let store: NetworkStore;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-netstore-'));
    store = NetworkStore.open(root, defaults);
  });
  after(() => {
    store.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('creates the default network on first use, on a subnet clear of docker and podman', () => {
    const n = store.requireNetwork('bridge');
    assert.equal(n.bridge, 'tst0');
    assert.equal(n.subnet, '10.90.0.0/16');
    assert.equal(n.gateway, '10.90.0.1');
    assert.equal(n.dnsEnabled, false);
    for (const other of ['10.88.0.0/16', '172.17.0.0/16', '10.89.0.0/24']) assert.ok(!overlaps(parseSubnet(n.subnet), parseSubnet(other)), other);
    assert.match(n.id, /^[0-9a-f]{64}$/);
    assert.equal(store.findNetwork(n.id.slice(0, 12))?.name, 'bridge');
  });

  it('creates user networks with a free /24 from the pool, or the given subnet and gateway', () => {
    const a = store.createNetwork({ name: 'front' });
    assert.equal(a.subnet, '10.91.0.0/24');
    assert.equal(a.bridge, 'tst1');
    assert.equal(a.dnsEnabled, true);
    const b = store.createNetwork({ name: 'back', subnet: '192.168.77.0/24', gateway: '192.168.77.254', internal: true });
    assert.equal(b.gateway, '192.168.77.254');
    assert.equal(b.internal, true);
    const c = store.createNetwork({ name: 'c', hostRoutes: ['10.91.1.0/24'], hostLinks: new Set(['tst2']) });
    assert.equal(c.subnet, '10.91.2.0/24', 'skips the pool /24 a host route uses');
    assert.equal(c.bridge, 'tst3', 'skips a bridge name the host has');
  });

  it('refuses overlapping subnets, duplicate names and bad gateways with clear errors', () => {
    assert.throws(() => store.createNetwork({ name: 'x', subnet: '10.91.0.128/25' }), /subnet 10.91.0.128\/25 overlaps network front \(10.91.0.0\/24\): choose a subnet/);
    assert.throws(() => store.createNetwork({ name: 'y', subnet: '10.0.0.0/8' }), /overlaps network/);
    assert.throws(() => store.createNetwork({ name: 'z', subnet: '10.50.0.0/16', hostRoutes: ['10.50.3.0/24'] }), /overlaps a route of this host/);
    assert.throws(() => store.createNetwork({ name: 'front' }), /already exists/);
    assert.throws(() => store.createNetwork({ name: 'bridge' }), /already exists/);
    assert.throws(() => store.createNetwork({ name: 'g', subnet: '10.60.0.0/24', gateway: '10.61.0.1' }), /not a host address of subnet/);
    assert.throws(() => store.createNetwork({ name: 'bad name' }), /invalid/);
    assert.throws(() => store.requireNetwork('nope'), (e) => isBerthError(e, 'NOT_FOUND') && /berth network create nope/.test(e.message));
  });

  it('allocates the lowest free address, honours --ip, releases, and never gives one twice', () => {
    const net = store.requireNetwork('front');
    const ips = store.tx(() => ['a', 'b', 'c'].map((c) => store.allocate(net, ep(c))));
    assert.deepEqual(ips, ['10.91.0.2', '10.91.0.3', '10.91.0.4']);
    assert.throws(() => store.tx(() => store.allocate(net, ep('d'), '10.91.0.3')), /already taken/);
    assert.throws(() => store.tx(() => store.allocate(net, ep('d'), '10.91.0.1')), /not a free host address/);
    assert.throws(() => store.tx(() => store.allocate(net, ep('d'), '10.91.0.255')), /not a free host address/);
    assert.equal(store.tx(() => store.allocate(net, ep('d'), '10.91.0.200')), '10.91.0.200');
    store.tx(() => store.release('b', 'front'));
    assert.equal(store.tx(() => store.allocate(net, ep('e'))), '10.91.0.3', 'a released address is reused');
    const dead = store.reconcile(['a', 'e']);
    assert.deepEqual(dead.map((d) => d.container).sort(), ['c', 'd']);
    assert.deepEqual(store.endpoints('front').map((e) => e.ip), ['10.91.0.2', '10.91.0.3']);
  });

  it('runs out of addresses with a clear error', () => {
    const net = store.createNetwork({ name: 'tiny', subnet: '10.62.0.0/30' });
    assert.equal(store.tx(() => store.allocate(net, ep('t1'))), '10.62.0.2');
    assert.throws(() => store.tx(() => store.allocate(net, ep('t2'))), /no free address left/);
  });

  it('gives 50 concurrent processes 50 distinct addresses', async () => {
    const net = store.createNetwork({ name: 'many' });
    const script = join(root, 'alloc.mjs');
    const mod = pathToFileURL(join(import.meta.dirname, '..', '..', 'src', 'engine', 'network', 'store.js')).href;
    writeFileSync(
      script,
      `import { NetworkStore } from ${JSON.stringify(mod)};
const s = NetworkStore.open(process.argv[2], JSON.parse(process.argv[3]));
const net = s.requireNetwork('many');
const c = process.argv[4];
const ip = s.tx(() => s.allocate(net, { container: c, name: c, aliases: [], iface: 'eth0', veth: 'v' + c, hostsPath: null, hostsExtra: [], hostname: c }));
process.stdout.write(ip);
s.close();
`,
    );
    const run = (i: number) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [script, root, JSON.stringify(defaults), `p${i}`], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`allocator process ${i} failed: ${err}`))));
      });
    const ips = await Promise.all(Array.from({ length: 50 }, (_, i) => run(i)));
    assert.equal(new Set(ips).size, 50, `duplicates in ${ips.join(' ')}`);
    for (const ip of ips) assert.ok(contains(parseSubnet(net.subnet), parseIPv4(ip)), ip);
    assert.equal(store.endpoints('many').length, 50);
  });
});

describe('the file store: transactions, its lock, and roots of the SQLite store', () => {
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'berth-netfiles-')); });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('undoes what a transaction made when it throws, and keeps what it removed', () => {
    const store = NetworkStore.open(join(root, 'a'), defaults);
    const net = store.createNetwork({ name: 'u' });
    store.tx(() => store.allocate(net, ep('keep')));
    assert.throws(() => store.tx(() => {
      store.allocate(net, ep('x'));
      store.addPort({ hostIp: '127.0.0.1', hostPort: 8080, proto: 'tcp', container: 'x', network: 'u', containerIp: '10.91.0.3', containerPort: 80 });
      store.release('keep', 'u');
      throw new Error('boom');
    }), /boom/);
    assert.deepEqual(store.endpoints('u').map((e) => e.container), ['keep'], 'x released, keep restored');
    assert.deepEqual(store.ports(), []);
    assert.throws(() => store.tx(() => store.allocate(net, ep('keep'))), /already on network u/);
  });

  it('takes over a lock whose owner died, and waits for a live one', () => {
    const store = NetworkStore.open(join(root, 'b'), defaults);
    const lock = join(store.dir, 'lock');
    writeFileSync(lock, '999999999 1\n');
    assert.equal(store.tx(() => store.ensureDefault().name), 'bridge', 'a dead owner\'s lock is broken');
    assert.equal(existsSync(lock), false, 'released after the transaction');
    // A live owner (pid 1, with its start time): tx waits until it lets go (here: another process removes the file).
    const start = readFileSync('/proc/1/stat', 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(lock, `1 ${start}\n`);
    const t0 = Date.now();
    spawn('sh', ['-c', `sleep 0.4; rm -f '${lock}'`], { stdio: 'ignore' });
    assert.equal(store.tx(() => 1), 1);
    assert.ok(Date.now() - t0 >= 300, `waited ${Date.now() - t0} ms for the live owner`);
  });

  it('imports a root made by the SQLite store once, and moves the database aside', () => {
    const dir = join(root, 'legacy', 'network');
    mkdirSync(dir, { recursive: true });
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (f: string) => { exec(s: string): void; prepare(s: string): { run(...a: unknown[]): void }; close(): void };
    const db = new Database(join(dir, 'network.db'));
    db.exec(LEGACY_SCHEMA);
    db.prepare('INSERT INTO networks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run('bridge', 'a'.repeat(64), 'tst0', '10.90.0.0/16', '10.90.0.1', 0, 0, '2026-01-01T00:00:00.000Z', 1);
    db.prepare('INSERT INTO networks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)').run('front', 'b'.repeat(64), 'tst1', '10.91.0.0/24', '10.91.0.1', 0, 1, '2026-01-01T00:00:00.000Z', 0);
    db.prepare('INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run('c1', 'front', 'web', '["w"]', '10.91.0.2', 'eth0', 'vb0123456789ab', null, '[]', 'c1');
    db.prepare('INSERT INTO ports VALUES (?, ?, ?, ?, ?, ?, ?)').run('127.0.0.1', 8080, 'tcp', 'c1', 'front', '10.91.0.2', 80);
    db.close();
    const store = NetworkStore.open(join(root, 'legacy'), defaults);
    assert.deepEqual(store.networks().map((n) => [n.name, n.bridge, n.active, n.dnsEnabled]), [['bridge', 'tst0', true, false], ['front', 'tst1', false, true]]);
    assert.deepEqual(store.endpoints('front').map((e) => [e.container, e.name, e.aliases, e.ip]), [['c1', 'web', ['w'], '10.91.0.2']]);
    assert.deepEqual(store.portsOfContainer('c1').map((p) => `${p.hostIp}:${p.hostPort}->${p.containerPort}`), ['127.0.0.1:8080->80']);
    assert.equal(existsSync(join(dir, 'network.db')), false);
    assert.ok(readdirSync(dir).includes('network.db.migrated'));
    assert.equal(store.tx(() => store.allocate(store.requireNetwork('front'), ep('c2'))), '10.91.0.3', 'the imported address stays taken');
  });
});
