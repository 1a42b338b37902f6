/** One access-log line per request, text or JSON, written in batches to keep the hot path cheap. */
import type { LogFormat } from './config.js';

export interface AccessEntry {
  time: number;
  remote: string | undefined;
  method: string;
  path: string;
  status: number;
  bytes: number;
  ms: number;
  user?: string;
  route: string;
}

export class AccessLog {
  private pending: string[] = [];
  private scheduled = false;

  constructor(
    private readonly format: LogFormat,
    private readonly out: NodeJS.WritableStream = process.stderr,
  ) {}

  write(e: AccessEntry): void {
    if (this.format === 'off') return;
    const line =
      this.format === 'json'
        ? JSON.stringify({ time: new Date(e.time).toISOString(), remote: e.remote, method: e.method, path: e.path, status: e.status, bytes: e.bytes, ms: Math.round(e.ms * 1000) / 1000, user: e.user, route: e.route })
        : `${new Date(e.time).toISOString()} ${e.remote ?? '-'} ${e.user ?? '-'} "${e.method} ${e.path}" ${e.status} ${e.bytes} ${e.ms.toFixed(1)}ms`;
    this.pending.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Other messages (start, shutdown), in the same format. */
  info(message: string, fields: Record<string, unknown> = {}): void {
    if (this.format === 'json') this.pending.push(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: message, ...fields }));
    else this.pending.push(`${new Date().toISOString()} ${message}${Object.keys(fields).length ? ' ' + JSON.stringify(fields) : ''}`);
    this.flush();
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    this.out.write(text);
  }
}
