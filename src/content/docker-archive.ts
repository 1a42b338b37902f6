/**
 * `docker-archive:` — the `docker save` format: a tar holding `manifest.json`
 * (`[{Config, RepoTags, Layers}]`), `repositories`, the config JSON and one tar per layer.
 * Reading presents each image as an OCI manifest (built in memory; the blobs keep their
 * bytes and digests); writing stages blobs in a temp directory and packs them on close.
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError } from '../base/errors.js';
import { DigestingStream, digestStream, encodedOf, validateDigest } from '../base/digest.js';
import { isIndexMediaType, isManifestOrIndexMediaType, MediaType } from '../base/media-types.js';
import type { Descriptor, ImageManifest } from '../base/types.js';
import { sniffCompression } from '../layer/compress.js';
import { createArchive, extractArchive } from './archive-tar.js';
import { MemoryStore } from './memory.js';
import { readAll } from '../base/read.js';
import type { FetchOptions, Target } from '../base/target.js';

export interface DockerArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

function safeMember(dir: string, name: string): string {
  if (typeof name !== 'string' || name.startsWith('/') || name.split('/').includes('..')) {
    throw new BerthError('UNSAFE_PATH', `docker archive names the unsafe path ${JSON.stringify(name)}`);
  }
  return join(dir, name);
}

async function describeFile(path: string, mediaType: string): Promise<Descriptor> {
  const { digest, size } = await digestStream(createReadStream(path));
  return { mediaType, digest, size };
}

async function layerMediaType(path: string): Promise<string> {
  const fh = await fs.open(path, 'r');
  try {
    const head = Buffer.alloc(16);
    const { bytesRead } = await fh.read(head, 0, 16, 0);
    const c = sniffCompression(head.subarray(0, bytesRead));
    return c === 'gzip' ? MediaType.layerTarGzip : c === 'zstd' ? MediaType.layerTarZstd : MediaType.layerTar;
  } finally {
    await fh.close();
  }
}

/** A `docker save` archive unpacked in `dir`, read as a Target. */
export class DockerArchiveReader implements Target {
  readonly name: string;
  private readonly memory = new MemoryStore();
  private readonly files = new Map<string, string>();
  private entries: DockerArchiveEntry[] = [];
  private readonly manifests = new Map<number, Descriptor>();

  private constructor(
    readonly dir: string,
    file: string,
  ) {
    this.name = `docker-archive:${file}`;
  }

