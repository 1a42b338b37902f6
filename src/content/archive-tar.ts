/**
 * Packing and unpacking archive files (oci-archive, docker-archive) through the system tar,
 * which streams from and to disk. Member names are checked before extraction so that a
 * hostile archive cannot write outside the temp directory.
 */
import { spawn } from 'node:child_process';
import { BerthError } from '../base/errors.js';

function run(args: string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('tar', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new BerthError('UNSUPPORTED', `${what}: cannot run tar (${e.message}); install GNU tar`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new BerthError('LAYOUT_INVALID', `${what}: tar exited ${code}: ${err.trim()}`))));
  });
}

function unsafeName(name: string): boolean {
  return name.startsWith('/') || name.split('/').includes('..');
}

/** A link target, relative to the link's directory, that stays inside the archive. */
function safeLinkTarget(name: string, target: string, hard: boolean): boolean {
  if (target.startsWith('/')) return false;
  const base = hard ? [] : name.split('/').slice(0, -1);
  for (const part of target.split('/')) {
    if (part === '..') {
      if (base.length === 0) return false;
      base.pop();
    } else if (part !== '.' && part !== '') base.push(part);
  }
  return true;
}

/**
 * Extracts `file` into `dir`, refusing absolute names, `..` components, special files and
 * links that point outside the archive (docker archives hold relative symlinks to layer tars).
 */
export async function extractArchive(file: string, dir: string): Promise<void> {
  const names = (await run(['-tf', file], `reading ${file}`)).split('\n').filter(Boolean);
  const lines = (await run(['-tvf', file], `reading ${file}`)).split('\n').filter(Boolean);
  if (names.length !== lines.length) throw new BerthError('UNSAFE_PATH', `${file}: cannot list its members reliably: refusing to unpack it`);
  names.forEach((name, i) => {
    const line = lines[i]!;
    if (unsafeName(name)) throw new BerthError('UNSAFE_PATH', `${file} holds the unsafe member name ${JSON.stringify(name)}: refusing to unpack it`);
    const kind = line[0];
    if (kind === '-' || kind === 'd') return;
    if (kind === 'l' || kind === 'h') {
      const marker = kind === 'l' ? `${name} -> ` : `${name} link to `;
      const at = line.indexOf(marker);
      const target = at < 0 ? undefined : line.slice(at + marker.length);
      if (target !== undefined && safeLinkTarget(name, target, kind === 'h')) return;
    }
    throw new BerthError('UNSAFE_PATH', `${file} holds a link or special file that is not safe to unpack (${line.trim()}): refusing it`);
  });
  await run(['-xf', file, '-C', dir, '--no-same-owner', '--no-same-permissions'], `unpacking ${file}`);
}

/** Writes the contents of `dir` (not the directory itself) as an uncompressed tar at `file`. */
export async function createArchive(dir: string, file: string): Promise<void> {
  await run(['-cf', file, '-C', dir, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '.'], `writing ${file}`);
}
