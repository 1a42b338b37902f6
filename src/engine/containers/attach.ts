/**
 * `berth attach` and `berth start -a`: a client of the attach socket the monitor of a detached
 * container serves (native/monitor-attach.h has the frames). Output frames go to our stdout and
 * stderr; our stdin (when attached) goes to the container's; with a terminal, ours is raw, its
 * size follows ours, and the detach keys (docker's ctrl-p ctrl-q) leave the container running.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { BerthError } from '../../base/errors.js';

/** Beside the console sockets: unix socket paths are limited to 107 bytes, BERTH_ROOT is not. */
const SOCKET_DIR = '/run/berth';

export function attachSocketPath(id: string): string {
  mkdirSync(SOCKET_DIR, { recursive: true, mode: 0o700 });
  return join(SOCKET_DIR, `${id}.attach`);
}

/** The signals an attached client (and a foreground run) passes to the container (docker's --sig-proxy). */
export const PROXIED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

const STDIN = 0, RESIZE = 1, STDIN_END = 2;
const OUT = 1, ERR = 2, EXIT = 3;

export interface AttachOptions {
  /** Our stdin to the container's (docker: unless --no-stdin, and only when it was made with -i). */
  stdin: boolean;
  /** The container has a terminal: raw input, window size, detach keys. */
  tty: boolean;
  /** --sig-proxy (not with a terminal, whose ctrl-c is the container's): signals go to `signal`. */
  sigProxy: boolean;
  /** The key sequence that detaches, as --detach-keys (default ctrl-p,ctrl-q). */
  detachKeys?: string;
  signal(sig: NodeJS.Signals): void;
  /** The container's status when the monitor went without telling it. */
  exitCode(): number;
}

/** docker's --detach-keys: comma-separated, each `ctrl-X` (X in a-z, @, [, \, ], ^, _) or one character. */
export function parseDetachKeys(spec: string): number[] {
  return spec.split(',').map((k) => {
    const m = /^ctrl-([a-z@[\\\]^_])$/.exec(k);
    if (m) return m[1]!.toUpperCase().charCodeAt(0) & 0x1f;
    if (k.length === 1) return k.charCodeAt(0);
    throw new BerthError('USAGE', `--detach-keys ${spec}: use keys such as ctrl-p,ctrl-q (ctrl-a…ctrl-z, ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or single characters)`);
  });
}

function frame(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

function connectTo(path: string, name: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
        ? new BerthError('CONTAINER_STATE', `cannot attach to container ${name}: it is not running; start it first (berth start -a ${name})`)
        : err);
    });
  });
}

/**
 * Passes the container's output and our input until it exits (its status is returned) or the
 * detach keys are typed (0; the container keeps running).
 */
export async function attachTo(id: string, name: string, opts: AttachOptions): Promise<number> {
  const sock = await connectTo(join(SOCKET_DIR, `${id}.attach`), name);
  const stdin = process.stdin;
  const raw = opts.tty && opts.stdin && stdin.isTTY === true;
  if (raw) {
    // Node's raw mode keeps output post-processing (ONLCR): the container's pty already turned
    // each \n into \r\n, ours must pass bytes as they are (docker's raw mode, cfmakeraw).
    // setRawMode(false) restores the whole saved mode.
    stdin.setRawMode(true);
    spawnSync('stty', ['-opost'], { stdio: ['inherit', 'ignore', 'ignore'] });
  }
  const sendSize = () => {
    const size = Buffer.alloc(4);
    size.writeUInt16BE(process.stdout.rows ?? 24, 0);
    size.writeUInt16BE(process.stdout.columns ?? 80, 2);
    sock.write(frame(RESIZE, size));
  };
  if (opts.tty && process.stdout.isTTY) {
    sendSize();
    process.stdout.on('resize', sendSize);
  }
  const sigs = PROXIED_SIGNALS;
  const proxy = (sig: NodeJS.Signals) => opts.signal(sig);
  const proxying = opts.sigProxy && !opts.tty;
  if (proxying) for (const s of sigs) process.on(s, proxy);

  const keys = opts.tty ? parseDetachKeys(opts.detachKeys ?? 'ctrl-p,ctrl-q') : [];
  let matched = 0;
  let detached = false;
  const onInput = (chunk: Buffer) => {
    if (!keys.length) { sock.write(frame(STDIN, chunk)); return; }
    // The escape sequence is held back while it is being typed, then dropped or passed on.
    const out: number[] = [];
    for (const b of chunk) {
      if (b === keys[matched]) {
        if (++matched === keys.length) { detached = true; break; }
        continue;
      }
      out.push(...keys.slice(0, matched));
      matched = 0;
      if (b === keys[0]) matched = 1; else out.push(b);
    }
    if (out.length) sock.write(frame(STDIN, Buffer.from(out)));
    if (detached) sock.end();
  };
  const onEnd = () => { if (!sock.destroyed) sock.write(frame(STDIN_END, Buffer.alloc(0))); };
  if (opts.stdin) {
    stdin.on('data', onInput);
    stdin.on('end', onEnd);
    stdin.resume();
  }

  let code: number | undefined;
  let pending: Buffer = Buffer.alloc(0);
  sock.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 8) {
      const n = pending.readUInt32BE(4);
      if (pending.length < 8 + n) break;
      const type = pending[0];
      const data = pending.subarray(8, 8 + n);
      pending = pending.subarray(8 + n);
      if (type === OUT) process.stdout.write(data);
      else if (type === ERR) process.stderr.write(data);
      else if (type === EXIT) code = Number(data.toString());
    }
  });
  try {
    await new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.once('error', () => resolve());
    });
  } finally {
    if (raw) stdin.setRawMode(false);
    stdin.off('data', onInput);
    stdin.off('end', onEnd);
    stdin.pause();
    process.stdout.off('resize', sendSize);
    if (proxying) for (const s of sigs) process.off(s, proxy);
  }
  if (detached) return 0;
  return code ?? opts.exitCode();
}
