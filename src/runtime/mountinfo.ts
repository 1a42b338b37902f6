/**
 * /proc/<pid>/mountinfo (proc(5)): one line per mount,
 * "id parent maj:min root mountpoint options [optional…] - fstype source superoptions".
 * The one parser of it in berth (cgroup hierarchies, mount options in tests).
 */
import { readFileSync } from 'node:fs';

export interface MountinfoEntry {
  id: number;
  parent: number;
  /** The path inside the filesystem that is mounted (a bind mount's source). */
  root: string;
  mountPoint: string;
  /** Per-mount options: ro/rw, nosuid, nodev, noexec, relatime… */
  options: string[];
  fsType: string;
  source: string;
  /** Per-superblock options (for cgroup v1: the controllers). */
  superOptions: string[];
}

/** Parses the text of a mountinfo file; lines that are not mount records are skipped. */
export function parseMountinfo(text: string): MountinfoEntry[] {
  const out: MountinfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) continue;
    out.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      root: unescapeMountinfo(fields[3]!),
      mountPoint: unescapeMountinfo(fields[4]!),
      options: fields[5]!.split(','),
      fsType: fields[sep + 1]!,
      source: unescapeMountinfo(fields[sep + 2]!),
      superOptions: fields[sep + 3]!.split(','),
    });
  }
  return out;
}

/** The kernel writes space, tab, newline and backslash in paths as octal escapes (\040…). */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

let self: MountinfoEntry[] | undefined;

/** This process's mounts, read once per process. */
export function selfMounts(): MountinfoEntry[] {
  self ??= parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  return self;
}
