/** `berth registry verify`: every stored blob against its digest and size, and every link. */
import { createHash } from 'node:crypto';
import { parseDigest } from '../base/digest.js';
import type { MetadataStore } from './metadata/metadata-store.js';
import type { BlobStore } from './storage/blob-store.js';

export interface VerifyProblem {
  kind: 'blob-missing' | 'blob-corrupt' | 'blob-size' | 'manifest-corrupt' | 'reference-missing';
  digest: string;
  message: string;
}

export async function verifyRegistry(meta: MetadataStore, blobs: BlobStore): Promise<{ checked: number; problems: VerifyProblem[] }> {
  const problems: VerifyProblem[] = [];
  let checked = 0;
  const known = new Set<string>();
  for (const b of await meta.allBlobs()) {
    known.add(b.digest);
    checked++;
    const st = await blobs.stat(b.digest);
    if (!st) {
      problems.push({ kind: 'blob-missing', digest: b.digest, message: `blob ${b.digest} is recorded but its file is missing` });
      continue;
    }
    if (st.size !== b.size) {
      problems.push({ kind: 'blob-size', digest: b.digest, message: `blob ${b.digest} is ${st.size} bytes, recorded as ${b.size}` });
      continue;
    }
    const h = createHash(parseDigest(b.digest).algorithm);
    for await (const chunk of blobs.read(b.digest) as AsyncIterable<Buffer>) h.update(chunk);
    const actual = `${parseDigest(b.digest).algorithm}:${h.digest('hex')}`;
    if (actual !== b.digest) problems.push({ kind: 'blob-corrupt', digest: b.digest, message: `blob ${b.digest} hashes to ${actual}` });
  }
  const manifests = new Set<string>();
  for (const m of await meta.allManifests()) {
    checked++;
    manifests.add(m.digest);
    const h = createHash(parseDigest(m.digest).algorithm).update(m.content).digest('hex');
    if (`${parseDigest(m.digest).algorithm}:${h}` !== m.digest || m.content.length !== m.size) {
      problems.push({ kind: 'manifest-corrupt', digest: m.digest, message: `manifest ${m.digest} does not match its stored bytes` });
    }
  }
  for (const r of await meta.allManifestRefs()) {
    // A sparse manifest (a mirror of part of an index) was accepted with references missing.
    const ok = r.sparse || (r.kind === 'blob' ? known.has(r.ref) : manifests.has(r.ref));
    if (!ok) problems.push({ kind: 'reference-missing', digest: r.ref, message: `manifest ${r.manifest} references ${r.ref}, which is missing` });
  }
  return { checked, problems };
}
