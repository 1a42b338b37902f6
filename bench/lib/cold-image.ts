/**
 * The cold-start images of bench/engine.ts, served by `berth serve` on 127.0.0.1:
 *   - REG/bench/cold:v1, four gzip layers: busybox-static's root plus the first /usr
 *     directories of usr-layers.ts, then the other three (~260 MB unpacked), so that
 *     `run --rm REF true` has a /bin/true;
 *   - REG/bench/second:v1, the same three lower layers plus one small layer of its own (the
 *     disk check: a second image sharing the base layers adds only its own).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MediaType } from '../../src/base/media-types.js';
import { RegistryClient } from '../../src/client/registry.js';
import { copy } from '../../src/content/copy.js';
import { OciLayout } from '../../src/image/layout.js';
import { buildBusyboxRootfs } from '../../test/helpers/busybox.js';
import { startBerthRegistry, type BerthRegistry } from '../../test/helpers/berth-registry.js';
import { writeOciLayout, type FixtureLayer } from '../../test/layer/oci-fixture.js';
import { LAYER_DIRS, tarDigest } from './usr-layers.js';

export interface ColdImages {
  registry: BerthRegistry;
  cold: string;
  second: string;
  /** Compressed bytes: the four layers of `cold`, and the one layer `second` adds. */
  coldBytes: number;
  ownBytes: number;
  stop(): Promise<void>;
}

export async function serveColdImages(work: string): Promise<ColdImages> {
  const rootfs = join(work, 'cold-rootfs');
  await buildBusyboxRootfs(rootfs);
  const layers: FixtureLayer[] = [];
  for (const [i, dirs] of LAYER_DIRS.entries()) {
    const file = join(work, `cold-layer${i}.tar.gz`);
    const usr = dirs.filter((d) => existsSync(`/${d}`));
    execFileSync('tar', ['-czf', file, ...(i === 0 ? ['-C', rootfs, '.'] : []), '-C', '/', ...usr]);
    layers.push({ mediaType: MediaType.layerTarGzip, file, diffId: await tarDigest(file) });
  }
  const own = join(work, 'second-own');
  mkdirSync(join(own, 'app'), { recursive: true });
  writeFileSync(join(own, 'app', 'data'), Buffer.alloc(4 << 20, 7));
  const ownFile = join(work, 'second-layer.tar.gz');
  execFileSync('tar', ['-czf', ownFile, '-C', own, 'app']);
  const ownLayer: FixtureLayer = { mediaType: MediaType.layerTarGzip, file: ownFile, diffId: await tarDigest(ownFile) };
  const coldBytes = layers.reduce((n, l) => n + statSync(l.file).size, 0);
  const ownBytes = statSync(ownFile).size;
  await writeOciLayout(join(work, 'second-layout'), 'v1', [...layers.slice(0, 3), ownLayer]);
  await writeOciLayout(join(work, 'cold-layout'), 'v1', layers, { move: true });

  const registry = await startBerthRegistry();
  const client = new RegistryClient();
  try {
    await copy(await OciLayout.open(join(work, 'cold-layout')), 'v1', client.repository(registry.host, 'bench/cold'), 'v1');
    await copy(await OciLayout.open(join(work, 'second-layout')), 'v1', client.repository(registry.host, 'bench/second'), 'v1');
  } finally {
    client.close();
  }
  return {
    registry, coldBytes, ownBytes,
    cold: `${registry.host}/bench/cold:v1`,
    second: `${registry.host}/bench/second:v1`,
    stop: () => registry.stop(),
  };
}
