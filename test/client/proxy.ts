/**
 * Test proxies in front of the real registry: an HTTP proxy whose hook may answer a request
 * itself (e.g. 503 once) or alter the upstream body (wrong bytes for a blob), and a TCP proxy
 * that cuts the connection after N bytes once armed (a broken download or upload).
 */
import http from 'node:http';
import net from 'node:net';

export interface ProxyAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface HttpProxy {
  host: string;
  close(): Promise<void>;
}

export async function startHttpProxy(
  upstream: string,
  hook: (req: http.IncomingMessage) => ProxyAnswer | { alter: (body: Buffer) => Buffer } | undefined,
): Promise<HttpProxy> {
  const [uhost, uport] = upstream.split(':');
  const srv = http.createServer((req, res) => {
    const action = hook(req);
    if (action && 'status' in action) {
      req.resume();
      res.writeHead(action.status, action.headers ?? {}).end(action.body ?? '');
      return;
    }
    const up = http.request({ host: uhost, port: Number(uport), method: req.method, path: req.url, headers: req.headers }, (ures) => {
      const headers = { ...ures.headers };
      if (headers.location) headers.location = headers.location.replace(upstream, `127.0.0.1:${port}`);
      if (action && 'alter' in action) {
        const chunks: Buffer[] = [];
        ures.on('data', (c: Buffer) => chunks.push(c));
        ures.on('end', () => {
          const body = action.alter(Buffer.concat(chunks));
          headers['content-length'] = String(body.length);
          res.writeHead(ures.statusCode ?? 502, headers).end(body);
        });
        return;
      }
      res.writeHead(ures.statusCode ?? 502, headers);
      ures.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

export interface CuttingProxy {
  host: string;
  /** The next connection that carries more than `bytes` (in the given direction) is cut there, once. */
  armDownload(bytes: number): void;
  armUpload(bytes: number): void;
  cuts: number;
  close(): Promise<void>;
}

export async function startCuttingProxy(upstream: string): Promise<CuttingProxy> {
  const [uhost, uport] = upstream.split(':');
  const sockets = new Set<net.Socket>();
  // Bytes are counted from the moment of arming, across connections.
  let armed: { dir: 'down' | 'up'; bytes: number; seen: number } | undefined;
  const state = { cuts: 0 };
  const srv = net.createServer((client) => {
    const server = net.connect(Number(uport), uhost);
    sockets.add(client);
    sockets.add(server);
    const cut = () => {
      armed = undefined;
      state.cuts++;
      client.destroy();
      server.destroy();
    };
    const relay = (dir: 'down' | 'up', to: net.Socket) => (d: Buffer) => {
      if (armed?.dir === dir) {
        if (armed.seen + d.length > armed.bytes) {
          const keep = armed.bytes - armed.seen;
          if (keep > 0) to.write(d.subarray(0, keep));
          cut();
          return;
        }
        armed.seen += d.length;
      }
      to.write(d);
    };
    server.on('data', relay('down', client));
    client.on('data', relay('up', server));
    const end = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on('close', end);
    server.on('close', end);
    client.on('error', end);
    server.on('error', end);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    armDownload: (bytes) => {
      armed = { dir: 'down', bytes, seen: 0 };
    },
    armUpload: (bytes) => {
      armed = { dir: 'up', bytes, seen: 0 };
    },
    get cuts() {
      return state.cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}
