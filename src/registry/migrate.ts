/**
 * `berth registry migrate`: copies a registry (typically the embedded one, filesystem + SQLite)
 * into other stores (S3 + PostgreSQL) and verifies the copy, so that nothing is lost when a
 * registry outgrows one machine. Every blob is hashed on its way and committed only when it
 * matches its digest; manifests are stored through the same checks as a push (children before
 * the indexes that list them), with their tags. Blobs already in the target are not copied
 * again, so an interrupted migration is resumed by running it again.
 */
import { randomUUID } from 'node:crypto';
import { newHash, parseDigest } from '../base/digest.js';
import { BerthError } from '../base/errors.js';
import { parsePushedManifest } from './manifests.js';
import type { ManifestRecord, MetadataStore } from './metadata/metadata-store.js';
import type { BlobStore } from './storage/blob-store.js';
import { verifyRegistry, type VerifyProblem } from './verify.js';

export interface Stores {
  meta: MetadataStore;
  blobs: BlobStore;
}

export interface MigrateReport {
  blobsCopied: number;
  blobsPresent: number;
  bytesCopied: number;
  blobLinks: number;
  manifests: number;
  tags: number;
  /** What the verification of the target found (empty when the copy is whole). */
  problems: VerifyProblem[];
}

async function copyBlob(from: Stores, to: Stores, digest: string, size: number): Promise<boolean> {
  const there = await to.blobs.stat(digest);
  if (there && there.size === size) return false;
  const id = randomUUID();
  const algorithm = parseDigest(digest).algorithm;
  const hash = newHash(algorithm);
  await to.blobs.startUpload(id);
  try {
    const copied = await to.blobs.appendUpload(id, from.blobs.read(digest), (c) => hash.update(c));
    const actual = `${algorithm}:${hash.digest('hex')}`;
    if (actual !== digest || copied !== size) {
      throw new BerthError('DIGEST_MISMATCH', `blob ${digest} in the source reads as ${actual} (${copied} bytes, ${size} recorded): run "berth registry verify" on the source`);
    }
    await to.blobs.commitUpload(id, digest);
  } catch (err) {
    await to.blobs.cancelUpload(id).catch(() => undefined);
    throw err;
  }
  return true;
}

export async function migrateRegistry(from: Stores, to: Stores, progress: (line: string) => void = () => undefined): Promise<MigrateReport> {
  const report: MigrateReport = { blobsCopied: 0, blobsPresent: 0, bytesCopied: 0, blobLinks: 0, manifests: 0, tags: 0, problems: [] };
  for (const b of await from.meta.allBlobs()) {
    if (await copyBlob(from, to, b.digest, b.size)) {
      report.blobsCopied++;
      report.bytesCopied += b.size;
    } else report.blobsPresent++;
    progress(`blob ${b.digest} (${b.size} bytes)`);
  }
  const links = await from.meta.allLinks();
  for (const l of links.blobs) {
    await to.meta.linkBlob(l.repo, l.digest, l.size);
    report.blobLinks++;
  }
  const content = new Map<string, ManifestRecord>((await from.meta.allManifests()).map((m) => [m.digest, m]));
  const sparse = new Set((await from.meta.allManifestRefs()).filter((r) => r.sparse).map((r) => r.manifest));
  const tagsOf = new Map<string, string[]>();
  for (const t of links.tags) tagsOf.set(`${t.repo}\0${t.digest}`, [...(tagsOf.get(`${t.repo}\0${t.digest}`) ?? []), t.tag]);
  // Children first: a pass stores every manifest whose references are there; repeat until done.
  let pending = links.manifests;
  while (pending.length > 0) {
    const left: typeof pending = [];
    for (const l of pending) {
      const m = content.get(l.digest);
      if (!m) throw new BerthError('NOT_FOUND', `manifest ${l.digest} is linked into ${l.repo} but its content is missing in the source: run "berth registry verify" on it`);
      const parsed = parsePushedManifest(m.content, m.mediaType);
      const tags = tagsOf.get(`${l.repo}\0${l.digest}`) ?? [];
      const { missing } = await to.meta.putManifest({ ...parsed, repo: l.repo, digest: m.digest, mediaType: m.mediaType, size: m.size, content: m.content, tags, sparse: sparse.has(m.digest) });
      if (missing.length > 0) left.push(l);
      else {
        report.manifests++;
        report.tags += tags.length;
        progress(`manifest ${l.repo}@${l.digest}`);
      }
    }
    if (left.length === pending.length) {
      throw new BerthError('NOT_FOUND', `${left.length} manifest(s) reference content the source lacks (first: ${left[0]!.repo}@${left[0]!.digest}): run "berth registry verify" on the source`);
    }
    pending = left;
  }
  report.problems = (await verifyRegistry(to.meta, to.blobs)).problems;
  const [a, b] = [await from.meta.stats(), await to.meta.stats()];
  if (b.blobs < a.blobs || b.manifests < a.manifests || b.repositories < a.repositories) {
    report.problems.push({
      kind: 'reference-missing',
      digest: '',
      message: `the target holds ${b.blobs} blobs, ${b.manifests} manifests and ${b.repositories} repositories; the source ${a.blobs}, ${a.manifests} and ${a.repositories}`,
    });
  }
  return report;
}
