/**
 * A busybox root filesystem for tests, from Debian's busybox-static (/bin/busybox): the binary,
 * one symlink per applet in /bin, /etc/passwd and /etc/group, and the usual empty directories.
 * Builds in milliseconds, needs no network.
 */
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

export interface BusyboxUser {
  name: string;
  uid: number;
  gid: number;
  home?: string;
  /** Supplementary groups: [name, gid] pairs added to /etc/group with the user as member. */
  groups?: [string, number][];
}

let applets: string[] | undefined;
function busyboxApplets(): string[] {
  applets ??= execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => /^[a-z0-9_.[-]+$/.test(s) && s !== 'busybox');
  return applets;
}

/** Writes a busybox rootfs into `dir` (created if needed) and returns `dir`. */
export async function buildBusyboxRootfs(dir: string, opts: { users?: BusyboxUser[] } = {}): Promise<string> {
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'root', 'home', 'var', 'usr/bin']) await mkdir(join(dir, d), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await chmod(join(dir, 'tmp'), 0o1777);
  await copyFile(BUSYBOX, join(dir, 'bin', 'busybox'));
  await chmod(join(dir, 'bin', 'busybox'), 0o755);
  for (const applet of busyboxApplets()) await symlink('busybox', join(dir, 'bin', applet));
  const users = opts.users ?? [];
  const passwd = [
    'root:x:0:0:root:/root:/bin/sh',
    ...users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home ?? `/home/${u.name}`}:/bin/sh`),
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  ];
  const groups = new Map<string, { gid: number; members: string[] }>([
    ['root', { gid: 0, members: [] }],
    ['nogroup', { gid: 65534, members: [] }],
  ]);
  for (const u of users) {
    if (![...groups.values()].some((g) => g.gid === u.gid)) groups.set(u.name, { gid: u.gid, members: [] });
    for (const [name, gid] of u.groups ?? []) {
      const g = groups.get(name) ?? { gid, members: [] };
      g.members.push(u.name);
      groups.set(name, g);
    }
  }
  await writeFile(join(dir, 'etc', 'passwd'), passwd.join('\n') + '\n');
  await writeFile(join(dir, 'etc', 'group'), [...groups].map(([n, g]) => `${n}:x:${g.gid}:${g.members.join(',')}`).join('\n') + '\n');
  for (const u of users) await mkdir(join(dir, (u.home ?? `/home/${u.name}`).slice(1)), { recursive: true });
  return dir;
}
