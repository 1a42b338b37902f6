/**
 * Forward proxies, chosen as docker, podman, skopeo and crane choose them (Go's
 * golang.org/x/net/http/httpproxy): HTTPS_PROXY for https: URLs, HTTP_PROXY for http: URLs
 * (upper or lower case), NO_PROXY for the exceptions; `localhost` and loopback addresses are
 * never proxied. HTTPS goes through a CONNECT tunnel; plain HTTP is sent to the proxy in
 * absolute form. Proxies may be http:// or https://; credentials in the proxy URL are sent as
 * Proxy-Authorization: Basic.
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import type * as TlsModule from 'node:tls';
import { BerthError } from '../base/errors.js';
import { lazyRequire } from '../base/lazy-require.js';

export interface ProxySettings {
  /** Proxy for http: URLs (HTTP_PROXY). */
  httpProxy?: string;
  /** Proxy for https: URLs (HTTPS_PROXY). */
  httpsProxy?: string;
  /** Comma-separated exceptions (NO_PROXY): `*`, host names (with subdomains), `.domain`, IPs, CIDRs, each with an optional `:port`. */
  noProxy?: string;
}

const tls = lazyRequire<typeof TlsModule>('node:tls');

/** The proxy settings in an environment (upper case first, as Go reads them). */
export function proxySettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const pick = (name: string) => env[name] || env[name.toLowerCase()] || undefined;
  const settings: ProxySettings = {};
  const httpProxy = pick('HTTP_PROXY');
  const httpsProxy = pick('HTTPS_PROXY');
  const noProxy = pick('NO_PROXY');
  if (httpProxy) settings.httpProxy = httpProxy;
  if (httpsProxy) settings.httpsProxy = httpsProxy;
  if (noProxy) settings.noProxy = noProxy;
  return settings;
}

/** The proxy to reach `target` through, or undefined to connect directly. */
export function proxyFor(target: URL, settings: ProxySettings): URL | undefined {
  const raw = target.protocol === 'https:' ? settings.httpsProxy : target.protocol === 'http:' ? settings.httpProxy : undefined;
  if (!raw) return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || isLoopbackIp(host)) return undefined;
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  if (settings.noProxy && excepted(host, port, settings.noProxy)) return undefined;
  return parseProxyUrl(raw);
}

/** A proxy URL from the environment; a value without a scheme is an http:// one (as in Go). */
export function parseProxyUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new BerthError('USAGE', `invalid proxy URL ${JSON.stringify(raw)} (from HTTP_PROXY/HTTPS_PROXY): use http://host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BerthError('UNSUPPORTED', `proxy ${url.protocol}//${url.host}: only http:// and https:// proxies are supported (set HTTPS_PROXY/HTTP_PROXY to an HTTP proxy)`);
  }
  return url;
}

/** 127.0.0.0/8 and ::1, also written as IPv4-mapped IPv6 (which URL turns into hex: ::ffff:7f00:1). */
function isLoopbackIp(host: string): boolean {
  const b = ipBytes(host);
  if (!b) return false;
  if (b.length === 4) return b[0] === 127;
  return b.subarray(0, 15).every((x) => x === 0) && b[15] === 1;
}

/** Whether NO_PROXY names this host and port. */
function excepted(host: string, port: number, noProxy: string): boolean {
  const hostIsIp = net.isIP(host) !== 0;
  for (let entry of noProxy.split(',').map((e) => e.trim().toLowerCase())) {
    if (!entry) continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (hostIsIp && inCidr(host, entry)) return true;
      continue;
    }
    let entryPort: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1]!;
      if (bracketed[2]) entryPort = Number(bracketed[2]);
    } else if (!net.isIPv6(entry)) {
      const colon = entry.lastIndexOf(':');
      if (colon > 0 && /^\d+$/.test(entry.slice(colon + 1))) {
        entryPort = Number(entry.slice(colon + 1));
        entry = entry.slice(0, colon);
      }
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    if (net.isIP(entry)) {
      if (hostIsIp && sameIp(entry, host)) return true;
      continue;
    }
    if (entry.startsWith('*.')) entry = entry.slice(1);
    // ".example.com" names the subdomains; "example.com" the domain and its subdomains.
    if (entry.startsWith('.') ? host.endsWith(entry) : host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

function sameIp(a: string, b: string): boolean {
  const x = ipBytes(a);
  const y = ipBytes(b);
  return x !== undefined && y !== undefined && x.equals(y);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const net1 = ipBytes(base ?? '');
  const addr = ipBytes(ip);
  if (!net1 || !addr || net1.length !== addr.length || !Number.isInteger(bits) || bits < 0 || bits > net1.length * 8) return false;
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if ((net1[i >> 3]! & mask) !== (addr[i >> 3]! & mask)) return false;
  }
  return true;
}

/** An address as 4 or 16 bytes; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as its 4. */
function ipBytes(ip: string): Buffer | undefined {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!net.isIPv6(ip)) return undefined;
  let text = ip.toLowerCase();
  // A dotted IPv4 tail becomes two hex groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const groups = (s: string | undefined) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  const mapped = out.subarray(0, 10).every((x) => x === 0) && out[10] === 0xff && out[11] === 0xff;
  return mapped ? Buffer.from(out.subarray(12)) : out;
}

