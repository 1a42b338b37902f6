/** The `berth network` command group (src/cli/network.ts), run in-process against a temporary root. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commands } from '../../src/cli/network.js';
import { parseCommand } from '../../src/cli/common.js';

async function berthNetwork(argv: string[]): Promise<{ code: number; out: string }> {
  const parsed = parseCommand('network', commands.network!, argv);
  assert.notEqual(parsed, 'help');
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    const code = await commands.network!.run(parsed as Exclude<typeof parsed, 'help'>);
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
});
