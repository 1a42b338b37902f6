/**
 * Blob bodies over HTTP/1.1 (plain or TLS) without node:http's per-chunk costs. node:http allocates a
 * 64 KiB buffer per socket read and its parser copies every body chunk into another one; on a
 * 192 MB pull that was ~40% of berth's main-thread time. Here the socket (or the TLS socket,
 * which decrypts into the same buffers) reads straight into
 * 1 MiB slabs (net.Socket `onread`), and the body is handed on as views of them, contiguous
 * reads coalesced, with no copy. Slabs come from content/slab-pool.ts: a consumer that owns the
 * body's chunks releases them once used, and their slab is reused.
 *
 * Deliberately narrow: a GET over HTTP or HTTPS whose answer is 200 or 206 with a
 * Content-Length body. Anything else (redirects, auth challenges, errors, chunked or
 * close-delimited bodies) returns undefined before any body byte is used, and the caller sends
 * the request through HttpClient, which handles all of it.
 */
import net from 'node:net';
import { Readable } from 'node:stream';
import { handedOn, retireSlab, takeSlab } from '../content/slab-pool.js';
import { lazyRequire } from '../lazy-require.js';
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
}

/** node:tls loads only for an HTTPS registry. */
const tls = lazyRequire<typeof TlsModule>('node:tls');

/** A slab with less room than this is retired: socket reads on loopback are mostly 32-64 KiB. */
const MIN_READ_ROOM = 64 << 10;
/** Contiguous reads are handed on together once this many bytes have gathered. */
const HAND_ON_BYTES = 256 << 10;
const MAX_HEAD_BYTES = 64 << 10;

/** `GET url`; undefined when the answer is not a plain 200/206 body (see above). */
export function rawGet(url: URL, opts: RawGetOptions): Promise<RawBody | undefined> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.resolve(undefined);
  // A header with CR or LF (say, a token from a hostile token server) would split the request:
  // leave it to HttpClient, which refuses it with a clear error.
  if (Object.entries(opts.headers).some(([k, v]) => /[\r\n]/.test(k) || /[\r\n]/.test(v))) return Promise.resolve(undefined);
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    let slab = takeSlab();
    let used = 0;
    /** Start in `slab` of the bytes read but not yet handed on. */
    let pendingStart = 0;
    let head: Buffer | undefined = Buffer.alloc(0);
    let body: Readable | undefined;
    let remaining = 0;
    let settled = false;
    /** The body is complete or the answer was refused: no more reads are wanted. */
    let finished = false;

    const fail = (err: Error) => {
      socket.destroy();
      if (!settled) {
        settled = true;
        reject(err);
      } else body?.destroy(err);
    };

    /** Hands on what has gathered in the slab since the last hand-on; false asks the socket to pause. */
    const handOn = (): boolean => {
      if (used === pendingStart || !body) return true;
      const chunk = slab.subarray(pendingStart, used);
      pendingStart = used;
      handedOn(slab, chunk.length);
      return body.push(chunk);
    };

    const onBodyBytes = (n: number): boolean => {
      const take = Math.min(n, remaining);
      used += take;
      remaining -= take;
      if (remaining === 0) {
        handOn();
        body!.push(null);
        finished = true;
        socket.destroy();
        return false;
      }
      let more = true;
      if (used - pendingStart >= HAND_ON_BYTES || slab.length - used < MIN_READ_ROOM) more = handOn();
      return more;
    };

    const onHeadBytes = (n: number): boolean => {
      head = Buffer.concat([head!, slab.subarray(used, used + n)]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) fail(new Error(`response head larger than ${MAX_HEAD_BYTES} bytes from ${url.host}`));
        return true;
      }
      const parsed = parseHead(head.subarray(0, end).toString('latin1'));
      const rest = head.subarray(end + 4);
      head = undefined;
      const length = Number(parsed?.headers['content-length']);
      if (!parsed || (parsed.status !== 200 && parsed.status !== 206) || parsed.headers['transfer-encoding'] || !Number.isSafeInteger(length) || length < 0) {
        if (parsed) opts.onRefused?.(parsed.status);
        finished = true;
        socket.destroy();
        settled = true;
        resolve(undefined);
        return false;
      }
      remaining = length;
      body = new Readable({
        highWaterMark: 0,
        // net.Socket.resume() restarts reading after the onread callback returned false.
        read: () => {
          socket.resume();
        },
        destroy: (err, cb) => {
          socket.destroy();
          cb(err);
        },
      });
      settled = true;
      resolve({ status: parsed.status, headers: parsed.headers, body });
      // Body bytes that came with the head: copy them to the slab's start (they are few).
      used = pendingStart = 0;
      if (rest.length > 0) {
        rest.copy(slab, 0, 0, Math.min(rest.length, slab.length));
        return onBodyBytes(rest.length);
      }
      if (remaining === 0) {
        body.push(null);
        finished = true;
        socket.destroy();
        return false;
      }
      return true;
    };

    const host = url.hostname.replace(/^\[|\]$/g, '');
    const connectOptions = {
      host,
      port: Number(url.port || (secure ? 443 : 80)),
      onread: {
        // The next read lands after the bytes already read into this slab; a full slab is
        // left to the chunks that view it and a fresh one is taken.
        buffer: () => {
          if (finished) return slab;
          if (slab.length - used < MIN_READ_ROOM) {
            if (body) handOn();
            retireSlab(slab);
            slab = takeSlab();
            used = pendingStart = 0;
          }
          return slab.subarray(used);
        },
        callback: (n: number) => (head ? onHeadBytes(n) : onBodyBytes(n)),
      },
    };
    const socket: net.Socket = secure
      ? tls().connect({ ...connectOptions, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: opts.rejectUnauthorized ?? true, ...(opts.secureContext ? { secureContext: opts.secureContext } : {}), ALPNProtocols: ['http/1.1'] })
      : net.connect(connectOptions);
    socket.setNoDelay(true);
    socket.setTimeout(opts.timeoutMs, () => fail(Object.assign(new Error(`no data from ${url.host} for ${opts.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    socket.on(secure ? 'secureConnect' : 'connect', () => {
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: close'];
      for (const [k, v] of Object.entries(opts.headers)) lines.push(`${k}: ${v}`);
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
    socket.on('error', (err) => fail(err));
    socket.on('close', () => {
      retireSlab(slab);
      if (!settled || (body && remaining > 0)) {
        fail(Object.assign(new Error(`connection to ${url.host} closed ${settled ? `with ${remaining} bytes of the body still to come` : 'before the answer'}`), { code: 'ECONNRESET' }));
      }
    });
    const signal = opts.signal;
    if (signal) {
      const onAbort = () => fail(signal.reason as Error);
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        socket.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
  });
}

/** Status line and headers (names lower-cased, repeats joined with ", "); undefined if malformed. */
function parseHead(text: string): { status: number; headers: Record<string, string> } | undefined {
  const [statusLine, ...lines] = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
  if (!m) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status: Number(m[1]), headers };
}
