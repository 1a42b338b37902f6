/**
 * Checking a whole layout (every problem, not only the first) and garbage-collecting the blobs
 * that nothing in index.json reaches.
 */
import { createReadStream } from 'node:fs';
import { readdir, readFile, lstat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { readAll } from '../base/read.js';
import { digestStream, isValidDigest, SUPPORTED_ALGORITHMS, type DigestAlgorithm } from '../base/digest.js';
import { BLOB_TEMP_PREFIX, REF_NAME_ANNOTATION, type OciLayout } from './layout.js';
import { withLock } from './layout-lock.js';
import { TEMP_PREFIX } from './atomic-file.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from '../base/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../base/types.js';
import { parseManifestOrIndex, validateConfig, validateIndex, validateLayoutHeader } from './validate.js';

export interface LayoutProblem {
  digest?: string;
  /** Where: a file of the layout, or the chain of references that leads to the blob. */
  path?: string;
  problem: string;
  /** Errors break the layout; warnings (stray temp files, dangling subjects) do not. */
  severity: 'error' | 'warning';
}

const IMAGE_CONFIG_TYPES: readonly string[] = [MediaType.imageConfig, MediaType.dockerConfig];
/** Temp files younger than this may belong to a write in progress in another process. */
const TEMP_GRACE_MS = 10 * 60 * 1000;

interface BlobFile {
  size: number;
  actual?: string;
}

async function listBlobFiles(layout: OciLayout, problems: LayoutProblem[] | undefined): Promise<{ blobs: Map<string, BlobFile>; temps: string[] }> {
  const blobsDir = join(layout.dir, 'blobs');
  const blobs = new Map<string, BlobFile>();
  const temps: string[] = [];
  // Temp files of atomic index.json / oci-layout rewrites live beside them.
  for (const entry of await readdir(layout.dir, { withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.startsWith(TEMP_PREFIX)) continue;
    temps.push(join(layout.dir, entry.name));
    problems?.push({ path: entry.name, problem: 'stray temporary file of an interrupted write (berth layout gc removes it)', severity: 'warning' });
  }
  for (const entry of await readdir(blobsDir, { withFileTypes: true })) {
    const rel = `blobs/${entry.name}`;
    if (entry.name.startsWith(BLOB_TEMP_PREFIX)) {
      temps.push(join(blobsDir, entry.name));
      problems?.push({ path: rel, problem: 'stray temporary file of an interrupted write (berth layout gc removes it)', severity: 'warning' });
      continue;
    }
    if (!entry.isDirectory() || !SUPPORTED_ALGORITHMS.includes(entry.name as DigestAlgorithm)) {
      problems?.push({ path: rel, problem: `unexpected ${entry.isDirectory() ? 'directory' : 'file'} in blobs/ (not a supported digest algorithm)`, severity: 'warning' });
      continue;
    }
    for (const file of await readdir(join(blobsDir, entry.name), { withFileTypes: true })) {
      const digest = `${entry.name}:${file.name}`;
      const path = `${rel}/${file.name}`;
      if (file.name.startsWith(BLOB_TEMP_PREFIX)) {
        temps.push(join(blobsDir, entry.name, file.name));
        problems?.push({ path, problem: 'stray temporary file of an interrupted write (berth layout gc removes it)', severity: 'warning' });
        continue;
      }
      if (!file.isFile() || !isValidDigest(digest)) {
        problems?.push({ path, problem: `${file.isFile() ? 'file' : 'entry'} name is not a valid ${entry.name} digest (image-layout.md "Blobs")`, severity: 'error' });
        continue;
      }
      blobs.set(digest, { size: (await lstat(join(blobsDir, entry.name, file.name))).size });
    }
  }
  return { blobs, temps };
}

/**
 * Every problem of the layout: header, index.json, blob names and content, and the graph from
 * index.json. With `ref`, only what that reference reaches (plus the layout's own files).
 */
export async function verifyLayout(layout: OciLayout, opts: { ref?: string } = {}): Promise<LayoutProblem[]> {
  const problems: LayoutProblem[] = [];
  const err = (problem: string, where: { digest?: string; path?: string } = {}): void => {
    problems.push({ ...where, problem, severity: 'error' });
  };

  try {
    validateLayoutHeader(JSON.parse(await readFile(join(layout.dir, 'oci-layout'), 'utf8')));
  } catch (e) {
    err((e as Error).message, { path: 'oci-layout' });
  }
  let index: ImageIndex | undefined;
  try {
    index = validateIndex(JSON.parse(await readFile(join(layout.dir, 'index.json'), 'utf8')));
  } catch (e) {
    err((e as Error).message, { path: 'index.json' });
  }

  const { blobs } = await listBlobFiles(layout, opts.ref === undefined ? problems : undefined);
  const mismatchReported = new Set<string>();
  /** Whether the blob's content matches its name (hashed once; a mismatch reported once). */
  const intact = async (digest: string, where: string): Promise<boolean> => {
    const file = blobs.get(digest)!;
    if (file.actual === undefined) {
      const algorithm = digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
      file.actual = (await digestStream(createReadStream(layout.blobPath(digest)), algorithm)).digest;
    }
    if (file.actual === digest) return true;
    if (!mismatchReported.has(digest)) {
      mismatchReported.add(digest);
      err(`content hashes to ${file.actual}, not to its name`, { digest, path: where });
    }
    return false;
  };

  const visited = new Set<string>();
  const visit = async (desc: Descriptor, where: string, role: 'manifest' | 'config' | 'layer' | 'subject'): Promise<void> => {
    const key = `${desc.digest}|${desc.size}|${role}`;
    if (visited.has(key)) return;
    visited.add(key);
    const file = blobs.get(desc.digest);
    if (!file) {
      if (role === 'subject') problems.push({ digest: desc.digest, path: where, problem: 'subject is not in the layout (dangling reference)', severity: 'warning' });
      // descriptor.md "urls": such a blob (e.g. a non-distributable layer) may be fetched from elsewhere.
      else if (desc.urls?.length) problems.push({ digest: desc.digest, path: where, problem: `blob not in the layout; its descriptor lists urls (${desc.urls[0]})`, severity: 'warning' });
      else err(`missing blob (${desc.mediaType})`, { digest: desc.digest, path: where });
      return;
    }
    if (file.size !== desc.size) {
      err(`size mismatch: descriptor says ${desc.size} bytes, blob has ${file.size}`, { digest: desc.digest, path: where });
      return;
    }
    if (!(await intact(desc.digest, where))) return;
    if (role === 'config' && IMAGE_CONFIG_TYPES.includes(desc.mediaType)) {
      try {
        validateConfig(JSON.parse((await readAll(await layout.fetch(desc))).toString('utf8')));
      } catch (e) {
        err(`invalid image config: ${(e as Error).message}`, { digest: desc.digest, path: where });
      }
      return;
    }
    // Layers and other blobs (artifacts carry any media type) need only exist and match.
    if (!isManifestMediaType(desc.mediaType) && !isIndexMediaType(desc.mediaType)) return;
    let parsed: { mediaType: string; manifest?: ImageManifest; index?: ImageIndex };
    try {
      parsed = parseManifestOrIndex(await readAll(await layout.fetch(desc)), desc.mediaType);
    } catch (e) {
      err(`invalid ${isIndexMediaType(desc.mediaType) ? 'index' : 'manifest'}: ${(e as Error).message}`, { digest: desc.digest, path: where });
      return;
    }
    if (parsed.manifest) {
      const m = parsed.manifest;
      await visit(m.config, `${where} → config`, 'config');
      for (const [i, l] of m.layers.entries()) await visit(l, `${where} → layers[${i}]`, 'layer');
      if (m.subject) await visit(m.subject, `${where} → subject`, 'subject');
      if (IMAGE_CONFIG_TYPES.includes(m.config.mediaType) && blobs.get(m.config.digest)?.actual === m.config.digest) {
        try {
          const config = JSON.parse((await readAll(await layout.fetch(m.config))).toString('utf8')) as { rootfs?: { diff_ids?: unknown[] } };
          const n = config.rootfs?.diff_ids?.length;
          if (n !== undefined && n !== m.layers.length) {
            err(`the manifest has ${m.layers.length} layers but its config lists ${n} diff_ids`, { digest: desc.digest, path: where });
          }
        } catch {
          // reported by the config visit
        }
      }
    } else if (parsed.index) {
      for (const [i, d] of parsed.index.manifests.entries()) await visit(d, `${where} → manifests[${i}]`, 'manifest');
      if (parsed.index.subject) await visit(parsed.index.subject, `${where} → subject`, 'subject');
    }
  };

  const ref = opts.ref;
  let roots = (index?.manifests ?? []).map((d, i) => ({ d, i }));
  if (ref !== undefined) {
    roots = roots.filter(({ d }) => d.annotations?.[REF_NAME_ANNOTATION] === ref || d.digest === ref || `@${d.digest}` === ref);
    if (roots.length === 0) {
      // A digest present only in blobs/ (resolve throws NOT_FOUND for anything else).
      const desc = await layout.resolve(ref);
      await visit(desc, ref, 'manifest');
    }
  }
  for (const { d, i } of roots) {
    const name = d.annotations?.[REF_NAME_ANNOTATION];
    await visit(d, `index.json manifests[${i}]${name ? ` (${name})` : ''}`, 'manifest');
  }
  if (ref === undefined) {
    // Every blob's content must match its name, referenced or not.
    for (const digest of blobs.keys()) await intact(digest, `blobs/${digest.replace(':', '/')}`);
  }
  return problems;
}

/** The digests reachable from index.json (manifests → config, layers, subject; indexes → manifests). */
async function reachable(layout: OciLayout, present: Map<string, BlobFile>): Promise<Set<string>> {
  const marked = new Set<string>();
  const pending: Descriptor[] = [...(await layout.index()).manifests];
  while (pending.length) {
    const desc = pending.pop()!;
    if (marked.has(desc.digest)) continue;
    marked.add(desc.digest);
    if (!present.has(desc.digest)) continue; // nothing to learn from an absent blob
    if (!isManifestMediaType(desc.mediaType) && !isIndexMediaType(desc.mediaType)) continue;
    let parsed;
    try {
      parsed = parseManifestOrIndex(await readAll(await layout.fetch(desc)), desc.mediaType);
    } catch (e) {
      // Collecting without knowing what this document needs could delete live blobs.
      throw new BerthError(
        'LAYOUT_INVALID',
        `cannot garbage-collect ${layout.name}: ${desc.digest} is unreadable (${(e as Error).message}); run \`berth layout verify\` and repair it first`,
      );
    }
    if (parsed.manifest) pending.push(parsed.manifest.config, ...parsed.manifest.layers);
    if (parsed.index) pending.push(...parsed.index.manifests);
    const subject = parsed.manifest?.subject ?? parsed.index?.subject;
    if (subject) pending.push(subject);
  }
  return marked;
}

/**
 * Removes blobs nothing in index.json reaches, and stale temp files. Holds the index lock meanwhile.
 * `keepSince` (ms since the epoch): unreferenced blobs written since then are kept, for writers
 * that tag only at the end (a pull in another process).
 */
export async function gcLayout(layout: OciLayout, opts: { dryRun?: boolean; keepSince?: number } = {}): Promise<{ removed: string[]; bytes: number }> {
  return withLock(join(layout.dir, 'index.json.lock'), async () => {
    const { blobs, temps } = await listBlobFiles(layout, undefined);
    const live = await reachable(layout, blobs);
    const removed: string[] = [];
    let bytes = 0;
    for (const [digest, file] of blobs) {
      if (live.has(digest)) continue;
      if (opts.keepSince !== undefined) {
        const st = await lstat(layout.blobPath(digest)).catch(() => undefined);
        if (!st || st.mtimeMs >= opts.keepSince) continue;
      }
      if (!opts.dryRun) await unlink(layout.blobPath(digest));
      removed.push(digest);
      bytes += file.size;
    }
    const now = Date.now();
    for (const tmp of temps) {
      if (layout.activeTempFiles.has(tmp)) continue;
      const st = await lstat(tmp).catch(() => undefined);
      if (!st || now - st.mtimeMs < TEMP_GRACE_MS) continue;
      if (!opts.dryRun) await unlink(tmp).catch(() => undefined);
      removed.push(tmp.slice(layout.dir.length + 1));
      bytes += st.size;
    }
    return { removed, bytes };
  });
}
