/**
 * Artifacts as `oras push` writes them (image-spec artifacts-guidance.md, manifest.md): an
 * image manifest with artifactType, the empty config `{}`, one layer per file titled with
 * org.opencontainers.image.title, and optionally a subject it refers to.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../base/errors.js';
import type { OciLayout } from './layout.js';
import { pushJson } from './build.js';
import { EMPTY_JSON_DIGEST, MediaType } from '../base/media-types.js';
import type { Annotations, Descriptor, ImageManifest } from '../base/types.js';

export const TITLE_ANNOTATION = 'org.opencontainers.image.title';
export const CREATED_ANNOTATION = 'org.opencontainers.image.created';
/** What oras uses for a file given without a media type. */
export const DEFAULT_FILE_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar';

const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export interface ArtifactFile {
  path: string;
  mediaType?: string;
}

export interface CreateArtifactOptions {
  artifactType: string;
  files: ArtifactFile[];
  subject?: Descriptor;
  /** Manifest annotations; org.opencontainers.image.created is added (now) unless given. */
  annotations?: Annotations;
  tag?: string;
}

function checkMediaType(value: string, what: string): void {
  if (!MEDIA_TYPE.test(value)) throw new BerthError('USAGE', `${what} ${JSON.stringify(value)} is not a media type (type/subtype, RFC 6838)`);
}

/** The empty descriptor (manifest.md "Guidance for an Empty Descriptor"). */
export const EMPTY_DESCRIPTOR: Descriptor = { mediaType: MediaType.empty, digest: EMPTY_JSON_DIGEST, size: 2 };

async function pushFile(layout: OciLayout, file: ArtifactFile): Promise<Descriptor> {
  const st = await stat(file.path).catch(() => undefined);
  if (!st?.isFile()) throw new BerthError('USAGE', `${file.path} is not a regular file: artifacts are made of files`);
  const mediaType = file.mediaType ?? DEFAULT_FILE_MEDIA_TYPE;
  checkMediaType(mediaType, `media type of ${file.path}`);
  const desc = await layout.ingest(mediaType, (out) => pipeline(createReadStream(file.path), out));
  desc.annotations = { [TITLE_ANNOTATION]: basename(file.path) };
  return desc;
}

/** Writes the artifact manifest (and its blobs) into the layout; tags it or records it in index.json. */
export async function createArtifact(layout: OciLayout, opts: CreateArtifactOptions): Promise<Descriptor> {
  checkMediaType(opts.artifactType, 'artifact type');
  const titles = new Set<string>();
  for (const f of opts.files) {
    const t = basename(f.path);
    if (titles.has(t)) throw new BerthError('USAGE', `two files are titled ${JSON.stringify(t)}: artifact file names must be unique`);
    titles.add(t);
  }
  const config = await pushJson(layout, MediaType.empty, {});
  const layers: Descriptor[] = [];
  for (const f of opts.files) layers.push(await pushFile(layout, f));
  // manifest.md: layers SHOULD have at least one entry; with no files, the empty descriptor.
  if (layers.length === 0) layers.push({ ...EMPTY_DESCRIPTOR });
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    artifactType: opts.artifactType,
    config,
    layers,
  };
  if (opts.subject) {
    const { mediaType, digest, size } = opts.subject;
    manifest.subject = { mediaType, digest, size };
  }
  const annotations: Annotations = { ...(opts.annotations ?? {}) };
  annotations[CREATED_ANNOTATION] ??= new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  manifest.annotations = annotations;
  const desc = await pushJson(layout, MediaType.imageManifest, manifest);
  desc.artifactType = opts.artifactType;
  // In index.json either way: referrers are found there, and gc keeps what is listed.
  if (opts.tag !== undefined) await layout.tag(desc, opts.tag);
  else await layout.addManifest(desc);
  return desc;
}
