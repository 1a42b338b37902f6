/**
 * `berth build` and `berth builder prune` (cli group module: the command table in berth.ts
 * maps `build` and `builder` here). The building itself is src/engine/build/builder.ts.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import type { LayerCompression } from '../base/media-types.js';
import type { Descriptor } from '../base/types.js';
import { openDestination } from '../client/places.js';
import { RegistryClient } from '../client/registry.js';
import { copy } from '../content/copy.js';
import { MemoryStore } from '../content/memory.js';
import { OciLayout } from '../image/layout.js';
import { isLayoutPlace, parseLayoutPlace } from '../image/place.js';
import { parsePlatform } from '../image/platform.js';
import { parseReference } from '../image/reference.js';
import { parseGoDuration } from '../engine/build/flags.js';
import { buildPlatforms, type BuildOptions, type ImageFormat } from '../engine/build/builder.js';
import { clientFor, REGISTRY_OPTIONS } from './client.js';
import { BuildCache, type CachedStep } from '../engine/build/cache.js';
import { importCache, parseCachePlace, writeCacheLayout, type ImportedCache } from '../engine/build/cache-transfer.js';
import { EngineRunExecutor } from '../engine/build/engine-run.js';
import { berthRoot, imageStorePath, storeRefName } from '../engine/store.js';
import { flag, needPositionals, printJson, printLine, str, strs, type CommandGroup, type ParsedCommand } from './common.js';

const one = { type: 'string' } as const;
const many = { type: 'string', multiple: true } as const;
const bool = { type: 'boolean' } as const;

/** The build cache's directory under the berth root. */
export function buildCacheDir(root?: string): string {
  return join(berthRoot(root ? { root } : {}), 'build-cache');
}

