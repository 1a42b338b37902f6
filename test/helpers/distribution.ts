/**
 * Starts Debian's docker-registry (CNCF distribution 2.8) on a free 127.0.0.1 port with its
 * storage in a temp dir and deletes enabled: plain, with htpasswd Basic auth, or with token
 * auth backed by a small in-test token server that signs RS256 JWTs with a test key
 * (docker-registry/auth/jwt.md; the `kid` is the libtrust key ID of the certificate's key,
 * which is how distribution 2.8 finds the trusted key in `rootcertbundle`).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

/** PEM files for a registry's HTTPS; with clientCa it asks for client certificates signed by it (probe: one such, to see it is up). */
export interface RegistryTls {
  cert: string;
  key: string;
  clientCa?: string;
  probe?: { cert: string; key: string };
}

export interface RegistryServer {
  /** `127.0.0.1:PORT` */
  host: string;
  dir: string;
  auth: RegistryAuth;
  username: string;
  password: string;
  /** With token auth: the token server, its request log and the refresh token it accepts. */
  tokenServer?: TokenServer;
  /** The docker-registry process (benchmarks read its memory). */
  pid: number;
  /** Its output: errors, and the access log when asked for. */
  log: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, logFile: string, clientCert?: { cert: string; key: string }): Promise<void> {
  const tlsOptions = { rejectUnauthorized: false, ...(clientCert ? { cert: await readFile(clientCert.cert), key: await readFile(clientCert.key) } : {}) };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`docker-registry exited with ${child.exitCode}: ${await readFile(logFile, 'utf8').catch(() => '')}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const get = url.startsWith('https:') ? (u: string, cb: (res: http.IncomingMessage) => void) => https.get(u, tlsOptions, cb) : http.get;
      const req = get(url, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
      req.setTimeout(1000, () => req.destroy());
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer on ${url} within 15 s`);
}

// ---- token server ---------------------------------------------------------------------------

/** libtrust's key ID: base32 of the first 240 bits of sha256(SPKI DER), in 12 groups of 4. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)!.join(':');
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  refreshToken: string;
  /** Every request: method, the scopes asked for, whether credentials were valid. */
  requests: { method: string; scopes: string[]; user?: string; grant?: string }[];
  close(): Promise<void>;
}

async function startTokenServer(dir: string, username: string, password: string): Promise<{ server: TokenServer; certPath: string }> {
  const keyPath = join(dir, 'token-key.pem');
  const certPath = join(dir, 'token-cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=berth-test-token'], {
    stdio: 'ignore',
  });
  const privateKey = createPrivateKey(await readFile(keyPath));
  const kid = libtrustKeyId(createPublicKey(privateKey));
  const service = 'berth-test-registry';
  const issuer = 'berth-test-issuer';
  const refreshToken = randomBytes(16).toString('hex');
  const requests: TokenServer['requests'] = [];

  const issue = (user: string | undefined, scopes: string[]) => {
    const access = user
      ? scopes.map((s) => {
          const [type, ...rest] = s.split(':');
          const actions = rest.pop()!.split(',');
          return { type, name: rest.join(':'), actions };
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', kid };
    const claims = { iss: issuer, sub: user ?? '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(input), privateKey);
    return `${input}.${b64url(signature)}`;
  };

  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      let user: string | undefined;
      let scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
      let grant: string | undefined;
      if (req.method === 'POST') {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        grant = form.get('grant_type') ?? undefined;
        scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
        if (grant === 'refresh_token' && form.get('refresh_token') === refreshToken) user = username;
        else if (grant === 'password' && form.get('username') === username && form.get('password') === password) user = username;
        else {
          requests.push({ method: 'POST', scopes, grant });
          res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad refresh token' }] }));
          return;
        }
      } else {
        const authz = req.headers.authorization;
        if (authz?.startsWith('Basic ')) {
          const [u, p] = Buffer.from(authz.slice(6), 'base64').toString().split(/:(.*)/s);
          if (u !== username || p !== password) {
            requests.push({ method: 'GET', scopes });
            res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'invalid username or password' }] }));
            return;
          }
          user = u;
        }
      }
      requests.push({ method: req.method ?? 'GET', scopes, user, grant });
      const body: Record<string, unknown> = { token: issue(user, scopes), expires_in: 300, issued_at: new Date().toISOString() };
      if (grant) body.access_token = body.token;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    certPath,
    server: {
      realm: `http://127.0.0.1:${port}/token`,
      service,
      issuer,
      refreshToken,
      requests,
      close: () =>
        new Promise<void>((resolve) => {
          srv.closeAllConnections();
          srv.close(() => resolve());
        }),
    },
  };
}

