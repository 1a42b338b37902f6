/**
 * `commit`: a container's changes as one more layer on its image, in the local store. The
 * image's layers stay as they are (same blobs, same digests); only the new layer is written:
 * from the container's overlay upper dir (its whiteouts and opaque dirs become the layer's,
 * build/upper.ts), or, where the root is a copy (vfs), from a diff against the image's root.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { appendLayer, type AppendLayerOptions } from '../../image/build.js';
import { loadImage } from '../../image/load-image.js';
import { parseReference } from '../../image/reference.js';
import { writeUpperLayer } from '../build/upper.js';
import { commitTrees } from '../rootfs.js';
import { SnapshotStore } from '../snapshots.js';
import { openImageStore, storeRefName } from '../store.js';
import type { Engine } from './engine.js';
import type { Container } from './store.js';

/** Returns the new manifest's digest; `ref` (IMAGE[:TAG]) tags it in the store. */
export async function commitContainer(engine: Engine, c: Container, ref: string | undefined, message: string | undefined): Promise<string> {
  const layout = await openImageStore({ root: engine.root });
  const base = c.config.imageDigest;
  const named: Omit<AppendLayerOptions, 'dir'> = { ...(ref ? { tag: storeRefName(parseReference(ref)) } : {}), createdBy: message ?? `berth commit ${c.name}` };
  const upper = join(c.dir, 'upper');
  if (new SnapshotStore(engine.root).rootfsDriver(c.dir) === 'overlay' && existsSync(upper)) {
    return (await appendLayer(layout, base, { ...named, dir: upper, produce: (out, o) => writeUpperLayer(upper, out, o) })).digest;
  }
  const image = await loadImage(layout, base);
  const trees = await commitTrees(engine.root, layout, image, c.dir);
  try {
    return (await appendLayer(layout, base, { ...named, dir: trees.upper, lower: trees.lower })).digest;
  } finally {
    await trees.cleanup();
  }
}
