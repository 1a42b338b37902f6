/** The `berth network` command group (src/cli/network.ts), run in-process against a temporary root. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commands } from '../../src/cli/network.js';
import { parseCommand } from '../../src/cli/common.js';
import { DEFAULTS, NetworkStore } from '../../src/engine/network/store.js';

async function berthNetwork(argv: string[], cmd = 'network'): Promise<{ code: number; out: string }> {
  const parsed = parseCommand(cmd, commands[cmd]!, argv);
  assert.notEqual(parsed, 'help');
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    const code = await commands[cmd]!.run(parsed as Exclude<typeof parsed, 'help'>);
    return { code, out };
  } finally {
    process.stdout.write = write;
  }
}

describe('berth network', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'berth-cli-net-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('creates, lists, inspects, removes and prunes networks', async () => {
    const created = JSON.parse((await berthNetwork(['create', '--root', root, '--subnet', '10.211.5.0/24', '--internal', 'back', '--format', 'json'])).out);
    assert.equal(created.subnet, '10.211.5.0/24');
    assert.equal(created.gateway, '10.211.5.1');
    assert.equal(created.internal, true);
    await berthNetwork(['create', '--root', root, '--subnet', '10.211.6.0/24', 'front']);
    const ls = JSON.parse((await berthNetwork(['ls', '--root', root, '--format', 'json'])).out) as { name: string }[];
    assert.deepEqual(ls.map((n) => n.name), ['back', 'bridge', 'front']);
    assert.equal((await berthNetwork(['ls', '-q', '--root', root])).out, 'back\nbridge\nfront\n');
    const [info] = JSON.parse((await berthNetwork(['inspect', '--root', root, created.id.slice(0, 12)])).out);
    assert.equal(info.name, 'back');
    assert.deepEqual(info.containers, []);
    await assert.rejects(berthNetwork(['create', '--root', root, '--subnet', '10.211.5.128/25', 'clash']), /overlaps network back/);
    await assert.rejects(berthNetwork(['rm', '--root', root, 'bridge']), /default network and cannot be removed/);
    await assert.rejects(berthNetwork(['frobnicate', '--root', root]), /unknown subcommand "frobnicate"/);
    await assert.rejects(berthNetwork(['connect', '--root', root, 'front', 'c1']), /no such container: c1/);
    assert.equal((await berthNetwork(['rm', '--root', root, 'back'])).out, 'back\n');
    assert.equal((await berthNetwork(['prune', '--root', root])).out, 'front\n');
    assert.equal((await berthNetwork(['ls', '-q', '--root', root])).out, 'bridge\n');
  });

  it('berth port lists published ports as docker port does', async () => {
    const store = NetworkStore.cached(root, DEFAULTS);
    const net = store.requireNetwork('bridge');
    store.tx(() => {
      const ip = store.allocate(net, { container: 'c0ffee', name: 'web', aliases: [], iface: 'eth0', veth: 'vbc0ffee', hostsPath: null, hostsExtra: [], hostname: 'c0ffee' });
      store.addPort({ hostIp: '127.0.0.1', hostPort: 8080, proto: 'tcp', container: 'c0ffee', network: 'bridge', containerIp: ip, containerPort: 80 });
      store.addPort({ hostIp: '0.0.0.0', hostPort: 5353, proto: 'udp', container: 'c0ffee', network: 'bridge', containerIp: ip, containerPort: 53 });
    });
    assert.equal((await berthNetwork(['--root', root, 'c0ffee'], 'port')).out, '53/udp -> 0.0.0.0:5353\n80/tcp -> 127.0.0.1:8080\n');
    assert.equal((await berthNetwork(['--root', root, 'c0ffee', '80'], 'port')).out, '127.0.0.1:8080\n');
    await assert.rejects(berthNetwork(['--root', root, 'c0ffee', '81/udp'], 'port'), /no public port 81\/udp published/);
    store.tx(() => store.release('c0ffee', 'bridge'));
  });
});
