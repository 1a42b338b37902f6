/** `commit`: a container's changes as one more layer on its image, in the local store. */
import { appendLayer } from '../../image/build.js';
import { loadImage } from '../../image/load-image.js';
import { parseReference } from '../../image/reference.js';
import { commitTrees } from '../rootfs.js';
import { openImageStore, storeRefName } from '../store.js';
import type { Engine } from './engine.js';
import type { Container } from './store.js';

/** Returns the new manifest's digest; `ref` (IMAGE[:TAG]) tags it in the store. */
export async function commitContainer(engine: Engine, c: Container, ref: string | undefined, message: string | undefined): Promise<string> {
  const layout = await openImageStore({ root: engine.root });
  const base = c.config.imageDigest;
  const image = await loadImage(layout, base);
  const trees = await commitTrees(engine.root, layout, image, c.dir);
  try {
    const desc = await appendLayer(layout, base, {
      dir: trees.upper, lower: trees.lower,
      ...(ref ? { tag: storeRefName(parseReference(ref)) } : {}),
      createdBy: message ?? `berth commit ${c.name}`,
    });
    return desc.digest;
  } finally {
    await trees.cleanup();
  }
}
