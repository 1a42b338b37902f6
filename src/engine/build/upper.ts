/**
 * A RUN step's overlay upper directory as an OCI layer (layer.md "Whiteouts"): an overlayfs
 * whiteout (a 0/0 character device) becomes `.wh.NAME`, a directory marked opaque
 * (trusted.overlay.opaque=y) gets a `.wh..wh..opq` entry; overlayfs' own attributes are not
 * carried into the layer.
 */
import type { Writable } from 'node:stream';
import { HardlinkMap, tarEntryFor, writeFsEntry, writeLayerStream, type EntryContext, type LayerOptions, type LayerResult } from '../../layer/layer-output.js';
import { deviceNumbers, walkTree } from '../../layer/walk.js';
import { readTreeXattrs } from '../../layer/xattrs.js';

const OPAQUE = 'trusted.overlay.opaque';

function isWhiteout(kind: string, rdev: number): boolean {
  if (kind !== 'char') return false;
  const { major, minor } = deviceNumbers(rdev);
  return major === 0 && minor === 0;
}

/** Streams the layer of an overlay upper directory into `out`. */
export async function writeUpperLayer(upper: string, out: Writable, opts: LayerOptions = {}): Promise<LayerResult> {
  const all = await readTreeXattrs(upper);
  const opaque = new Set<string>();
  for (const [path, attrs] of all) {
    const v = attrs[OPAQUE];
    if (v && v.toString('latin1') === 'y') opaque.add(path);
    for (const name of Object.keys(attrs)) if (name.startsWith('trusted.overlay.')) delete attrs[name];
    if (Object.keys(attrs).length === 0) all.delete(path);
  }
  const ctx: EntryContext = { opts, prefix: '', xattrs: all, links: new HardlinkMap() };
  return writeLayerStream(out, opts, async (tar) => {
    for (const w of walkTree(upper)) {
      if (isWhiteout(w.kind, w.stat.rdev)) {
        const slash = w.rel.lastIndexOf('/');
        const path = slash < 0 ? `.wh.${w.rel}` : `${w.rel.slice(0, slash)}/.wh.${w.rel.slice(slash + 1)}`;
        const base = tarEntryFor(ctx, w)!;
        await tar.addEntry({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: base.mtime, size: 0 });
        continue;
      }
      await writeFsEntry(tar, ctx, w);
      if (w.kind === 'dir' && opaque.has(w.rel)) {
        await tar.addEntry({ path: `${w.rel}/.wh..wh..opq`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: Math.floor(w.stat.mtimeMs / 1000), size: 0 });
      }
    }
  });
}
