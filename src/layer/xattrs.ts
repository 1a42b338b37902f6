/**
 * Extended attributes of a whole tree. Node.js has no xattr API, so one `getfattr` process
 * (Debian package `attr`) dumps every attribute of the tree at once; spawning per file
 * would cost far more. Without getfattr, trees are archived without xattrs (the
 * `xattrsAvailable()` check lets callers and tests say so).
 */
import { spawn, spawnSync } from 'node:child_process';
import { BerthError } from '../base/errors.js';

/** Relative path ('/'-separated, no leading './') → attribute name → value. */
export type TreeXattrs = Map<string, Record<string, Buffer>>;

/**
 * Attributes that describe the host, not the file: SELinux labels are assigned by the
 * host's policy where the layer is unpacked (containerd and docker leave them out too).
 */
const HOST_ONLY = new Set(['security.selinux']);

let available: boolean | undefined;

export function xattrsAvailable(): boolean {
  if (available === undefined) {
    available = spawnSync('getfattr', ['--version'], { stdio: 'ignore' }).status === 0;
    if (!available) {
      // Said once, loudly: layers without security.capability break binaries such as ping.
      process.emitWarning('getfattr not found (Debian package "attr"): layers are created without extended attributes', {
        code: 'BERTH_NO_XATTRS',
      });
    }
  }
  return available;
}

/** Decodes getfattr's quoting: "\ooo" octal bytes and "\\" for a backslash. */
function unquote(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === 0x5c && i + 3 < raw.length && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else if (c === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else bytes.push(c);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses `getfattr -d -e hex` output. */
export function parseGetfattrDump(text: string): TreeXattrs {
  const result: TreeXattrs = new Map();
  let current: Record<string, Buffer> | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      let path = unquote(line.slice(8));
      if (path.startsWith('./')) path = path.slice(2);
      current = {};
      result.set(path, current);
      continue;
    }
    if (!current || line === '') continue;
    const eq = line.indexOf('=');
    const name = unquote(eq === -1 ? line : line.slice(0, eq));
    if (HOST_ONLY.has(name)) continue;
    const value = eq === -1 ? '' : line.slice(eq + 1);
    if (value.startsWith('0x')) current[name] = Buffer.from(value.slice(2), 'hex');
    else if (value.startsWith('"')) current[name] = Buffer.from(unquote(value.slice(1, -1)), 'utf8');
    else current[name] = Buffer.alloc(0);
  }
  for (const [path, attrs] of result) if (Object.keys(attrs).length === 0) result.delete(path);
  return result;
}

/** All xattrs under `root` (not following symlinks), keyed by relative path. */
export async function readTreeXattrs(root: string): Promise<TreeXattrs> {
  if (!xattrsAvailable()) return new Map();
  // -P: do not follow symlinked directories; -h: a symlink's own attributes; -m -: every namespace.
  const child = spawn('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const stderr = Buffer.concat(err).toString('utf8').trim();
  // getfattr exits 1 when some file has no readable attributes ("Operation not supported" on
  // filesystems without xattrs); only a failure with nothing on stdout is fatal.
  if (code !== 0 && out.length === 0 && stderr !== '') {
    throw new BerthError('LAYER_INVALID', `cannot read extended attributes under ${root}: ${stderr}`);
  }
  return parseGetfattrDump(Buffer.concat(out).toString('utf8'));
}
