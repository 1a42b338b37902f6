/**
 * A small Debian root filesystem made from this host's installed packages (no network): the
 * files dpkg lists for a few essential packages (shell, coreutils, tar, sed, grep, perl-base…),
 * placed at their merged-/usr paths, with /bin, /lib, /lib64 and /sbin as symlinks into /usr,
 * /etc/passwd and /etc/group from base-passwd, and the usual empty directories.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const DEBIAN_PACKAGES = [
  'base-files', 'base-passwd', 'bash', 'coreutils', 'dash', 'debianutils', 'diffutils', 'findutils', 'grep', 'gzip', 'hostname',
  'sed', 'tar', 'mawk', 'perl-base', 'ncurses-base', 'libc6', 'libc-bin', 'libacl1', 'libattr1', 'libselinux1', 'libpcre2-8-0',
  'libgmp10', 'libtinfo6', 'libcrypt1', 'zlib1g', 'libbz2-1.0', 'liblzma5', 'libzstd1',
];

/** The package's files as they exist on this host (merged /usr: /bin/x → /usr/bin/x). */
function filesOf(pkg: string): string[] {
  const out: string[] = [];
  for (const p of execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8' }).split('\n')) {
    if (!p.startsWith('/') || p === '/.') continue;
    let real: string;
    try {
      real = join(realpathSync(dirname(p)), basename(p));
      const st = lstatSync(real);
      if (st.isDirectory()) continue; // directories come with their files (tar creates the parents)
    } catch {
      continue; // listed but removed (docs excluded by dpkg, diversions)
    }
    out.push(real.slice(1));
  }
  return out;
}

/** Writes the root filesystem into `dir` and returns its size in bytes (files only). */
export function buildDebianRootfs(dir: string): number {
  mkdirSync(dir, { recursive: true });
  const files = new Set<string>();
  for (const pkg of DEBIAN_PACKAGES) if (spawnSync('dpkg', ['-s', pkg], { stdio: 'ignore' }).status === 0) for (const f of filesOf(pkg)) files.add(f);
  const list = join(dir, '..', 'debian-files.txt');
  writeFileSync(list, [...files].join('\n') + '\n');
  const r = spawnSync('sh', ['-c', `tar -C / -cf - --no-recursion -T '${list}' | tar -C '${dir}' -xf -`], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error('copying the Debian files failed');
  for (const [link, target] of [['bin', 'usr/bin'], ['lib', 'usr/lib'], ['lib64', 'usr/lib64'], ['sbin', 'usr/sbin']]) {
    mkdirSync(join(dir, target!), { recursive: true });
    if (!existsSync(join(dir, link!))) symlinkSync(target!, join(dir, link!));
  }
  for (const d of ['etc', 'proc', 'sys', 'dev', 'root', 'home', 'var/tmp', 'var/lib', 'run', 'usr/local/bin', 'opt']) mkdirSync(join(dir, d), { recursive: true });
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync('/usr/share/base-passwd/passwd.master', join(dir, 'etc/passwd'));
  copyFileSync('/usr/share/base-passwd/group.master', join(dir, 'etc/group'));
  const size = Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  return size;
}
