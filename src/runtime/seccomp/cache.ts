/**
 * Compiled seccomp filters kept under the runtime's root (ROOT/seccomp-cache): engines give
 * every container the same default profile, and compiling podman's (~400 syscalls, three
 * architectures) had cost each create ~20 ms of its ~80. An entry holds the exact seccomp
 * section it was compiled from, and is used only by the same build of berth-runtime on the
 * same architecture; the file name is just a fast hash of those. Only the bundled CLI has a
 * build id (scripts/bundle.mjs); without one nothing is cached. The directory is 0700 inside
 * the runtime's root: whoever can write there can already rewrite any container's state.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { BPF_MAXINSNS } from './bpf.js';
import { compileSeccomp, type CompiledSeccomp } from './compile.js';
import type { LinuxSeccomp } from '../spec/types.js';
import { writeAtomic } from '../state.js';

declare const BERTH_BUILD_ID: string | undefined;
/** Set by esbuild for the bundled CLIs: a hash of the compiled sources. */
const BUNDLE_BUILD_ID = typeof BERTH_BUILD_ID === 'string' ? BERTH_BUILD_ID : undefined;

/** Entries kept; the oldest go when a new one would exceed this. */
const MAX_ENTRIES = 32;

interface Entry {
  build: string;
  arch: string;
  input: string;
  flags: number;
  listenerPath?: string;
  unknownSyscalls?: string[];
  /** base64 of struct sock_filter[] */
  filter: string;
}

/** FNV-1a over the UTF-16 code units, 2 × 32 bits with different seeds: a file name, not a proof. */
function nameHash(s: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x9e3779b9;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193 ^ 0x5bd1e995);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

/** compileSeccomp, through the cache in `dir` (none when `dir` or the build id is missing). */
export function compileSeccompCached(seccomp: LinuxSeccomp, dir: string | undefined, build: string | undefined = BUNDLE_BUILD_ID): CompiledSeccomp & { cached?: boolean } {
  if (!dir || !build) return compileSeccomp(seccomp);
  const input = JSON.stringify(seccomp);
  const file = join(dir, `${nameHash(`${build}\0${process.arch}\0${input}`)}.json`);
  const hit = readEntry(file, build, input);
  if (hit) return { ...hit, cached: true };
  const compiled = compileSeccomp(seccomp);
  try {
    writeEntry(dir, file, {
      build, arch: process.arch, input, flags: compiled.flags, filter: compiled.filter.toString('base64'),
      ...(compiled.listenerPath ? { listenerPath: compiled.listenerPath } : {}),
      ...(compiled.unknownSyscalls ? { unknownSyscalls: compiled.unknownSyscalls } : {}),
    });
  } catch {
    /* a cache that cannot be written only means compiling next time too */
  }
  return compiled;
}

/** The entry in `file` if it is whole and was made from exactly `input` by this build here. */
function readEntry(file: string, build: string, input: string): CompiledSeccomp | undefined {
  let e: Entry;
  try {
    e = JSON.parse(readFileSync(file, 'utf8')) as Entry;
  } catch {
    return undefined; // none, or torn
  }
  if (e?.build !== build || e.arch !== process.arch || e.input !== input || typeof e.filter !== 'string' || !Number.isInteger(e.flags)) return undefined;
  const filter = Buffer.from(e.filter, 'base64');
  if (filter.length === 0 || filter.length % 8 !== 0 || filter.length > BPF_MAXINSNS * 8) return undefined;
  return {
    filter, flags: e.flags,
    ...(e.listenerPath ? { listenerPath: e.listenerPath } : {}),
    ...(Array.isArray(e.unknownSyscalls) ? { unknownSyscalls: e.unknownSyscalls } : {}),
  };
}

function writeEntry(dir: string, file: string, e: Entry): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Not fsynced: the cache only saves work, and an entry torn by a crash is ignored.
  writeAtomic(file, JSON.stringify(e), 0o600, false);
  const names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  if (names.length <= MAX_ENTRIES) return;
  const byAge = names
    .map((n) => {
      try {
        return { n, t: statSync(join(dir, n)).mtimeMs };
      } catch {
        return { n, t: 0 };
      }
    })
    .sort((x, y) => x.t - y.t);
  for (const { n } of byAge.slice(0, names.length - MAX_ENTRIES)) {
    try { unlinkSync(join(dir, n)); } catch { /* gone */ }
  }
}
