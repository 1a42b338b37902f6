/**
 * The installed berth package: where it lies, and its version. package.json's "version" is the
 * only place the version is written; `berth --version`, `berth-runtime --version` and the
 * registry client's User-Agent all read it from here, once per process, at first use.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError } from './errors.js';

let root: string | undefined;
let version: string | undefined;

/** The package root: works from dist/src/<folder> (tsc) and from dist/ (the esbuild bundles). */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native'))) return (root = dir);
    dir = dirname(dir);
  }
  throw new BerthError('INTERNAL', 'cannot find the berth package root (native/ next to package.json): reinstall berth');
}

/** berth's version, from package.json. */
export function berthVersion(): string {
  if (version !== undefined) return version;
  const file = join(packageRoot(), 'package.json');
  const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
  if (typeof v !== 'string' || v === '') throw new BerthError('INTERNAL', `${file} has no "version": reinstall berth`);
  return (version = v);
}

/** The User-Agent berth sends to registries and token servers. */
export function userAgent(): string {
  return `berth/${berthVersion()}`;
}

/** A helper program of native/ (built by `make -C native`, which npm install runs). */
export function nativeBinary(name: 'berth-init' | 'berth-runtime' | 'berth-xattr' | 'berth-monitor' | 'berth-reaper' | 'berth-dns' | 'berth-net' | 'berth-mount'): string {
  const path = join(packageRoot(), 'native', 'build', name);
  if (!existsSync(path)) throw new BerthError('INTERNAL', `${path} is missing: build it with \`make -C native\` (npm install runs it)`);
  return path;
}
