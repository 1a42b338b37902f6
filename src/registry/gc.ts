/**
 * Garbage collection, safe while the registry serves: untagged manifests (when configured) and
 * blobs that no manifest references and that were not linked within the grace period (uploads
 * in flight, pushes whose manifest has not arrived yet) are removed. Each blob is re-checked
 * and deleted under its digest lock, the same lock an upload takes to commit that digest. With
 * shared metadata (PostgreSQL) both locks hold across replicas.
 */
import type { Locks } from './keyed-mutex.js';
import type { MetadataStore } from './metadata/metadata-store.js';
import type { BlobStore } from './storage/blob-store.js';

export interface GcOptions {
  dryRun: boolean;
  deleteUntagged: boolean;
  graceMs: number;
  now?: number;
}

export interface GcReport {
  manifests: { repo: string; digest: string }[];
  blobs: { digest: string; size: number }[];
  /** Files in the blob store the metadata does not know (left by a crash between rename and commit). */
  orphans: string[];
  bytesFreed: number;
}

export async function collectGarbage(meta: MetadataStore, blobs: BlobStore, locks: Locks, opts: GcOptions): Promise<GcReport> {
  // One collection at a time across every replica sharing the metadata.
  return meta.withLock('gc', () => collect(meta, blobs, locks, opts));
}

async function collect(meta: MetadataStore, blobs: BlobStore, locks: Locks, opts: GcOptions): Promise<GcReport> {
  const now = opts.now ?? Date.now();
  const cutoff = now - opts.graceMs;
  const first = await meta.planGc({ now, graceMs: opts.graceMs, deleteUntagged: opts.deleteUntagged });
  const report: GcReport = { manifests: first.manifests, blobs: [], orphans: [], bytesFreed: 0 };
  if (opts.dryRun) {
    report.blobs = first.blobs;
  } else {
    for (const m of first.manifests) await meta.deleteManifest(m.repo, m.digest);
    const plan = await meta.planGc({ now, graceMs: opts.graceMs, deleteUntagged: false });
    for (const b of plan.blobs) {
      const removed = await locks.run(b.digest, async () => {
        if (!(await meta.forgetBlobIfUnreferenced(b.digest, cutoff))) return false;
        await blobs.delete(b.digest);
        return true;
      });
      if (removed) report.blobs.push(b);
    }
  }
  const known = new Set((await meta.allBlobs()).map((b) => b.digest));
  const planned = new Set(report.blobs.map((b) => b.digest));
  for await (const f of blobs.list()) {
    if (known.has(f.digest) || planned.has(f.digest) || f.mtimeMs >= cutoff) continue;
    if (opts.dryRun) {
      report.orphans.push(f.digest);
      report.bytesFreed += f.size;
      continue;
    }
    await locks.run(f.digest, async () => {
      if ((await meta.blob(f.digest)) !== undefined) return;
      if (await blobs.delete(f.digest)) {
        report.orphans.push(f.digest);
        report.bytesFreed += f.size;
      }
    });
  }
  report.bytesFreed += report.blobs.reduce((n, b) => n + b.size, 0);
  return report;
}