/** `--build-arg NAME=VALUE` (or NAME alone: from the environment). */
export function buildArgsOf(values: string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw new BerthError('USAGE', `--build-arg ${JSON.stringify(v)} has no name: write --build-arg NAME=VALUE`);
    if (eq < 0) out[v] = undefined;
    else out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** `--secret id=NAME,src=FILE` (also `source=`; `env=VAR` reads an environment variable's value into a temp-free map entry). */
export function secretsOf(values: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values) {
    const fields = Object.fromEntries(v.split(',').map((f) => [f.slice(0, f.indexOf('=') < 0 ? f.length : f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
    const id = fields.id;
    const src = fields.src ?? fields.source;
    if (!id || !src) throw new BerthError('USAGE', `--secret ${JSON.stringify(v)}: write --secret id=NAME,src=FILE`);
    out.set(id, src);
  }
  return out;
}

/**
 * Where `--output` sends the image: an OCI layout, or an archive file: docker-archive (`docker
 * load` reads it) or oci-archive (a tar of an OCI layout).
 */
export type BuildOutput = { type: 'oci'; layout: string; tag?: string } | { type: 'docker' | 'oci-archive'; dest: string; name?: string };

/**
 * `--output type=oci,dest=DIR[,name=TAG]`, `oci:DIR:TAG`, `type=oci,dest=FILE.tar` (or `tar=true`)
 * for a tar of the layout, or `type=docker,dest=FILE[,name=TAG]`.
 */
export function outputOf(value: string): BuildOutput {
  if (isLayoutPlace(value)) {
    const place = parseLayoutPlace(value);
    return { type: 'oci', layout: place.dir, ...(place.ref ? { tag: place.ref } : {}) };
  }
  const fields = Object.fromEntries(value.split(',').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  if (fields.type === 'oci' && fields.dest && (fields.tar === 'true' || fields.dest.endsWith('.tar'))) {
    return { type: 'oci-archive', dest: fields.dest, ...(fields.name ? { name: fields.name } : {}) };
  }
  if (fields.type === 'oci' && fields.dest) return { type: 'oci', layout: fields.dest, ...(fields.name ? { tag: fields.name } : {}) };
  if (fields.type === 'docker' && fields.dest) return { type: 'docker', dest: fields.dest, ...(fields.name ? { name: fields.name } : {}) };
  throw new BerthError(
    'USAGE',
    `--output ${JSON.stringify(value)}: write --output type=oci,dest=DIR[,name=TAG], --output oci:DIR:TAG or --output type=docker,dest=FILE[,name=TAG]`,
  );
}

/** `--format oci|docker` (the image's media types; `--format json|text` still chooses the output, as for every command). */
function formatOf(v: string | undefined): ImageFormat | undefined {
  if (v === undefined || v === 'json' || v === 'text') return undefined;
  if (v === 'oci' || v === 'docker') return v;
  throw new BerthError('USAGE', `--format must be oci or docker (or json for JSON output), got ${JSON.stringify(v)}`);
}

/** The built image from `layout` into an archive file, named `name` in it (docker load tags it so). */
async function exportArchive(kind: 'docker-archive' | 'oci-archive', layout: OciLayout, manifest: Descriptor, dest: string, name: string | undefined): Promise<void> {
  const place = await openDestination({ kind, path: dest, ...(name ? { ref: name } : {}) }, { client: new RegistryClient() });
  let ok = false;
  try {
    await copy(layout, manifest, place.target, place.ref);
    ok = true;
  } finally {
    await place.close(ok);
  }
}

/** A --cache-from cache: an OCI layout (none yet: an empty cache) or a registry reference. */
async function openCacheFrom(value: string, client: RegistryClient): Promise<ImportedCache> {
  const place = parseCachePlace(value, '--cache-from');
  if (place.type === 'local') {
    // None there yet (a first build): an empty cache, as BuildKit; nothing is created.
    if (!existsSync(join(place.dir, 'oci-layout'))) return { steps: new Map(), source: new MemoryStore() };
    return importCache(await OciLayout.open(place.dir), place.tag, `--cache-from ${value}`);
  }
  const ref = parseReference(place.ref);
  const target = (await openDestination({ kind: 'docker', reference: ref }, { client })).target;
  return importCache(target, ref.digest ?? ref.tag ?? 'latest', `--cache-from ${value}`);
}

/** --cache-to: the build's steps and layers into an OCI layout, or (through a temporary one) to a registry. */
async function exportCacheTo(value: string, client: RegistryClient, from: OciLayout, steps: CachedStep[], tmpRoot: string): Promise<void> {
  const place = parseCachePlace(value, '--cache-to');
  if (place.type === 'local') {
    await writeCacheLayout(from, steps, await OciLayout.open(place.dir, { create: true }), place.tag);
    return;
  }
  const ref = parseReference(place.ref);
  await mkdir(tmpRoot, { recursive: true });
  const dir = await mkdtemp(join(tmpRoot, 'build-cache-export-'));
  try {
    const layout = await OciLayout.open(dir, { create: true });
    await writeCacheLayout(from, steps, layout, 'cache');
    const dest = await openDestination({ kind: 'docker', reference: ref }, { client });
    await copy(layout, 'cache', dest.target, ref.tag ?? 'latest');
    await dest.close(true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** --push: each -t name from the store to its registry. */
async function pushTags(client: RegistryClient, store: OciLayout, tags: string[]): Promise<void> {
  for (const t of tags) {
    const ref = parseReference(t);
    const place = await openDestination({ kind: 'docker', reference: ref }, { client });
    await copy(store, t, place.target, ref.tag ?? 'latest');
    await place.close(true);
  }
}

function compressionOf(v: string | undefined): LayerCompression | undefined {
  if (v === undefined) return undefined;
  if (v === 'gzip' || v === 'zstd' || v === 'none') return v;
  throw new BerthError('USAGE', `--compression must be gzip, zstd or none, got ${JSON.stringify(v)}`);
}

function epochOf(p: ParsedCommand): number | undefined {
  const v = str(p, 'source-date-epoch') ?? process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new BerthError('USAGE', `SOURCE_DATE_EPOCH must be a number of seconds, got ${JSON.stringify(v)}`);
  return Number(v);
}

export const commands: CommandGroup = {
  build: {
    summary: 'Build an image from a Dockerfile (Containerfile)',
    usage: `Usage: berth build [OPTIONS] CONTEXT

Builds the Dockerfile of CONTEXT (or -f FILE) stage by stage, without a daemon; COPY and ADD
read CONTEXT minus what .dockerignore (.containerignore) excludes. RUN steps run in containers
of berth's engine (as root), with the host's network unless RUN --network=none.

Options:
  -t, --tag NAME                 tag the image in the local store (repeatable)
  -f, --file FILE                the Dockerfile (default CONTEXT/Dockerfile or CONTEXT/Containerfile)
  --target STAGE                 build this stage and what it needs
  --build-arg NAME[=VALUE]       set an ARG (repeatable; NAME alone takes $NAME)
  --platform OS/ARCH[/VARIANT]   default: this machine; several, comma-separated, make an image
                                 index (RUN for another architecture needs a binfmt_misc emulator)
  --output type=oci,dest=DIR[,name=TAG] | oci:DIR:TAG   write into an OCI layout instead of the store
  --output type=docker,dest=FILE[,name=TAG]   also write a docker-archive tar (docker load, podman load)
  --output type=oci,dest=FILE.tar[,name=TAG]  also write a tar of an OCI layout (or tar=true)
  --format oci|docker            manifest and config media types: OCI (default) or Docker schema 2
  --push                         push each -t name to its registry after the build
  --cache-from type=local,src=DIR | type=registry,ref=REF   reuse steps a --cache-to exported (repeatable)
  --cache-to type=local,dest=DIR | type=registry,ref=REF    export this build's steps and layers
  --tls-verify=false             plain HTTP for --push (loopback registries always use it)
  --iidfile FILE                 write the image ID (the config digest) to FILE
  --no-cache                     build every step (results are still cached)
  --compression gzip|zstd|none   layer compression (default gzip)
  --secret id=NAME,src=FILE      a secret for RUN --mount=type=secret (repeatable)
  --source-date-epoch N          clamp file times and set created (default: $SOURCE_DATE_EPOCH)
  --root DIR                     berth's root (store and build cache)
  --quiet                        print only the image ID

Examples:
  berth build -t app:1 .
  berth build -f docker/Dockerfile --target test --build-arg VERSION=1.2 .
  SOURCE_DATE_EPOCH=0 berth build --output oci:./out:app .`,
    options: {
      tag: { ...many, short: 't' },
      file: { ...one, short: 'f' },
      target: one,
      'build-arg': many,
      platform: one,
      output: one,
      iidfile: one,
      'no-cache': bool,
      compression: one,
      secret: many,
      'source-date-epoch': one,
      format: one,
      push: bool,
      'cache-from': many,
      'cache-to': one,
      ...REGISTRY_OPTIONS,
      root: one,
      quiet: { ...bool, short: 'q' },
    },
    async run(p) {
      needPositionals(p, 1, 1, commands.build!.usage);
      const contextDir = p.positionals[0]!;
      const root = str(p, 'root');
      const tags = strs(p, 'tag').map((t) => storeRefName(parseReference(t)));
      const outputOpt = str(p, 'output');
      const wanted = outputOpt !== undefined ? outputOf(outputOpt) : undefined;
      const push = flag(p, 'push');
      if (push && (tags.length === 0 || wanted?.type === 'oci')) {
        throw new BerthError('USAGE', '--push sends the -t names to their registries: give -t REGISTRY/REPO:TAG (and no --output type=oci)');
      }
      const store = { layout: imageStorePath(root ? { root } : {}), ...(tags[0] ? { tag: tags[0] } : {}) };
      // An archive: into the store when tagged (as docker --load), else through a temporary layout.
      let scratch: string | undefined;
      if (wanted !== undefined && wanted.type !== 'oci' && tags.length === 0) {
        await mkdir(berthRoot(root ? { root } : {}), { recursive: true });
        scratch = await mkdtemp(join(berthRoot(root ? { root } : {}), 'build-output-'));
      }
      const output = wanted?.type === 'oci' ? wanted : scratch !== undefined ? { layout: scratch } : store;
      const quiet = flag(p, 'quiet') || p.json;
      const opts: BuildOptions = {
        contextDir,
        output,
        buildArgs: buildArgsOf(strs(p, 'build-arg')),
        secrets: secretsOf(strs(p, 'secret')),
        cache: buildCacheDir(root),
        storeRoot: berthRoot(root ? { root } : {}),
        // Overlay views of the stages need root (as RUN does); otherwise stages are unpacked.
        ...(process.getuid?.() === 0 ? { snapshotRoot: berthRoot(root ? { root } : {}) } : {}),
        runExecutor: new EngineRunExecutor({ root: berthRoot(root ? { root } : {}) }),
        noCache: flag(p, 'no-cache'),
        ...(str(p, 'file') !== undefined ? { dockerfile: str(p, 'file')! } : {}),
        ...(str(p, 'target') !== undefined ? { targetStage: str(p, 'target')! } : {}),
        ...(compressionOf(str(p, 'compression')) ? { compression: compressionOf(str(p, 'compression'))! } : {}),
        ...(formatOf(str(p, 'format')) ? { format: formatOf(str(p, 'format'))! } : {}),
        ...(epochOf(p) !== undefined ? { sourceDateEpoch: epochOf(p)! } : {}),
        ...(quiet ? {} : { log: (line: string) => process.stderr.write(`${line}\n`) }),
      };
      const platforms = (str(p, 'platform') ?? '').split(',').filter((x) => x.trim() !== '').map((x) => parsePlatform(x));
      if (platforms.length > 1 && wanted?.type === 'docker') {
        throw new BerthError('USAGE', '--output type=docker holds one platform (docker load reads no index): use --output type=oci for several --platform values, or build one platform');
      }
      const client = clientFor(p);
      const cacheFrom = await Promise.all(strs(p, 'cache-from').map((v) => openCacheFrom(v, client)));
      if (cacheFrom.length) opts.cacheFrom = cacheFrom;
      const cacheTo = str(p, 'cache-to');
      let result;
      try {
        result = await buildPlatforms(opts, platforms);
        if (cacheTo !== undefined) await exportCacheTo(cacheTo, client, await OciLayout.open(output.layout), result.cacheSteps, berthRoot(root ? { root } : {}));
        // Further -t names point at the same manifest.
        if (wanted?.type !== 'oci' && tags.length > 1) {
          const layout = await OciLayout.open(output.layout);
          const desc = await layout.resolve(tags[0]!);
          for (const t of tags.slice(1)) await layout.tag(desc, t);
        }
        if (wanted && wanted.type !== 'oci') {
          const kind = wanted.type === 'docker' ? 'docker-archive' : 'oci-archive';
          await exportArchive(kind, await OciLayout.open(output.layout), result.manifest, wanted.dest, wanted.name ?? tags[0]);
        }
      } finally {
        if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
      }
      if (push) await pushTags(client, await OciLayout.open(output.layout), tags);
      const iidfile = str(p, 'iidfile');
      const id = result.id;
      if (iidfile !== undefined) await writeFile(iidfile, id);
      for (const w of result.warnings) if (!quiet) process.stderr.write(`warning: ${w}\n`);
      if (p.json) printJson({ id, manifest: result.manifest, tags, steps: result.steps });
      else printLine(quiet ? id : `built ${id}${tags.length ? ` as ${tags.join(', ')}` : ''} (manifest ${result.manifest.digest})`);
      return 0;
    },
  },

  builder: {
    summary: 'Manage the build cache (berth builder prune)',
    usage: `Usage: berth builder prune [--all | --keep-duration DURATION] [--root DIR]

Removes cached build steps: all of them with --all, else those unused for DURATION (default 48h),
and the layers no remaining step needs.`,
    options: { all: bool, 'keep-duration': one, root: one },
    async run(p) {
      needPositionals(p, 1, 1, commands.builder!.usage);
      if (p.positionals[0] !== 'prune') throw new BerthError('USAGE', `unknown builder command ${JSON.stringify(p.positionals[0])}\n\n${commands.builder!.usage}`);
      const keep = str(p, 'keep-duration') ?? '48h';
      const ns = parseGoDuration(keep);
      if (ns === undefined) throw new BerthError('USAGE', `--keep-duration ${JSON.stringify(keep)} is not a duration: write 24h, 30m…`);
      const root = str(p, 'root');
      const cache = await BuildCache.open(buildCacheDir(root));
      const r = await cache.prune(flag(p, 'all') ? {} : { olderThanMs: ns / 1e6 });
      if (p.json) printJson(r);
      else printLine(`removed ${r.records} cached step${r.records === 1 ? '' : 's'} and ${r.blobs} layer${r.blobs === 1 ? '' : 's'} (${r.bytes} bytes)`);
      return 0;
    },
  },
};
