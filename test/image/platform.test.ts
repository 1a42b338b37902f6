import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../../src/base/digest.js';
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifests,
} from '../../src/image/platform.js';
import { isBerthError } from '../../src/base/errors.js';
import type { Descriptor, ImageIndex, Platform } from '../../src/base/types.js';
import { peer, skipUnless } from '../helpers/requirements.js';

const P = (s: string): Platform => parsePlatform(s);

function desc(n: number, platform?: Platform): Descriptor {
  const d: Descriptor = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${n.toString(16).padStart(64, '0')}`,
    size: 100 + n,
  };
  if (platform) d.platform = platform;
  return d;
}

function index(...platforms: (Platform | undefined)[]): ImageIndex {
  return { schemaVersion: 2, manifests: platforms.map((p, i) => desc(i + 1, p)) };
}

const sizesOf = (ds: Descriptor[]): number[] => ds.map((d) => d.size - 100);

describe('parsePlatform', () => {
  it('parses os/arch and os/arch/variant', () => {
    assert.deepEqual(P('linux/amd64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(P('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(P('linux/arm/v6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(P('linux/amd64/v3'), { os: 'linux', architecture: 'amd64', variant: 'v3' });
  });

  it('normalises aliases and case as containerd does', () => {
    assert.deepEqual(P('Linux/X86_64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(P('linux/x86-64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(P('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(P('linux/aarch64/8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(P('linux/i386'), { os: 'linux', architecture: '386' });
    assert.deepEqual(P('linux/armhf'), { os: 'linux', architecture: 'arm' }); // v7, implicit in 2-part form
    assert.deepEqual(P('linux/armel'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(P('linux/arm/7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(P('macos/arm64'), { os: 'darwin', architecture: 'arm64' });
  });

  it('completes a lone os or architecture from the host', () => {
    const host = hostPlatform();
    assert.equal(P('linux').os, 'linux');
    assert.equal(P('linux').architecture, host.architecture);
    assert.deepEqual(P('arm64'), { os: host.os, architecture: 'arm64' });
    assert.deepEqual(P('s390x'), { os: host.os, architecture: 's390x' });
  });

  it('reads os.version in containerd form and after a colon', () => {
    const want = { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1' };
    assert.deepEqual(P('windows(10.0.17763.1)/amd64'), want);
    assert.deepEqual(P('windows/amd64:10.0.17763.1'), want);
    assert.equal(formatPlatform(want), 'windows(10.0.17763.1)/amd64');
    assert.deepEqual(P(formatPlatform(want)), want);
  });

  it('reads os.features and percent-encoded options in containerd form', () => {
    const want = { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763', 'os.features': ['win32k', 'x+y'] };
    assert.deepEqual(P('windows(10.0.17763+win32k+x%2By)/amd64'), want);
    assert.equal(formatPlatform(want), 'windows(10.0.17763+win32k+x%2By)/amd64');
    assert.deepEqual(P('linux(+f1)/arm64'), { os: 'linux', architecture: 'arm64', 'os.features': ['f1'] });
    assert.deepEqual(P(formatPlatform({ os: 'linux', architecture: 'arm', variant: 'v6', 'os.version': 'a(b)/c%' })), {
      os: 'linux',
      architecture: 'arm',
      variant: 'v6',
      'os.version': 'a(b)/c%',
    });
  });

  it('rejects malformed specifiers with a message naming the problem', () => {
    for (const [bad, pattern] of [
      ['', /it is empty/],
      ['linux/amd64/v8/extra', /too many components/],
      ['linux//v7', /architecture ""/],
      ['linux/am d64', /architecture "am d64"/],
      ['linux/amd64/v 8', /variant "v 8"/],
      ['plan10', /neither a known operating system nor a known architecture/],
      ['lin$ux/amd64', /os "lin\$ux"/],
      ['linux/*', /wildcards/],
      ['windows(10%zz)/amd64', /percent-encoding/],
    ] as const) {
      assert.throws(() => P(bad), (e: unknown) => isBerthError(e, 'USAGE') && pattern.test(e.message), bad);
    }
  });

  it('formats what it parses', () => {
    for (const s of ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v6', 'windows/amd64', 'linux/riscv64']) {
      assert.equal(formatPlatform(P(s)), s);
    }
  });
});

describe('normalizePlatform', () => {
  it('drops default variants for arm64 and amd64, makes arm v7 explicit', () => {
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'aarch64' }), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v9' }), {
      os: 'linux',
      architecture: 'arm64',
      variant: 'v9',
    });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'amd64', variant: 'v1' }), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm', variant: '5' }), { os: 'linux', architecture: 'arm', variant: 'v5' });
  });

  it('keeps os.version and features (sorted, unique), drops empty ones', () => {
    assert.deepEqual(normalizePlatform({ os: 'Windows', architecture: 'AMD64', 'os.version': '10.0.1', 'os.features': ['win32k', 'b', 'win32k'] }), {
      os: 'windows',
      architecture: 'amd64',
      'os.version': '10.0.1',
      'os.features': ['b', 'win32k'],
    });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'amd64', 'os.version': '', 'os.features': [], variant: '' }), {
      os: 'linux',
      architecture: 'amd64',
    });
  });
});

describe('hostPlatform', () => {
  it('describes this machine in OCI terms', () => {
    const host = hostPlatform();
    assert.equal(host.os, process.platform === 'win32' ? 'windows' : process.platform);
    const expected: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: '386', arm: 'arm' };
    if (expected[process.arch]) assert.equal(host.architecture, expected[process.arch]);
    assert.ok(platformMatches(host, host));
  });
});

describe('platformMatches', () => {
  it('treats arm64 and arm64/v8 as the same platform', () => {
    assert.ok(platformMatches(P('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' }));
    assert.ok(platformMatches(P('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' }));
    assert.ok(platformMatches({ os: 'linux', architecture: 'aarch64' }, { os: 'linux', architecture: 'arm64' }));
  });

  it('lets arm/v7 run v6 and v5 but not v8', () => {
    const want = P('linux/arm/v7');
    assert.ok(platformMatches(want, P('linux/arm/v7')));
    assert.ok(platformMatches(want, { os: 'linux', architecture: 'arm' })); // no variant = v7
    assert.ok(platformMatches(want, P('linux/arm/v6')));
    assert.ok(platformMatches(want, P('linux/arm/v5')));
    assert.ok(!platformMatches(want, P('linux/arm/v8')));
    assert.ok(!platformMatches(P('linux/arm/v6'), P('linux/arm/v7')));
    assert.ok(!platformMatches(want, P('linux/arm64')));
  });

  it('lets amd64/vN run lower levels and 386, never higher ones', () => {
    const v3 = P('linux/amd64/v3');
    for (const ok of ['linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64', 'linux/amd64/v1', 'linux/386']) {
      assert.ok(platformMatches(v3, P(ok)), ok);
    }
    assert.ok(!platformMatches(v3, P('linux/amd64/v4')));
    assert.ok(!platformMatches(P('linux/amd64'), P('linux/amd64/v2')));
    assert.ok(platformMatches(P('linux/amd64'), P('linux/386')));
    assert.ok(!platformMatches(P('linux/386'), P('linux/amd64')));
  });

  it('lets arm64 run 32-bit arm images (containerd fallback)', () => {
    assert.ok(platformMatches(P('linux/arm64'), P('linux/arm/v8')));
    assert.ok(platformMatches(P('linux/arm64'), P('linux/arm/v7')));
    assert.ok(platformMatches(P('linux/arm64'), P('linux/arm/v5')));
    assert.ok(!platformMatches(P('linux/arm64'), P('linux/arm64/v9')));
    assert.ok(!platformMatches(P('linux/arm64'), P('linux/arm64/v8.1')));
  });

  it('lets arm64 v8.x run lower v8 minors, and v9.x run v9 minors then v8.(x+5) and below', () => {
    const v82 = P('linux/arm64/v8.2');
    for (const ok of ['linux/arm64/v8.2', 'linux/arm64/v8.1', 'linux/arm64/v8', 'linux/arm64', 'linux/arm/v7']) assert.ok(platformMatches(v82, P(ok)), ok);
    assert.ok(!platformMatches(v82, P('linux/arm64/v8.3')));
    const v91 = P('linux/arm64/v9.1');
    for (const ok of ['linux/arm64/v9.1', 'linux/arm64/v9', 'linux/arm64/v8.6', 'linux/arm64/v8.1', 'linux/arm64']) assert.ok(platformMatches(v91, P(ok)), ok);
    assert.ok(!platformMatches(v91, P('linux/arm64/v8.7')));
    assert.ok(!platformMatches(v91, P('linux/arm64/v9.2')));
    assert.ok(platformMatches(P('linux/arm64/v9'), P('linux/arm64/v8.5')));
  });

  it('requires the image os.features to be among the host ones', () => {
    const host = { os: 'windows', architecture: 'amd64', 'os.features': ['win32k', 'x'] };
    assert.ok(platformMatches(host, { os: 'windows', architecture: 'amd64', 'os.features': ['win32k'] }));
    assert.ok(platformMatches(host, { os: 'windows', architecture: 'amd64' }));
    assert.ok(!platformMatches({ os: 'windows', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64', 'os.features': ['win32k'] }));
  });

  it('never matches across operating systems', () => {
    assert.ok(!platformMatches(P('linux/amd64'), P('windows/amd64')));
    assert.ok(!platformMatches(P('windows/amd64'), P('linux/amd64')));
    assert.ok(!platformMatches(P('linux/amd64'), P('linux/arm64')));
  });

  it('applies the Windows host/container compatibility rules, and ignores os.version elsewhere', () => {
    // Before Server 2022 (build 20348) the build must be the same.
    const rs5 = P('windows(10.0.17763.1)/amd64');
    assert.ok(platformMatches(rs5, P('windows(10.0.17763.5122)/amd64')));
    assert.ok(!platformMatches(rs5, P('windows(10.0.20348.1)/amd64')));
    assert.ok(!platformMatches(rs5, P('windows(10.0.14393.1)/amd64')));
    assert.ok(platformMatches(rs5, P('windows/amd64')));
    // From Server 2022 on, a host runs any build from 20348 up to its own.
    const newer = P('windows(10.0.26100.1)/amd64');
    assert.ok(platformMatches(newer, P('windows(10.0.20348.2)/amd64')));
    assert.ok(platformMatches(newer, P('windows(10.0.26100.9)/amd64')));
    assert.ok(!platformMatches(newer, P('windows(10.0.17763.1)/amd64')));
    assert.ok(!platformMatches(P('windows(10.0.20348.1)/amd64'), P('windows(10.0.26100.1)/amd64')));
    assert.ok(!platformMatches(newer, P('windows(6.3.26100.1)/amd64')));
    // A host version that is not major.minor.build does not constrain.
    assert.ok(platformMatches(P('windows(10)/amd64'), P('windows(10.0.17763.1)/amd64')));
    assert.ok(platformMatches({ os: 'linux', architecture: 'amd64', 'os.version': '5.10' }, { os: 'linux', architecture: 'amd64', 'os.version': '6.1' }));
  });
});

describe('selectManifests', () => {
  it('orders arm/v7 candidates v7, v6, v5 whatever the index order', () => {
    const idx = index(P('linux/arm/v5'), P('linux/amd64'), P('linux/arm/v6'), P('linux/arm/v7'), P('linux/arm64'));
    assert.deepEqual(sizesOf(selectManifests(idx, P('linux/arm/v7'))), [4, 3, 1]);
  });

  it('prefers the exact amd64 level, then lower levels, then 386', () => {
    const idx = index(P('linux/386'), P('linux/amd64'), P('linux/amd64/v2'), P('linux/amd64/v3'), P('linux/amd64/v4'));
    assert.deepEqual(sizesOf(selectManifests(idx, P('linux/amd64/v3'))), [4, 3, 2, 1]);
    assert.deepEqual(sizesOf(selectManifests(idx, P('linux/amd64'))), [2, 1]);
  });

  it('picks arm64 before arm for an arm64 host', () => {
    const idx = index(P('linux/arm/v7'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(sizesOf(selectManifests(idx, P('linux/arm64'))), [2, 1]);
  });

  it('keeps the index order between equally good candidates and skips descriptors without a platform', () => {
    const idx = index(undefined, P('linux/amd64'), { os: 'unknown', architecture: 'unknown' }, P('linux/amd64'));
    assert.deepEqual(sizesOf(selectManifests(idx, P('linux/amd64'))), [2, 4]);
  });

  it('orders arm64 v9.1 candidates as containerd does', () => {
    const idx = index(P('linux/arm/v7'), P('linux/arm64'), P('linux/arm64/v8.6'), P('linux/arm64/v9'), P('linux/arm64/v9.1'));
    assert.deepEqual(sizesOf(selectManifests(idx, P('linux/arm64/v9.1'))), [5, 4, 3, 2, 1]);
  });

  it('puts the highest compatible Windows os.version first', () => {
    const idx = index(P('windows(10.0.17763.100)/amd64'), P('windows(10.0.17763.5122)/amd64'), P('windows(10.0.20348.1)/amd64'));
    assert.deepEqual(sizesOf(selectManifests(idx, P('windows(10.0.17763.5122)/amd64'))), [2, 1]);
  });

  it('returns nothing when no manifest fits', () => {
    assert.deepEqual(selectManifests(index(P('linux/s390x'), P('windows/amd64')), P('linux/amd64')), []);
    assert.deepEqual(selectManifests({ schemaVersion: 2, manifests: [] }, P('linux/amd64')), []);
  });
});

/**
 * The same choices made by a real peer: skopeo 1.9 (containers/image) picking an instance of an
 * index with --override-arch/--override-variant. Where containerd and containers/image agree
 * (arm variant fallbacks, arm64 = arm64/v8, exact matches) berth must choose what skopeo chooses;
 * where they differ by design, berth follows containerd and the test records skopeo's choice.
 */
describe('platform choice compared with skopeo', () => {
  const skopeoMissing = skipUnless(peer('skopeo', 'skopeo'));
  let layout = '';
  const refs: { name: string; index: ImageIndex }[] = [];

  const writeBlob = (bytes: Buffer): Descriptor['digest'] => {
    const digest = digestOf(bytes);
    writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
    return digest;
  };

  /** An index whose entries are distinct manifests, each annotated with its platform. */
  function addIndex(name: string, platforms: string[]): void {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: writeBlob(config), size: config.length };
    const manifests = platforms.map((spec) => {
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: configDesc, layers: [], annotations: { which: spec } }));
      return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: writeBlob(m), size: m.length, platform: P(spec) };
    });
    refs.push({ name, index: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests } });
  }

  before(async () => {
    if (skopeoMissing) return;
    layout = await mkdtemp(join(tmpdir(), 'berth-platform-skopeo-'));
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    addIndex('mixed', ['linux/arm/v5', 'linux/arm/v6', 'linux/amd64', 'linux/386', 'linux/arm64', 'linux/amd64/v2']);
    addIndex('arm64-and-arm', ['linux/arm64/v8', 'linux/arm/v7']);
    addIndex('arm-only', ['linux/arm/v6', 'linux/arm/v7']);
    addIndex('x86-only', ['linux/386']);
    const entries = refs.map(({ name, index }) => {
      const bytes = Buffer.from(JSON.stringify(index));
      return { mediaType: index.mediaType, digest: writeBlob(bytes), size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': name } };
    });
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }));
  });
  after(async () => {
    if (layout) await rm(layout, { recursive: true, force: true });
  });

  /** The platform annotation of the instance skopeo copies for `want`, or undefined when it finds none. */
  function skopeoChoice(ref: string, want: string): string | undefined {
    const p = P(want);
    const out = `${layout}-out-${ref}-${want.replace(/\//g, '_')}`;
    const args = ['--insecure-policy', '--override-os', p.os, '--override-arch', p.architecture];
    if (p.variant) args.push('--override-variant', p.variant);
    const r = spawnSync('skopeo', [...args, 'copy', '--quiet', `oci:${layout}:${ref}`, `dir:${out}`], { encoding: 'utf8' });
    try {
      if (r.status !== 0) {
        assert.match(r.stderr, /no image found in (image index|manifest list)/, `skopeo failed otherwise: ${r.stderr}`);
        return undefined;
      }
      return (JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { annotations: { which: string } }).annotations.which;
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }

  function berthChoice(ref: string, want: string): string | undefined {
    const index = refs.find((r) => r.name === ref)!.index;
    const best = selectManifests(index, P(want))[0];
    return best === undefined ? undefined : formatPlatform(best.platform!);
  }

  it('chooses what skopeo chooses where containerd and containers/image agree', (t) => {
    if (skopeoMissing) {
      t.skip(skopeoMissing);
      return;
    }
    const cases: [string, string, string][] = [
      ['mixed', 'linux/arm/v7', 'linux/arm/v6'],
      ['mixed', 'linux/arm/v6', 'linux/arm/v6'],
      ['mixed', 'linux/arm64', 'linux/arm64'],
      ['mixed', 'linux/386', 'linux/386'],
      ['mixed', 'linux/amd64', 'linux/amd64'],
      ['arm64-and-arm', 'linux/arm64', 'linux/arm64/v8'],
      ['arm64-and-arm', 'linux/arm64/v8', 'linux/arm64/v8'],
      ['arm64-and-arm', 'linux/arm/v8', 'linux/arm/v7'],
      ['arm-only', 'linux/arm', 'linux/arm/v7'],
    ];
    for (const [ref, want, expected] of cases) {
      assert.equal(skopeoChoice(ref, want), expected, `skopeo, ${ref} for ${want}`);
      assert.equal(berthChoice(ref, want), expected, `berth, ${ref} for ${want}`);
    }
  });

  it('follows containerd where skopeo 1.9 does not fall back', (t) => {
    if (skopeoMissing) {
      t.skip(skopeoMissing);
      return;
    }
    const cases: [string, string, string, string | undefined][] = [
      // [index, want, berth/containerd, skopeo]
      ['arm-only', 'linux/arm64', 'linux/arm/v7', undefined],
      ['x86-only', 'linux/amd64', 'linux/386', undefined],
      ['mixed', 'linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64'],
    ];
    for (const [ref, want, containerd, skopeo] of cases) {
      assert.equal(berthChoice(ref, want), containerd, `berth, ${ref} for ${want}`);
      assert.equal(skopeoChoice(ref, want), skopeo, `skopeo, ${ref} for ${want}`);
    }
  });
});
