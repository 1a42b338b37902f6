/**
 * Places named as skopeo names them: `docker://HOST/REPO[:TAG|@DIGEST]`, `oci:DIR[:REF]`,
 * `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]`. Opening a place gives a Target, the
 * reference to read or write there, and a `close(ok)` that finishes archives and removes temp dirs.
 * Archive code (and the zstd addon behind it) is loaded only when an archive place is opened:
 * `berth copy` between registries and layouts starts faster without it.
 */
import { mkdtemp, rm, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { BerthError } from '../base/errors.js';
import { OciLayout } from '../image/layout.js';
import { parseReference, referenceTarget, type Reference } from '../image/reference.js';
import type { RegistryClient } from './registry.js';
import type { Descriptor } from '../base/types.js';
import type { Target } from '../base/target.js';

export type Place =
  | { kind: 'docker'; reference: Reference }
  | { kind: 'oci' | 'oci-archive' | 'docker-archive'; path: string; ref?: string };

export interface OpenedPlace {
  target: Target;
  /** The tag or digest to read (sources) or to tag (destinations); undefined for none. */
  ref: string | undefined;
  /** A source already resolved while opening (a registry, to choose among its mirrors). */
  resolved?: Descriptor;
  /** Finishes the place: packs archives when `ok`, always removes temp dirs. */
  close(ok: boolean): Promise<void>;
}

export function parsePlace(s: string): Place {
  if (s.startsWith('docker://')) return { kind: 'docker', reference: parseReference(s.slice('docker://'.length)) };
  for (const kind of ['oci', 'oci-archive', 'docker-archive'] as const) {
    const prefix = `${kind}:`;
    if (!s.startsWith(prefix)) continue;
    const rest = s.slice(prefix.length);
    // skopeo: the path ends at the first ':'; what follows is the reference.
    const colon = rest.indexOf(':');
    const path = colon < 0 ? rest : rest.slice(0, colon);
    const ref = colon < 0 ? undefined : rest.slice(colon + 1);
    if (!path) throw new BerthError('USAGE', `${JSON.stringify(s)}: the ${kind} path is missing`);
    return ref ? { kind, path, ref } : { kind, path };
  }
  throw new BerthError(
    'USAGE',
    `${JSON.stringify(s)} is not a place berth knows: use docker://HOST/REPO:TAG, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]`,
  );
}

export function formatPlace(p: Place): string {
  if (p.kind === 'docker') {
    const r = p.reference;
    return `docker://${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
  }
  return `${p.kind}:${p.path}${p.ref ? `:${p.ref}` : ''}`;
}

export interface OpenContext {
  client: RegistryClient;
  /** Only the digest is wanted (a registry source resolves with HEAD, as crane digest does:
   * Docker Hub counts manifest GETs, not HEADs, against its pull limits). */
  digestOnly?: boolean;
}

async function tempDirNear(file: string): Promise<string> {
  // Next to the archive, so the final rename stays on one file system.
  try {
    return await mkdtemp(join(dirname(resolvePath(file)), '.berth-archive-'));
  } catch {
    return mkdtemp(join(tmpdir(), 'berth-archive-'));
  }
}

/** A layout's single image when no reference is named (as skopeo does). */
async function defaultLayoutRef(layout: OciLayout, what: string): Promise<string> {
  const manifests = (await layout.index()).manifests;
  if (manifests.length === 1) return manifests[0]!.digest;
  throw new BerthError('USAGE', `${what} holds ${manifests.length} images: name one as ${what}:REF (tags: ${(await layout.tags()).join(', ') || 'none'})`);
}

export async function openSource(place: Place, ctx: OpenContext): Promise<OpenedPlace> {
  switch (place.kind) {
    case 'docker': {
      // Through the mirrors registries.conf names, if any: the first that has it is the source.
      const r = place.reference;
      const ref = referenceTarget(r);
      const { repository, descriptor } = await ctx.client.resolveForPull(r.registry, r.repository, ref, { prefetch: !ctx.digestOnly });
      return { target: repository, ref, resolved: descriptor, close: async () => {} };
    }
    case 'oci': {
      const layout = await OciLayout.open(place.path);
      return { target: layout, ref: place.ref ?? (await defaultLayoutRef(layout, `oci:${place.path}`)), close: async () => {} };
    }
    case 'oci-archive': {
      const dir = await mkdtemp(join(tmpdir(), 'berth-oci-archive-'));
      const cleanup = () => rm(dir, { recursive: true, force: true });
      try {
        const { extractArchive } = await import('../content/archive-tar.js');
        await extractArchive(place.path, dir);
        const layout = await OciLayout.open(dir);
        return { target: layout, ref: place.ref ?? (await defaultLayoutRef(layout, `oci-archive:${place.path}`)), close: cleanup };
      } catch (err) {
        await cleanup();
        throw err;
      }
    }
    case 'docker-archive': {
      const dir = await mkdtemp(join(tmpdir(), 'berth-docker-archive-'));
      const cleanup = () => rm(dir, { recursive: true, force: true });
      try {
        const { DockerArchiveReader } = await import('../content/docker-archive.js');
        const reader = await DockerArchiveReader.open(place.path, dir);
        return { target: reader, ref: place.ref ?? '', close: cleanup };
      } catch (err) {
        await cleanup();
        throw err;
      }
    }
  }
}

export async function openDestination(place: Place, ctx: OpenContext): Promise<OpenedPlace> {
  switch (place.kind) {
    case 'docker': {
      const r = place.reference;
      const at = ctx.client.locate(r.registry, r.repository);
      return { target: ctx.client.repository(at.host, at.repository), ref: r.tag, close: async () => {} };
    }
    case 'oci': {
      const layout = await OciLayout.open(place.path, { create: true });
      return { target: layout, ref: place.ref, close: async () => {} };
    }
    case 'oci-archive': {
      const dir = await tempDirNear(place.path);
      const { createArchive } = await import('../content/archive-tar.js');
      const layout = await OciLayout.open(dir, { create: true });
      return {
        target: layout,
        ref: place.ref,
        close: async (ok) => {
          try {
            if (ok) {
              const tmp = `${place.path}.berth-partial`;
              await createArchive(dir, tmp);
              await rename(tmp, place.path);
            }
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      };
    }
    case 'docker-archive': {
      const dir = await tempDirNear(place.path);
      const { DockerArchiveWriter } = await import('../content/docker-archive.js');
      const writer = new DockerArchiveWriter(place.path, dir);
      return {
        target: writer,
        ref: place.ref,
        close: async (ok) => {
          try {
            if (ok) await writer.close();
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      };
    }
  }
}
