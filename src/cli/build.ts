/**
 * `berth build` and `berth builder prune` (cli group module: the command table in berth.ts
 * maps `build` and `builder` here). The building itself is src/engine/build/builder.ts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../base/errors.js';
import type { LayerCompression } from '../base/media-types.js';
import { OciLayout } from '../image/layout.js';
import { isLayoutPlace, parseLayoutPlace } from '../image/place.js';
import { parsePlatform } from '../image/platform.js';
import { parseReference } from '../image/reference.js';
import { parseGoDuration } from '../engine/build/flags.js';
import { build, type BuildOptions } from '../engine/build/builder.js';
import { BuildCache } from '../engine/build/cache.js';
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

/** `--output type=oci,dest=DIR[,name=TAG]` or `oci:DIR:TAG`: an OCI layout to write into. */
export function outputOf(value: string): { layout: string; tag?: string } {
  if (isLayoutPlace(value)) {
    const place = parseLayoutPlace(value);
    return { layout: place.dir, ...(place.ref ? { tag: place.ref } : {}) };
  }
  const fields = Object.fromEntries(value.split(',').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
  if (fields.type !== 'oci' || !fields.dest) {
    throw new BerthError('USAGE', `--output ${JSON.stringify(value)}: write --output type=oci,dest=DIR[,name=TAG] or --output oci:DIR:TAG`);
  }
  return { layout: fields.dest, ...(fields.name ? { tag: fields.name } : {}) };
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
read CONTEXT minus what .dockerignore (.containerignore) excludes. RUN steps need the engine.

Options:
  -t, --tag NAME                 tag the image in the local store (repeatable)
  -f, --file FILE                the Dockerfile (default CONTEXT/Dockerfile or CONTEXT/Containerfile)
  --target STAGE                 build this stage and what it needs
  --build-arg NAME[=VALUE]       set an ARG (repeatable; NAME alone takes $NAME)
  --platform OS/ARCH[/VARIANT]   default: this machine
  --output type=oci,dest=DIR[,name=TAG] | oci:DIR:TAG   write into an OCI layout instead of the store
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
      root: one,
      quiet: { ...bool, short: 'q' },
    },
    async run(p) {
      needPositionals(p, 1, 1, commands.build!.usage);
      const contextDir = p.positionals[0]!;
      const root = str(p, 'root');
      const tags = strs(p, 'tag').map((t) => storeRefName(parseReference(t)));
      const outputOpt = str(p, 'output');
      const output = outputOpt !== undefined ? outputOf(outputOpt) : { layout: imageStorePath(root ? { root } : {}), ...(tags[0] ? { tag: tags[0] } : {}) };
      const quiet = flag(p, 'quiet') || p.json;
      const opts: BuildOptions = {
        contextDir,
        output,
        buildArgs: buildArgsOf(strs(p, 'build-arg')),
        secrets: secretsOf(strs(p, 'secret')),
        cache: buildCacheDir(root),
        noCache: flag(p, 'no-cache'),
        ...(str(p, 'file') !== undefined ? { dockerfile: str(p, 'file')! } : {}),
        ...(str(p, 'target') !== undefined ? { targetStage: str(p, 'target')! } : {}),
        ...(str(p, 'platform') !== undefined ? { platform: parsePlatform(str(p, 'platform')!) } : {}),
        ...(compressionOf(str(p, 'compression')) ? { compression: compressionOf(str(p, 'compression'))! } : {}),
        ...(epochOf(p) !== undefined ? { sourceDateEpoch: epochOf(p)! } : {}),
        ...(quiet ? {} : { log: (line: string) => process.stderr.write(`${line}\n`) }),
      };
      const result = await build(opts);
      // Further -t names point at the same manifest.
      if (outputOpt === undefined && tags.length > 1) {
        const layout = await OciLayout.open(output.layout);
        const desc = await layout.resolve(tags[0]!);
        for (const t of tags.slice(1)) await layout.tag(desc, t);
      }
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
