/**
 * Packing and unpacking archive files (oci-archive, docker-archive) through the system tar,
 * which streams from and to disk. Member names are checked before extraction so that a
 * hostile archive cannot write outside the temp directory.
 */
import { spawn } from 'node:child_process';
import { BerthError } from '../errors.js';

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

/** Extracts `file` into `dir`, refusing absolute names, `..` components and links. */
export async function extractArchive(file: string, dir: string): Promise<void> {
  const listing = await run(['-tvf', file], `reading ${file}`);
  for (const line of listing.split('\n')) {
    if (!line) continue;
    if (!/^[-d]/.test(line)) throw new BerthError('UNSAFE_PATH', `${file} holds a link or special file (${line.trim()}): refusing to unpack it`);
  }
  const names = await run(['-tf', file], `reading ${file}`);
  for (const name of names.split('\n')) {
    if (!name) continue;
    if (name.startsWith('/') || name.split('/').includes('..')) {
      throw new BerthError('UNSAFE_PATH', `${file} holds the unsafe member name ${JSON.stringify(name)}: refusing to unpack it`);
    }
  }
  await run(['-xf', file, '-C', dir, '--no-same-owner', '--no-same-permissions'], `unpacking ${file}`);
}

/** Writes the contents of `dir` (not the directory itself) as an uncompressed tar at `file`. */
export async function createArchive(dir: string, file: string): Promise<void> {
  await run(['-cf', file, '-C', dir, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '.'], `writing ${file}`);
}