  /** Unpacks `file` into `tmpDir` (which the caller removes afterwards). */
  static async open(file: string, tmpDir: string): Promise<DockerArchiveReader> {
    await extractArchive(file, tmpDir);
    const reader = new DockerArchiveReader(tmpDir, file);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(join(tmpDir, 'manifest.json'), 'utf8'));
    } catch (err) {
      throw new BerthError('LAYOUT_INVALID', `${file} is not a docker archive: manifest.json is missing or not JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(parsed) || parsed.length === 0) {
      throw new BerthError('LAYOUT_INVALID', `${file}: manifest.json should be a non-empty array of {Config, RepoTags, Layers}`);
    }
    reader.entries = parsed as DockerArchiveEntry[];
    return reader;
  }

  /** The image for `ref`: a RepoTag (`name:tag`), `@N` (the Nth image), or nothing when there is one image. */
  async resolve(ref: string): Promise<Descriptor> {
    let i: number;
    if (!ref) {
      if (this.entries.length !== 1) {
        const tags = this.entries.flatMap((e) => e.RepoTags ?? []);
        throw new BerthError('USAGE', `${this.name} holds ${this.entries.length} images: name one (${tags.join(', ')}) or @N`);
      }
      i = 0;
    } else if (/^@\d+$/.test(ref)) {
      i = Number(ref.slice(1));
    } else {
      i = this.entries.findIndex((e) => (e.RepoTags ?? []).some((t) => t === ref || t === `docker.io/${ref}` || t === `docker.io/library/${ref}`));
    }
    const entry = this.entries[i];
    if (!entry) throw new BerthError('NOT_FOUND', `no image ${JSON.stringify(ref)} in ${this.name}`);
    const cached = this.manifests.get(i);
    if (cached) return cached;
    const configPath = safeMember(this.dir, entry.Config);
    const config = await describeFile(configPath, MediaType.imageConfig);
    this.files.set(config.digest, configPath);
    const layers: Descriptor[] = [];
    for (const name of entry.Layers) {
      const path = safeMember(this.dir, name);
      const layer = await describeFile(path, await layerMediaType(path));
      this.files.set(layer.digest, path);
      layers.push(layer);
    }
    const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config, layers };
    const desc = this.memory.addJson(MediaType.imageManifest, manifest);
    this.manifests.set(i, desc);
    return desc;
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.files.has(desc.digest) || (await this.memory.exists(desc));
  }

  async fetch(desc: Descriptor, opts: FetchOptions = {}): Promise<Readable> {
    const path = this.files.get(desc.digest);
    if (!path) return this.memory.fetch(desc, opts);
    const stream = createReadStream(path, { start: opts.offset ?? 0, highWaterMark: 1 << 20 });
    if (opts.offset) return stream;
    const verify = new DigestingStream({ expectedDigest: desc.digest, expectedSize: desc.size });
    stream.on('error', (err) => verify.destroy(err));
    return stream.pipe(verify);
  }

  async push(): Promise<void> {
    throw new BerthError('UNSUPPORTED', `${this.name} is opened for reading`);
  }

  async tag(): Promise<void> {
    throw new BerthError('UNSUPPORTED', `${this.name} is opened for reading`);
  }
}

/** Writes images in the `docker save` format; `close()` packs the archive. */
export class DockerArchiveWriter implements Target {
  readonly name: string;
  private readonly manifests = new Map<string, Buffer>();
  private readonly tagged: { desc: Descriptor; ref: string }[] = [];
  private readonly blobs = new Set<string>();

  constructor(
    readonly file: string,
    readonly dir: string,
  ) {
    this.name = `docker-archive:${file}`;
  }

  private blobPath(digest: string): string {
    return join(this.dir, `${encodedOf(digest)}`);
  }

  async exists(desc: Descriptor): Promise<boolean> {
    return this.blobs.has(desc.digest) || this.manifests.has(desc.digest);
  }

  async fetch(desc: Descriptor): Promise<Readable> {
    const m = this.manifests.get(desc.digest);
    if (m) return Readable.from([m]);
    if (!this.blobs.has(desc.digest)) throw new BerthError('NOT_FOUND', `${desc.digest} is not in ${this.name}`);
    return createReadStream(this.blobPath(desc.digest));
  }

  async push(desc: Descriptor, content: Readable): Promise<void> {
    validateDigest(desc.digest);
    const verify = new DigestingStream({ expectedDigest: desc.digest, expectedSize: desc.size });
    if (isManifestOrIndexMediaType(desc.mediaType)) {
      content.on('error', (err) => verify.destroy(err));
      this.manifests.set(desc.digest, await readAll(content.pipe(verify)));
      return;
    }
    const tmp = `${this.blobPath(desc.digest)}.partial`;
    await pipeline(content, verify, createWriteStream(tmp));
    await fs.rename(tmp, this.blobPath(desc.digest));
    this.blobs.add(desc.digest);
  }

  async resolve(ref: string): Promise<Descriptor> {
    const hit = this.tagged.find((t) => t.ref === ref);
    if (!hit) throw new BerthError('NOT_FOUND', `no image ${JSON.stringify(ref)} in ${this.name}`);
    return hit.desc;
  }

  async tag(desc: Descriptor, ref: string): Promise<void> {
    if (isIndexMediaType(desc.mediaType)) {
      throw new BerthError('UNSUPPORTED', `${this.name}: a docker archive holds single-platform images; copy one platform (--platform) instead of an index`);
    }
    if (!this.manifests.has(desc.digest)) throw new BerthError('NOT_FOUND', `cannot tag ${desc.digest}: it was not pushed to ${this.name}`);
    this.tagged.push({ desc, ref });
  }

  /** Adds an untagged image (copy without a destination reference). */
  async addManifest(desc: Descriptor): Promise<void> {
    if (isIndexMediaType(desc.mediaType)) {
      throw new BerthError('UNSUPPORTED', `${this.name}: a docker archive holds single-platform images; copy one platform instead of an index`);
    }
    this.tagged.push({ desc, ref: '' });
  }

  /** Writes manifest.json and repositories, renames blobs to docker's names and packs the tar. */
  async close(): Promise<void> {
    const entries: DockerArchiveEntry[] = [];
    const repositories: Record<string, Record<string, string>> = {};
    const byManifest = new Map<string, DockerArchiveEntry>();
    for (const { desc, ref } of this.tagged) {
      let entry = byManifest.get(desc.digest);
      if (!entry) {
        const manifest = JSON.parse(this.manifests.get(desc.digest)!.toString('utf8')) as ImageManifest;
        entry = {
          Config: `${encodedOf(manifest.config.digest)}.json`,
          RepoTags: [],
          Layers: manifest.layers.map((l) => `${encodedOf(l.digest)}.tar`),
        };
        await this.place(manifest.config.digest, entry.Config);
        for (const [i, l] of manifest.layers.entries()) await this.place(l.digest, entry.Layers[i]!);
        byManifest.set(desc.digest, entry);
        entries.push(entry);
      }
      if (ref) {
        entry.RepoTags!.push(ref);
        const colon = ref.lastIndexOf(':');
        const [name, tag] = colon > ref.lastIndexOf('/') ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, 'latest'];
        const top = entry.Layers[entry.Layers.length - 1];
        if (top) repositories[name] = { ...(repositories[name] ?? {}), [tag]: top.replace(/\.tar$/, '') };
      }
    }
    const packDir = join(this.dir, 'pack');
    await fs.mkdir(packDir, { recursive: true });
    await fs.writeFile(join(packDir, 'manifest.json'), JSON.stringify(entries));
    await fs.writeFile(join(packDir, 'repositories'), JSON.stringify(repositories));
    const tmp = `${this.file}.berth-partial`;
    await createArchive(packDir, tmp);
    await fs.rename(tmp, this.file);
  }

  private async place(digest: string, name: string): Promise<void> {
    const packDir = join(this.dir, 'pack');
    await fs.mkdir(packDir, { recursive: true });
    const target = join(packDir, name);
    try {
      await fs.link(this.blobPath(digest), target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new BerthError('NOT_FOUND', `${this.name}: blob ${digest} was not written (${(err as Error).message})`);
      }
    }
  }
}
