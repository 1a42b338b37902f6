/**
 * Blob bodies over HTTP/1.1 (plain or TLS) without node:http's per-chunk costs. node:http allocates a
 * 64 KiB buffer per socket read and its parser copies every body chunk into another one; on a
 * 192 MB pull that was ~40% of berth's main-thread time. Here the socket (or the TLS socket,
 * which decrypts into the same buffers) reads straight into
 * 1 MiB slabs (net.Socket `onread`), and the body is handed on as views of them, contiguous
 * reads coalesced, with no copy. Slabs come from base/slab-pool.ts: a consumer that owns the
 * body's chunks releases them once used, and their slab is reused.
 *
 * Deliberately narrow: a GET over HTTP or HTTPS whose answer is 200 or 206 with a
 * Content-Length body. Anything else (redirects, auth challenges, errors, chunked or
 * close-delimited bodies) returns undefined before any body byte is used, and the caller sends
 * the request through HttpClient, which handles all of it.
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import { SLAB_BYTES, takeSlab } from '../base/slab-pool.js';
import { lazyRequire } from '../base/lazy-require.js';
import type * as TlsModule from 'node:tls';

export interface RawBody {
  status: number;
  headers: Record<string, string>;
  /** Exactly Content-Length bytes; fails with ECONNRESET/ETIMEDOUT if the connection breaks first. */
  body: Readable;
}

export interface RawGetOptions {
  headers: Record<string, string>;
  /** Idle timeout of the socket in ms. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** For https: URLs: verify the server's certificate (default true; false for insecure registries). */
  rejectUnauthorized?: boolean;
  /** For https: URLs: the CAs and client certificate (trust.ts; default: Node's). */
  secureContext?: TlsModule.SecureContext;
  /** Told the status of an answer this reader leaves to the caller (a redirect, a challenge, an error). */
  onRefused?: (status: number) => void;
  /** Connections kept open between GETs (a RegistryClient's); without one, every GET has its own. */
  pool?: RawConnectionPool;
}

/** node:tls loads only for an HTTPS registry. */
const tls = lazyRequire<typeof TlsModule>('node:tls');

/** A slab with less room than this is retired: socket reads on loopback are mostly 32-64 KiB. */
const MIN_READ_ROOM = 64 << 10;
/** Contiguous reads are handed on together once this many bytes have gathered. */
const HAND_ON_BYTES = 256 << 10;
const MAX_HEAD_BYTES = 64 << 10;

/** How long an idle connection is kept for the next GET, and how many per origin. */
const IDLE_MS = 15_000;
const MAX_IDLE_PER_ORIGIN = 8;
/** Where an idle connection's reads land: nothing should arrive there. */
const IDLE_BUFFER = Buffer.alloc(1024);

/** What a connection does with what it reads: the current request's, or nothing while idle. */
interface Reader {
  buffer(): Uint8Array;
  /** `n` bytes arrived in `buf`: the last buffer() gave, or (first read after idling) the idle buffer. */
  read(n: number, buf: Uint8Array): boolean;
  failed(err: Error): void;
  closed(): void;
}

/** One connection, used by one GET after another (HTTP/1.1 keep-alive, no pipelining). */
class RawConnection {
  reader: Reader | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  readonly socket: net.Socket;

