/**
 * A forward proxy on 127.0.0.1 as corporate networks have them: CONNECT tunnels for HTTPS and
 * absolute-form requests for plain HTTP, optionally demanding Basic credentials (407). Names
 * in `hosts` resolve to the given addresses (so a registry on loopback can be reached under a
 * name that clients would otherwise not proxy); every request is logged.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ForwardProxy {
  /** http://127.0.0.1:PORT (with `user:pass@` when credentials are required, see urlWithCredentials). */
  url: string;
  urlWithCredentials: string;
  /** "CONNECT host:port" or "GET http://host/path", in arrival order. */
  log: string[];
  close(): Promise<void>;
}

export async function startForwardProxy(opts: { hosts?: Record<string, string>; credentials?: { user: string; pass: string } } = {}): Promise<ForwardProxy> {
  const log: string[] = [];
  const expected = opts.credentials ? `Basic ${Buffer.from(`${opts.credentials.user}:${opts.credentials.pass}`).toString('base64')}` : undefined;
  const resolve = (host: string) => opts.hosts?.[host.toLowerCase()] ?? host;
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    log.push(`${req.method} ${req.url}`);
    if (expected && req.headers['proxy-authorization'] !== expected) {
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="test"' }).end();
      return;
    }
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400).end('absolute-form request expected');
      return;
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    delete headers['proxy-connection'];
    const upstream = http.request(
      { host: resolve(target.hostname), port: target.port || 80, method: req.method, path: target.pathname + target.search, headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => res.headersSent ? res.destroy() : res.writeHead(502).end());
    req.pipe(upstream);
  });

  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    log.push(`CONNECT ${req.url}`);
    if (expected && req.headers['proxy-authorization'] !== expected) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const m = /^(.+):(\d+)$/.exec(req.url ?? '');
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = net.connect({ host: resolve(m[1]!.replace(/^\[|\]$/g, '')), port: Number(m[2]) });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', () => (client.writable ? client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n') : fail()));
    client.on('error', fail);
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    urlWithCredentials: opts.credentials ? `http://${encodeURIComponent(opts.credentials.user)}:${encodeURIComponent(opts.credentials.pass)}@127.0.0.1:${port}` : url,
    log,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