/** Proxy-Authorization for credentials in the proxy URL, if any. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username && !proxy.password) return undefined;
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

/** What to do about a 407 from this proxy. */
export function proxyCredentialsHint(proxy: URL): string {
  return proxyAuthorization(proxy) ? 'the proxy refused the credentials in its URL' : 'the proxy wants credentials: put them in its URL (http://user:password@host:port)';
}

/** A connection to the proxy itself (TLS for an https:// proxy, verified). */
export function connectToProxy(proxy: URL): Socket {
  const host = proxy.hostname.replace(/^\[|\]$/g, '');
  const port = Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80));
  return proxy.protocol === 'https:'
    ? tls().connect({ host, port, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'] })
    : net.connect({ host, port });
}

const MAX_CONNECT_HEAD = 16 << 10;

/**
 * Opens a CONNECT tunnel through `proxy` to `host:port` and calls back with the tunnel's socket
 * (on which the caller starts TLS), or with an error that says what the proxy answered:
 * NETWORK (retryable) for failed connections and 5xx, UNAUTHORIZED for 407, DENIED for other refusals.
 */
export function openTunnel(proxy: URL, host: string, port: number, timeoutMs: number, done: (err: Error | null, socket?: Socket) => void): void {
  const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  const socket = connectToProxy(proxy);
  let head = Buffer.alloc(0);
  let finished = false;
  const finish = (err: Error | null) => {
    if (finished) return;
    finished = true;
    socket.setTimeout(0);
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('close', onClose);
    socket.removeListener('timeout', onTimeout);
    if (err) {
      socket.destroy();
      done(err);
    } else done(null, socket);
  };
  const onData = (chunk: Buffer) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_CONNECT_HEAD) finish(tunnelError('NETWORK', proxy, authority, 'an over-long answer'));
      return;
    }
    const statusLine = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
    const m = /^HTTP\/1\.[01] (\d{3})(.*)$/.exec(statusLine);
    if (!m) return finish(tunnelError('NETWORK', proxy, authority, `a malformed answer ${JSON.stringify(statusLine.slice(0, 80))}`));
    const status = Number(m[1]);
    if (status === 407) {
      return finish(tunnelError('UNAUTHORIZED', proxy, authority, `${status}${m[2]}; ${proxyCredentialsHint(proxy)}`));
    }
    if (status !== 200) return finish(tunnelError(status >= 500 ? 'NETWORK' : 'DENIED', proxy, authority, `${status}${m[2]}`));
    // Bytes after the answer belong to the tunnel (a server that speaks first): give them back.
    const rest = head.subarray(end + 4);
    socket.pause();
    if (rest.length) socket.unshift(rest);
    finish(null);
  };
  const onError = (err: Error) => finish(new BerthError('NETWORK', `cannot reach proxy ${proxy.host}: ${err.message}`, { cause: err }));
  const onClose = () => finish(tunnelError('NETWORK', proxy, authority, 'nothing (the connection closed)'));
  const onTimeout = () => finish(tunnelError('NETWORK', proxy, authority, `nothing for ${timeoutMs} ms`));
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
  socket.on('timeout', onTimeout);
  socket.setTimeout(timeoutMs);
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  const auth = proxyAuthorization(proxy);
  if (auth) lines.push(`Proxy-Authorization: ${auth}`);
  socket.write(lines.join('\r\n') + '\r\n\r\n');
}

function tunnelError(code: 'NETWORK' | 'UNAUTHORIZED' | 'DENIED', proxy: URL, authority: string, answer: string): BerthError {
  return new BerthError(code, `proxy ${proxy.host} did not open a tunnel to ${authority}: it answered ${answer}`);
}
