/**
 * `berth network connect|disconnect` on a container the engine runs (berth run -d --network
 * none): the container joins a user network, answers by name and alias from a namespace of the
 * test, and its bind-mounted /etc/hosts follows joins and leaves.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { commands } from '../../src/cli/network.js';
import { parseCommand } from '../../src/cli/common.js';
import { attachContainer, cleanupLeftovers, detachContainer, pruneNetworks } from '../../src/engine/network/index.js';
import { BUSYBOX } from '../helpers/busybox.js';
import { engineRoot, type EngineRoot } from '../helpers/engine.js';
import { Netns, randomSubnet24, runTag } from '../helpers/netns.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';

async function berthNetwork(argv: string[]): Promise<string> {
  const parsed = parseCommand('network', commands.network!, argv);
  assert.notEqual(parsed, 'help');
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    assert.equal(await commands.network!.run(parsed as Exclude<typeof parsed, 'help'>), 0);
    return out;
  } finally {
    process.stdout.write = write;
  }
}

describe('berth network connect with the engine', { skip: skipUnless(root('containers and networks'), peer('nft', 'nftables'), peer(BUSYBOX, 'busybox-static')) }, () => {
  const tag = runTag();
  let e: EngineRoot;
  let ns: Netns | undefined;
  const bridgeEnv = process.env.BERTH_NETWORK_BRIDGE;
  before(async () => {
    e = await engineRoot();
    process.env.BERTH_NETWORK_BRIDGE = `${tag}0`; // user networks' bridges: ${tag}1, ...
  });
  after(async () => {
    try {
      await e.close();
      cleanupLeftovers([], { root: e.root });
      pruneNetworks({ root: e.root });
    } finally {
      ns?.destroy();
      if (bridgeEnv === undefined) delete process.env.BERTH_NETWORK_BRIDGE;
      else process.env.BERTH_NETWORK_BRIDGE = bridgeEnv;
    }
  });

  it('connects a running container to a user network, by name and alias, and disconnects it', async () => {
    const run = await e.berth(['run', '-d', '--network', 'none', '--name', 'web', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    assert.equal(run.code, 0, run.stderr);
    let created = false;
    for (let i = 0; i < 20 && !created; i++) {
      try {
        await berthNetwork(['create', '--root', e.root, '--subnet', randomSubnet24(), 'app']);
        created = true;
      } catch (err) {
        if (!/overlaps/.test((err as Error).message)) throw err;
      }
    }
    const joined = JSON.parse(await berthNetwork(['connect', '--root', e.root, '--alias', 'www', '--format', 'json', 'app', 'web']));
    assert.equal(joined.network, 'app');
    assert.equal(joined.iface, 'eth0');
    const inside = await e.berth(['exec', 'web', 'ip', '-4', '-o', 'addr', 'show', 'eth0']);
    assert.match(inside.stdout, new RegExp(`inet ${joined.ip.replaceAll('.', '\\.')}/24`), inside.stderr);

    ns = new Netns(`${tag}-client`);
    const c = attachContainer({ root: e.root, id: `${tag}client`, name: 'client', network: 'app', netnsPath: ns.path, hostsPath: ns.hostsPath });
    writeFileSync(ns.resolvPath, 'nameserver 127.0.0.1\n');
    for (const name of ['web', 'www']) {
      let r = { stdout: '', stderr: '' };
      for (let i = 0; i < 30 && !r.stdout; i++) {
        r = await ns.exec(['timeout', '5', BUSYBOX, 'wget', '-q', '-O', '-', `http://${name}/hostname`]);
        if (!r.stdout) await new Promise((res) => setTimeout(res, 200));
      }
      assert.match(r.stdout, /^[0-9a-f]{12}\n$/, `${name}: ${r.stderr}`);
    }
    // the container's own /etc/hosts (bind-mounted by the engine) learnt of the client
    const hosts = await e.berth(['exec', 'web', 'cat', '/etc/hosts']);
    assert.match(hosts.stdout, new RegExp(`^${c.ip.replaceAll('.', '\\.')}\\tclient\\b`, 'm'), hosts.stdout);
    detachContainer(`${tag}client`, { root: e.root });
    assert.doesNotMatch((await e.berth(['exec', 'web', 'cat', '/etc/hosts'])).stdout, /\tclient\b/, 'and forgot it when it left');

    await berthNetwork(['disconnect', '--root', e.root, 'app', 'web']);
    assert.doesNotMatch((await e.berth(['exec', 'web', 'ip', '-o', 'link'])).stdout, /eth0/, 'eth0 gone from the container');
    assert.equal((await berthNetwork(['rm', '--root', e.root, 'app'])), 'app\n');
  });
});
