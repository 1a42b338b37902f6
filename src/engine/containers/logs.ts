/** Reading docker's json-file logs the monitor writes (LOG.1, then LOG), with --tail, --since, --until and -f. */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface LogEntry { log: string; stream: 'stdout' | 'stderr'; time: string }

export interface LogOptions {
  tail?: number;
  /** Only entries at or after this time (ms since the epoch). */
  since?: number;
  /** Only entries at or before this time (ms since the epoch); -f ends once it has passed. */
  until?: number;
  follow?: boolean;
  /** -f stops once this returns true and the file has been read to its end. */
  stopped?: () => boolean;
}

function parseLines(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch { /* a torn last line */ }
  }
  return out;
}

function readFrom(path: string, offset: number): { text: string; size: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { text: '', size: 0 };
  }
  try {
    const size = statSync(path).size;
    if (size <= offset) return { text: '', size };
    const buf = Buffer.alloc(size - offset);
    let n = 0;
    while (n < buf.length) {
      const r = readSync(fd, buf, n, buf.length - n, offset + n);
      if (r <= 0) break;
      n += r;
    }
    // Only whole lines: the rest is read next time.
    const end = buf.lastIndexOf(0x0a, n - 1) + 1;
    return { text: buf.toString('utf8', 0, end), size: offset + end };
  } finally {
    closeSync(fd);
  }
}

/** `since` (and `until`, named by `flag`): RFC 3339, a Unix time in seconds, or a duration such as 10m, 1h30m (that long ago). */
export function parseSince(v: string, now = Date.now(), flag = '--since'): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(v);
  if (d && v !== '') return now - ((Number(d[1] ?? 0) * 60 + Number(d[2] ?? 0)) * 60 + Number(d[3] ?? 0)) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`${flag} ${v}: give a time (RFC 3339 or Unix seconds) or a duration such as 10m`);
  return t;
}

export async function readLogs(path: string, opts: LogOptions, emit: (e: LogEntry) => void): Promise<void> {
  const keep = (e: LogEntry) => (opts.since === undefined || Date.parse(e.time) >= opts.since) && (opts.until === undefined || Date.parse(e.time) <= opts.until);
  let entries = [...parseLines(readFrom(`${path}.1`, 0).text)];
  const first = readFrom(path, 0);
  entries.push(...parseLines(first.text));
  entries = entries.filter(keep);
  if (opts.tail !== undefined && opts.tail >= 0) entries = entries.slice(Math.max(0, entries.length - opts.tail));
  for (const e of entries) emit(e);
  if (!opts.follow) return;
  let offset = first.size;
  for (;;) {
    const done = (opts.stopped?.() ?? false) || (opts.until !== undefined && Date.now() > opts.until);
    const next = readFrom(path, offset);
    if (next.size < offset) { offset = 0; continue; } // rotated: start the new file
    offset = next.size;
    for (const e of parseLines(next.text)) if (keep(e)) emit(e);
    if (done) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
