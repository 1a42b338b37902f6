// Extended attributes from a layer's PAX records (SCHILY.xattr.*) are set with lsetxattr(2)
// through native/berth-xattr: no setfattr needed on PATH, security.capability survives the
// file's chown, and an attribute that cannot be set is an error or a note, never dropped silently.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { applyLayer } from '../../src/layer/apply.js';
import { MediaType } from '../../src/base/media-types.js';
import { peer, root, skipUnless } from '../helpers/requirements.js';
import { tarArchive } from './tar-fixture.js';

// vfs_cap_data revision 2: CAP_NET_RAW (13) permitted and effective.
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex');

/** Every xattr of path (not following a symlink), as name → hex. */
function xattrsOf(path: string): Record<string, string> {
  const r = spawnSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path], { encoding: 'utf8' });
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

describe('layer xattrs through lsetxattr (root)', { skip: skipUnless(root('security.capability needs CAP_SETFCAP'), peer('getfattr', 'attr')) }, () => {
  let work: string;
  before(() => { work = mkdtempSync(join(tmpdir(), 'berth-xattr-')); });
  after(() => rmSync(work, { recursive: true, force: true }));

  it('sets security.capability (after the chown that would clear it) and user.* on files, directories and symlinks, with no setfattr on PATH', async () => {
    const tar = tarArchive([
      { path: 'bin/', type: 'dir', mode: 0o755, pax: { 'SCHILY.xattr.user.dir': 'd' } },
      { path: 'bin/ping', body: 'ELF', mode: 0o755, uid: 1000, gid: 1000, pax: { 'SCHILY.xattr.security.capability': CAP, 'SCHILY.xattr.user.note': 'hello' } },
      { path: 'bin/link', type: 'symlink', linkname: 'ping', pax: { 'SCHILY.xattr.trusted.tag': 'x' } },
      { path: 'replaced', body: 'old', pax: { 'SCHILY.xattr.user.old': 'gone' } },
      { path: 'replaced', body: 'new' },
    ]);
    const dest = join(work, 'a');
    mkdirSync(dest);
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent'; // setfattr and everything else out of reach
    let result;
    try {
      result = await applyLayer(dest, Readable.from([tar]), MediaType.layerTar, {});
    } finally {
      process.env.PATH = path;
    }
    assert.deepEqual(result.notes ?? [], []);
    assert.deepEqual(xattrsOf(join(dest, 'bin/ping')), {
      'security.capability': CAP.toString('hex'),
      'user.note': Buffer.from('hello').toString('hex'),
    });
    assert.deepEqual(xattrsOf(join(dest, 'bin')), { 'user.dir': Buffer.from('d').toString('hex') });
    assert.deepEqual(xattrsOf(join(dest, 'bin/link')), { 'trusted.tag': Buffer.from('x').toString('hex') });
    assert.deepEqual(xattrsOf(join(dest, 'replaced')), {}, 'a later entry replaces the attributes too');
    const caps = spawnSync('getcap', [join(dest, 'bin/ping')], { encoding: 'utf8' });
    if (caps.status === 0 && caps.stdout) assert.match(caps.stdout, /cap_net_raw[=+]ep/);
  });

  it('an attribute the filesystem refuses is an error that names it', async () => {
    // An invalid security.capability value: the kernel refuses it (EINVAL).
    mkdirSync(join(work, 'b'));
    const tar = tarArchive([{ path: 'f', body: 'x', pax: { 'SCHILY.xattr.security.capability': Buffer.from('01') } }]);
    await assert.rejects(
      applyLayer(join(work, 'b'), Readable.from([tar]), MediaType.layerTar, {}),
      /cannot set extended attribute security\.capability on \/f: Invalid argument/,
    );
  });
});
