/**
 * Drawing copy() progress events: on a terminal, one bar per active blob with bytes and rate
 * plus a total line, redrawn at most ten times a second; elsewhere, one plain line per event.
 */
import type { Descriptor } from '../base/types.js';
import type { ProgressEvent } from '../base/target.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function shortDigest(d: Descriptor): string {
  return d.digest.replace(/^(sha\d+):(.{12}).*$/, '$1:$2');
}

interface Active {
  desc: Descriptor;
  bytes: number;
  started: number;
}

export class ProgressPrinter {
  private readonly active = new Map<string, Active>();
  private drawnLines = 0;
  private lastDraw = 0;
  private readonly started = Date.now();
  private totalBytes = 0;
  private counts = { copied: 0, skipped: 0, mounted: 0 };

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly tty: boolean = out.isTTY === true,
  ) {}

  readonly handle = (e: ProgressEvent): void => {
    switch (e.type) {
      case 'start':
        this.active.set(e.desc.digest, { desc: e.desc, bytes: 0, started: Date.now() });
        if (!this.tty) this.line(`Copying ${shortDigest(e.desc)} (${formatBytes(e.desc.size)})`);
        break;
      case 'bytes': {
        const a = this.active.get(e.desc.digest);
        if (a) {
          this.totalBytes += e.bytes - a.bytes;
          a.bytes = e.bytes;
        }
        break;
      }
      case 'done': {
        const a = this.active.get(e.desc.digest);
        this.active.delete(e.desc.digest);
        if (a) {
          this.counts.copied++;
          this.totalBytes += e.desc.size - a.bytes;
        }
        this.line(`${a ? 'Copied' : 'Wrote'} ${shortDigest(e.desc)} ${formatBytes(e.desc.size)}${a ? ` in ${((Date.now() - a.started) / 1000).toFixed(1)}s` : ''}`);
        break;
      }
      case 'skipped':
        this.counts.skipped++;
        this.line(`Exists ${shortDigest(e.desc)} (skipped)`);
        break;
      case 'mounted':
        this.counts.mounted++;
        this.line(`Mounted ${shortDigest(e.desc)} from ${e.from}`);
        break;
      case 'error':
        this.active.delete(e.desc.digest);
        this.line(`Failed ${shortDigest(e.desc)}: ${e.error.message}`);
        break;
    }
    if (this.tty) this.draw(e.type !== 'bytes');
  };

  /** A permanent line (above the bars on a terminal). */
  private line(text: string): void {
    if (this.tty) this.clear();
    this.out.write(text + '\n');
  }

  private clear(): void {
    if (this.drawnLines > 0) this.out.write(`\x1b[${this.drawnLines}A\x1b[J`);
    this.drawnLines = 0;
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.clear();
    const width = Math.max(10, Math.min(30, (this.out.columns ?? 80) - 60));
    const lines: string[] = [];
    for (const a of this.active.values()) {
      const frac = a.desc.size ? Math.min(1, a.bytes / a.desc.size) : 1;
      const filled = Math.round(frac * width);
      const rate = a.bytes / Math.max(0.001, (now - a.started) / 1000);
      lines.push(
        `${shortDigest(a.desc)} [${'='.repeat(filled)}${filled < width ? '>' : ''}${' '.repeat(Math.max(0, width - filled - 1))}] ${formatBytes(a.bytes)}/${formatBytes(a.desc.size)} ${formatBytes(rate)}/s`,
      );
    }
    if (lines.length) {
      const elapsed = Math.max(0.001, (now - this.started) / 1000);
      lines.push(`Total ${formatBytes(this.totalBytes)} ${formatBytes(this.totalBytes / elapsed)}/s`);
      this.out.write(lines.join('\n') + '\n');
      this.drawnLines = lines.length;
    }
  }

  /** The closing summary line. */
  finish(): string {
    if (this.tty) this.clear();
    const secs = (Date.now() - this.started) / 1000;
    return `${this.counts.copied} blobs copied (${formatBytes(this.totalBytes)} in ${secs.toFixed(1)}s, ${formatBytes(this.totalBytes / Math.max(secs, 0.001))}/s), ${this.counts.skipped} skipped, ${this.counts.mounted} mounted`;
  }
}