// ---- the registry -------------------------------------------------------------------------------

export async function startRegistry(
  opts: { auth?: RegistryAuth; username?: string; password?: string; /** Parent of the temp dir (e.g. /dev/shm for benchmarks). */ baseDir?: string; /** Write the access log (one line per request, combined log format) to `log` (stdout). */ accessLog?: boolean; /** Serve HTTPS: with a self-signed certificate for 127.0.0.1, or with these (mutual TLS with clientCa). */ tls?: boolean | RegistryTls } = {},
): Promise<RegistryServer> {
  const auth = opts.auth ?? 'none';
  const username = opts.username ?? 'berth';
  const password = opts.password ?? 'secret-pass';
  const dir = await mkdtemp(join(opts.baseDir ?? tmpdir(), 'berth-registry-'));
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    `    disabled: ${opts.accessLog ? 'false' : 'true'}`,
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: berth-test-secret',
  ];
  let tokenServer: TokenServer | undefined;
  if (opts.tls === true) {
    const key = join(dir, 'tls-key.pem');
    const cert = join(dir, 'tls-cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], {
      stdio: 'ignore',
    });
    lines.push('  tls:', `    certificate: ${cert}`, `    key: ${key}`);
  } else if (opts.tls) {
    lines.push('  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`);
    if (opts.tls.clientCa) lines.push('    clientcas:', `      - ${opts.tls.clientCa}`);
  }
  if (auth === 'htpasswd') {
    const file = join(dir, 'htpasswd');
    execFileSync('htpasswd', ['-B', '-C', '5', '-b', '-c', file, username, password], { stdio: 'ignore' });
    lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${file}`);
  } else if (auth === 'token') {
    const started = await startTokenServer(dir, username, password);
    tokenServer = started.server;
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${tokenServer.realm}`,
      `    service: ${tokenServer.service}`,
      `    issuer: ${tokenServer.issuer}`,
      `    rootcertbundle: ${started.certPath}`,
    );
  }
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, lines.join('\n') + '\n');
  const logFile = join(dir, 'registry.log');
  const { openSync, closeSync } = await import('node:fs');
  const fd = openSync(logFile, 'w');
  const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    await tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForHttp(`${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/v2/`, child, logFile, typeof opts.tls === 'object' ? opts.tls.probe : undefined);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: `127.0.0.1:${port}`, dir, auth, username, password, tokenServer, pid: child.pid!, log: logFile, stop };
}

/** skopeo with a memory-only blob-info cache (as root it would otherwise remember blobs between runs). */
/** How many requests `METHOD PATH` a registry started with `accessLog` has logged. */
export function countRequests(reg: RegistryServer, method: string, path: string): number {
  const needle = `"${method} ${path} HTTP/`;
  return readFileSync(reg.log, 'utf8').split('\n').filter((l) => l.includes(needle)).length;
}

export function skopeo(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  return execFileSync('skopeo', args, {
    env: { ...process.env, _CONTAINERS_ROOTLESS_UID: '1000', XDG_DATA_HOME: '/proc/nonexistent', ...(opts.env ?? {}) },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: opts.timeoutMs ?? 120_000,
  });
}