  constructor(readonly key: string, url: URL, opts: RawGetOptions, onReady: () => void, first: Reader) {
    // Set before the socket exists: it asks for its first read buffer as it is created.
    this.reader = first;
    const secure = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const connectOptions = {
      host,
      port: Number(url.port || (secure ? 443 : 80)),
      onread: {
        buffer: () => (this.reader ? this.reader.buffer() : IDLE_BUFFER),
        // Bytes while idle break the protocol: the connection goes.
        callback: (n: number, buf: Uint8Array) => (this.reader ? this.reader.read(n, buf) : (this.socket.destroy(), false)),
      },
    };
    this.socket = secure
      ? tls().connect({ ...connectOptions, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: opts.rejectUnauthorized ?? true, ...(opts.secureContext ? { secureContext: opts.secureContext } : {}), ALPNProtocols: ['http/1.1'] })
      : net.connect(connectOptions);
    this.socket.setNoDelay(true);
    this.socket.once(secure ? 'secureConnect' : 'connect', onReady);
    this.socket.on('error', (err) => this.reader?.failed(err));
    this.socket.on('timeout', () => this.reader?.failed(Object.assign(new Error(`no data from ${url.host} for ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    this.socket.on('close', () => {
      opts.pool?.forget(this);
      this.reader?.closed();
    });
  }
}

/**
 * Connections kept between GETs to one origin (one pool per RegistryClient): a pull of many
 * blobs from a registry that serves them itself then pays one TCP and TLS handshake per
 * connection, not per blob. Idle connections do not keep the process alive.
 */
export class RawConnectionPool {
  private readonly idle = new Map<string, RawConnection[]>();
  private closed = false;

  /** An idle connection to `key`'s origin, if one is open. */
  take(key: string): RawConnection | undefined {
    const c = this.idle.get(key)?.pop();
    if (!c) return undefined;
    clearTimeout(c.idleTimer);
    c.socket.ref();
    return c;
  }

  /** Keeps a connection whose last answer is fully read, for the next GET. */
  release(c: RawConnection): void {
    const list = this.idle.get(c.key) ?? [];
    if (this.closed || c.socket.destroyed || list.length >= MAX_IDLE_PER_ORIGIN) {
      c.socket.destroy();
      return;
    }
    c.socket.setTimeout(0);
    c.socket.unref();
    c.idleTimer = setTimeout(() => c.socket.destroy(), IDLE_MS).unref();
    list.push(c);
    this.idle.set(c.key, list);
  }

  /** A connection that closed: out of the pool. */
  forget(c: RawConnection): void {
    clearTimeout(c.idleTimer);
    const list = this.idle.get(c.key);
    const i = list?.indexOf(c) ?? -1;
    if (i >= 0) list!.splice(i, 1);
  }

  /** Closes every idle connection; later ones are closed when their GET ends. */
  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.socket.destroy();
    this.idle.clear();
  }
}

/** `GET url`; undefined when the answer is not a plain 200/206 body (see above). */
export async function rawGet(url: URL, opts: RawGetOptions): Promise<RawBody | undefined> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  // A header with CR or LF (say, a token from a hostile token server) would split the request:
  // leave it to HttpClient, which refuses it with a clear error.
  if (Object.entries(opts.headers).some(([k, v]) => /[\r\n]/.test(k) || /[\r\n]/.test(v))) return undefined;
  const key = `${url.protocol}//${url.host} ${opts.rejectUnauthorized ?? true}`;
  const idle = opts.pool?.take(key);
  if (idle) {
    try {
      return await request(url, opts, key, idle);
    } catch (err) {
      // The server closed the idle connection as the request went out: a fresh one.
      if (!(err as { stale?: boolean }).stale) throw err;
    }
  }
  return request(url, opts, key, undefined);
}

function request(url: URL, opts: RawGetOptions, key: string, reused: RawConnection | undefined): Promise<RawBody | undefined> {
  return new Promise((resolve, reject) => {
    let slab = takeSlab();
    let used = 0;
    /** Start in `slab` of the bytes read but not yet handed on. */
    let pendingStart = 0;
    let head: Buffer | undefined = Buffer.alloc(0);
    let body: Readable | undefined;
    let remaining = 0;
    let settled = false;
    /** The body is complete or the answer was refused: this request reads no more. */
    let finished = false;
    /** Whether the server answered anything on this connection for this request. */
    let answered = false;
    let keepAlive = false;

    /** The request is over: its slab and the connection go their ways. */
    const end = (connectionKept: boolean) => {
      finished = true;
      if (connection.reader === reader) connection.reader = undefined;
      slab.retire();
      signal?.removeEventListener('abort', onAbort);
      if (connectionKept && opts.pool) opts.pool.release(connection);
      else connection.socket.destroy();
    };

    const fail = (err: Error) => {
      if (finished) return;
      end(false);
      if (!settled) {
        settled = true;
        reject(reused && !answered ? Object.assign(err, { stale: true }) : err);
      } else body?.destroy(err);
    };

    /** Hands on what has gathered in the slab since the last hand-on; false asks the socket to pause. */
    const handOn = (): boolean => {
      if (used === pendingStart || !body) return true;
      const chunk = slab.handOn(pendingStart, used);
      pendingStart = used;
      return body.push(chunk);
    };

    const onBodyBytes = (n: number): boolean => {
      const take = Math.min(n, remaining);
      used += take;
      remaining -= take;
      if (remaining === 0) {
        handOn();
        body!.push(null);
        // Bytes past the body (nothing was pipelined) mean the connection cannot be trusted.
        const kept = keepAlive && take === n;
        end(kept);
        return kept;
      }
      let more = true;
      if (used - pendingStart >= HAND_ON_BYTES || SLAB_BYTES - used < MIN_READ_ROOM) more = handOn();
      return more;
    };

    const onHeadBytes = (n: number): boolean => {
      head = Buffer.concat([head!, slab.bytes.subarray(used, used + n)]);
      const headEnd = head.indexOf('\r\n\r\n');
      if (headEnd < 0) {
        if (head.length > MAX_HEAD_BYTES) fail(new Error(`response head larger than ${MAX_HEAD_BYTES} bytes from ${url.host}`));
        return true;
      }
      const parsed = parseHead(head.subarray(0, headEnd).toString('latin1'));
      const rest = head.subarray(headEnd + 4);
      head = undefined;
      const length = Number(parsed?.headers['content-length']);
      if (!parsed || (parsed.status !== 200 && parsed.status !== 206) || parsed.headers['transfer-encoding'] || !Number.isSafeInteger(length) || length < 0) {
        if (parsed) opts.onRefused?.(parsed.status);
        end(false);
        settled = true;
        resolve(undefined);
        return false;
      }
      keepAlive = parsed.http11 && !/(^|,)\s*close\s*(,|$)/i.test(parsed.headers.connection ?? '');
      remaining = length;
      body = new Readable({
        highWaterMark: 0,
        // net.Socket.resume() restarts reading after the onread callback returned false.
        read: () => {
          if (!finished) connection.socket.resume();
        },
        // Once the body is complete the connection belongs to the pool (or the next GET).
        destroy: (err, cb) => {
          if (!finished) fail(err ?? new Error('the body was destroyed before it ended'));
          cb(err);
        },
      });
      settled = true;
      resolve({ status: parsed.status, headers: parsed.headers, body });
      // Body bytes that came with the head: copy them to the slab's start (they are few).
      used = pendingStart = 0;
      if (rest.length > 0) {
        rest.copy(slab.bytes, 0, 0, Math.min(rest.length, SLAB_BYTES));
        return onBodyBytes(rest.length);
      }
      if (remaining === 0) {
        body.push(null);
        end(keepAlive);
        return keepAlive;
      }
      return true;
    };

    /** Starts a fresh slab when this one has too little room left (its chunks keep it). */
    const ensureRoom = (room: number) => {
      if (SLAB_BYTES - used >= room) return;
      if (body) handOn();
      slab.retire();
      slab = takeSlab();
      used = pendingStart = 0;
    };
    let handed: Uint8Array | undefined;
    const reader: Reader = {
      // The next read lands after the bytes already read into this slab.
      buffer: () => {
        ensureRoom(MIN_READ_ROOM);
        handed = slab.bytes.subarray(used);
        return handed;
      },
      read: (n: number, buf: Uint8Array) => {
        if (n > 0) answered = true;
        if (buf !== handed) {
          // The first read on a connection taken from the pool lands in its idle buffer (small).
          ensureRoom(n);
          slab.bytes.set(buf.subarray(0, n), used);
        }
        return head ? onHeadBytes(n) : onBodyBytes(n);
      },
      failed: (err) => fail(err),
      closed: () => fail(Object.assign(new Error(`connection to ${url.host} closed ${settled ? `with ${remaining} bytes of the body still to come` : 'before the answer'}`), { code: 'ECONNRESET' })),
    };

    const send = () => {
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
      // Without a pool to keep it, the connection closes with the answer.
      if (!opts.pool) lines.push('Connection: close');
      for (const [k, v] of Object.entries(opts.headers)) lines.push(`${k}: ${v}`);
      connection.socket.write(lines.join('\r\n') + '\r\n\r\n');
    };

    const connection: RawConnection = reused ?? new RawConnection(key, url, opts, send, reader);
    connection.reader = reader;
    connection.socket.setTimeout(opts.timeoutMs);
    if (reused) {
      connection.socket.resume();
      send();
    }

    const signal = opts.signal;
    const onAbort = () => fail(signal!.reason as Error);
    if (signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}

/** Status line and headers (names lower-cased, repeats joined with ", "); undefined if malformed. */
function parseHead(text: string): { status: number; http11: boolean; headers: Record<string, string> } | undefined {
  const [statusLine, ...lines] = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})/.exec(statusLine ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(m[2]), http11: m[1] === '1', headers };
}
