/**
 * What garbage collection would remove, computed from the rows every metadata driver holds (the
 * same rule for SQLite and PostgreSQL): a manifest link survives when tagged, pushed within the
 * grace period, a child of a surviving index or a referrer of a surviving manifest; a blob is
 * garbage when no surviving manifest references it and it was neither created nor linked within
 * the grace period.
 */
import type { GcPlan } from './metadata-store.js';

export interface GcRows {
  links: { repo: string; digest: string; pushedAt: number }[];
  tagged: { repo: string; digest: string }[];
  refs: { manifest: string; ref: string; kind: string }[];
  subjects: { digest: string; subject: string }[];
  blobs: { digest: string; size: number; createdAt: number }[];
  /** Digests linked into some repository at or after the cutoff. */
  recentlyLinked: string[];
}

export function planFromRows(rows: GcRows, cutoff: number, deleteUntagged: boolean): GcPlan {
  const key = (repo: string, digest: string) => `${repo}\0${digest}`;
  const doomed = new Set<string>();
  if (deleteUntagged) {
    const tagged = new Set(rows.tagged.map((t) => key(t.repo, t.digest)));
    const live = new Set(rows.links.map((l) => key(l.repo, l.digest)));
    const children = new Map<string, string[]>();
    for (const r of rows.refs) if (r.kind === 'manifest') children.set(r.manifest, [...(children.get(r.manifest) ?? []), r.ref]);
    const referrersOf = new Map<string, string[]>();
    for (const s of rows.subjects) referrersOf.set(s.subject, [...(referrersOf.get(s.subject) ?? []), s.digest]);
    const reachable = new Set<string>();
    const queue: string[] = [];
    for (const l of rows.links) {
      const k = key(l.repo, l.digest);
      if (tagged.has(k) || l.pushedAt >= cutoff) {
        reachable.add(k);
        queue.push(k);
      }
    }
    while (queue.length > 0) {
      const [repo, digest] = queue.pop()!.split('\0') as [string, string];
      for (const next of [...(children.get(digest) ?? []), ...(referrersOf.get(digest) ?? [])]) {
        const k = key(repo, next);
        if (live.has(k) && !reachable.has(k)) {
          reachable.add(k);
          queue.push(k);
        }
      }
    }
    for (const k of live) if (!reachable.has(k)) doomed.add(k);
  }
  const surviving = new Set(rows.links.filter((l) => !doomed.has(key(l.repo, l.digest))).map((l) => l.digest));
  const referenced = new Set<string>();
  for (const r of rows.refs) if (surviving.has(r.manifest)) referenced.add(r.ref);
  const recent = new Set(rows.recentlyLinked);
  return {
    manifests: [...doomed].map((k) => {
      const [repo, digest] = k.split('\0') as [string, string];
      return { repo, digest };
    }),
    blobs: rows.blobs
      .filter((b) => !referenced.has(b.digest) && !recent.has(b.digest) && b.createdAt < cutoff)
      .map((b) => ({ digest: b.digest, size: b.size })),
  };
}
