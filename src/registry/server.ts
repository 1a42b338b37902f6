/**
 * The HTTP(S) server of `berth serve`: node:http with keep-alive, one dispatch per request,
 * access control before any handler, metrics and an access-log line on every response,
 * periodic purge of stale uploads, and graceful shutdown.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { AccessScope, Principal } from './auth/access.js';
import { AccessLog } from './access-log.js';
import { DebugServer } from './debug-server.js';
import { RegistryError, toRegistryError } from './errors.js';
import { deleteBlob, getBlob } from './handlers/blobs.js';
import { listCatalog, listReferrers, listTags } from './handlers/discovery.js';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.js';
import { sendHealth, sendMetrics } from './handlers/operations.js';
import { cancelUpload, patchUpload, putUpload, startUpload, uploadStatus } from './handlers/uploads.js';
import { readBody, sendError, sendJson } from './http-util.js';
import { listenOn } from './listen.js';
import { checkName } from './names.js';
import type { Registry } from './registry.js';
import { matchRoute, type Route } from './routes.js';

const PURGE_INTERVAL_MS = 10 * 60 * 1000;

function methodNotAllowed(method: string | undefined): RegistryError {
  return new RegistryError(405, 'UNSUPPORTED', `method ${method} is not supported on this endpoint`);
}

function repoScope(name: string, actions: string[]): AccessScope[] {
  return [{ type: 'repository', name, actions }];
}

/** What a request needs (spec.md endpoints → docker token scopes). */
function scopesFor(route: Route, method: string): AccessScope[] | 'none' {
  switch (route.kind) {
    case 'base':
      return [];
    case 'catalog':
    // Metrics tell repository and blob counts: on the main port, only to whoever may list the
    // catalog (any authenticated user without a policy; "catalog": true with one). --debug-addr
    // serves them without auth on an address the operator keeps private.
    case 'metrics':
      return [{ type: 'registry', name: 'catalog', actions: ['*'] }];
    case 'blob':
    case 'manifest':
      if (method === 'DELETE') return repoScope(route.name, ['delete']);
      if (method === 'PUT') return repoScope(route.name, ['pull', 'push']);
      return repoScope(route.name, ['pull']);
    case 'uploadStart':
    case 'upload':
      return repoScope(route.name, ['pull', 'push']);
    case 'tags':
    case 'referrers':
      return repoScope(route.name, ['pull']);
    default:
      return 'none';
  }
}

export class RegistryServer {
  private readonly server: http.Server;
  private readonly log: AccessLog;
  private readonly warnings: string[] | undefined;
  private purgeTimer?: NodeJS.Timeout;
  private debug?: DebugServer;
  /** Where the debug listener (config.debugAddr) listens, once listen() has started it. */
  debugAddress?: AddressInfo;
  private closing = false;

  constructor(
    readonly registry: Registry,
    logOut?: NodeJS.WritableStream,
  ) {
    const cfg = registry.config;
    this.log = new AccessLog(cfg.logFormat, logOut);
    // spec.md "Warnings": warn-code 299, warn-agent "-", no warn-date.
    this.warnings = cfg.warnings.length > 0 ? cfg.warnings.map((w) => `299 - "${w}"`) : undefined;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.server = cfg.tls
      ? https.createServer({ cert: readFileSync(cfg.tls.cert), key: readFileSync(cfg.tls.key) }, handler)
      : http.createServer(handler);
    this.server.keepAliveTimeout = 65_000;
    this.server.headersTimeout = 70_000;
    // Uploads of large layers can be slow: no overall request timeout.
    this.server.requestTimeout = 0;
  }

  /** Starts listening on config.addr (or `addrOverride`) and config.debugAddr, and purging stale uploads periodically. */
  async listen(addrOverride?: string): Promise<AddressInfo> {
    const address = await listenOn(this.server, addrOverride ?? this.registry.config.addr, '--addr');
    const debugAddr = this.registry.config.debugAddr;
    if (debugAddr !== undefined) {
      const debug = new DebugServer(this.registry);
      try {
        this.debugAddress = await debug.listen(debugAddr);
      } catch (err) {
        this.server.close();
        throw err;
      }
      this.debug = debug;
    }
    this.purgeTimer = setInterval(() => void this.purgeUploads(), Math.min(PURGE_INTERVAL_MS, this.registry.config.uploadPurgeAfterMs));
    this.purgeTimer.unref();
    void this.purgeUploads();
    return address;
  }

  get logger(): AccessLog {
    return this.log;
  }

  async purgeUploads(): Promise<string[]> {
    try {
      const purged = await this.registry.uploads.purgeStale(Date.now() - this.registry.config.uploadPurgeAfterMs);
      if (purged.length > 0) this.log.info('purged stale uploads', { count: purged.length });
      return purged;
    } catch (err) {
      this.log.info('purging stale uploads failed', { error: (err as Error).message });
      return [];
    }
  }

  /** Stops accepting, lets requests in flight finish (at most `timeoutMs`), then closes the stores. */
  async close(timeoutMs = this.registry.config.shutdownTimeoutMs): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.purgeTimer);
    await this.debug?.close();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Keep-alive connections become idle as their last request finishes: close them then.
    const sweep = setInterval(() => this.server.closeIdleConnections(), 50);
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), timeoutMs);
    await closed;
    clearInterval(sweep);
    clearTimeout(timer);
    this.log.flush();
    await this.registry.close();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const start = process.hrtime.bigint();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    const route = matchRoute(pathname);
    const state: { principal?: Principal } = {};
    const socket = req.socket;
    const readBefore = socket.bytesRead;
    const writtenBefore = socket.bytesWritten;
    if (this.closing) res.setHeader('Connection', 'close');
    if (this.warnings && pathname.startsWith('/v2')) res.setHeader('Warning', this.warnings);
    res.once('finish', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      // Wire bytes of this exchange (requests on one connection never overlap in HTTP/1.1).
      const bytesOut = socket.bytesWritten - writtenBefore;
      const metrics = this.registry.metrics;
      metrics.bytesIn += socket.bytesRead - readBefore;
      metrics.bytesOut += bytesOut;
      metrics.observe(route.kind, req.method ?? '', res.statusCode, ms / 1000);
      this.log.write({
        time: Date.now(),
        remote: req.socket.remoteAddress,
        method: req.method ?? '',
        path: url,
        status: res.statusCode,
        bytes: bytesOut,
        ms,
        user: state.principal?.user,
        route: route.kind,
      });
    });
    this.dispatch(req, res, route, q < 0 ? '' : url.slice(q + 1), state).catch((err: unknown) => {
      const e = toRegistryError(err);
      if (e.status >= 500) this.log.info('request failed', { method: req.method, path: url, error: (err as Error)?.stack ?? String(err) });
      sendError(req, res, e);
    });
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, route: Route, search: string, state: { principal?: Principal }): Promise<void> {
    const reg = this.registry;
    const method = req.method ?? 'GET';
    const read = method === 'GET' || method === 'HEAD';
    if ('name' in route && reg.proxy && search.includes('ns=')) {
      // containerd asks a mirror for NAME?ns=HOST: that is the cache's repository HOST/NAME.
      const ns = new URLSearchParams(search).get('ns');
      const local = ns ? reg.proxy.localName(route.name, ns) : undefined;
      if (local) route = { ...route, name: local } as Route;
    }
    if ('name' in route) checkName(route.name);
    if ('name' in route && (method === 'POST' || method === 'PUT' || method === 'PATCH') && reg.proxy?.covers(route.name)) {
      // As distribution's proxy mode: the cache holds what the upstream has; pushes go there.
      throw new RegistryError(405, 'UNSUPPORTED', `${route.name} is a pull-through cache of an upstream registry: push to the upstream`);
    }
    const scopes = scopesFor(route, method);
    if (scopes !== 'none') state.principal = await reg.authorizer.authorize(req, scopes);
    const query = () => new URLSearchParams(search);
    switch (route.kind) {
      case 'base':
        if (!read) throw methodNotAllowed(method);
        return sendJson(res, 200, {});
      case 'blob':
        if (read) return getBlob(reg, req, res, route.name, route.digest);
        if (method === 'DELETE') return deleteBlob(reg, res, route.name, route.digest);
        throw methodNotAllowed(method);
      case 'uploadStart':
        if (method === 'POST') return startUpload(reg, req, res, route.name, query(), state.principal ?? {});
        throw methodNotAllowed(method);
      case 'upload':
        if (method === 'PATCH') return patchUpload(reg, req, res, route.name, route.id);
        if (method === 'PUT') return putUpload(reg, req, res, route.name, route.id, query());
        if (method === 'GET') return uploadStatus(reg, res, route.name, route.id);
        if (method === 'DELETE') return cancelUpload(reg, res, route.name, route.id);
        throw methodNotAllowed(method);
      case 'manifest':
        if (read) return getManifest(reg, req, res, route.name, route.reference);
        if (method === 'PUT') return putManifest(reg, req, res, route.name, route.reference, query());
        if (method === 'DELETE') return deleteManifest(reg, res, route.name, route.reference);
        throw methodNotAllowed(method);
      case 'tags':
        if (method === 'GET') return listTags(reg, res, route.name, query());
        throw methodNotAllowed(method);
      case 'referrers':
        if (method === 'GET') return listReferrers(reg, res, route.name, route.digest, query());
        throw methodNotAllowed(method);
      case 'catalog':
        if (method === 'GET') return listCatalog(reg, res, query());
        throw methodNotAllowed(method);
      case 'token':
        return this.token(req, res, query());
      case 'metrics':
        if (method !== 'GET') throw methodNotAllowed(method);
        return sendMetrics(reg, res);
      case 'health':
        return sendHealth(reg, res);
      default:
        throw new RegistryError(404, 'UNSUPPORTED', `no such endpoint: ${req.method} ${req.url}`);
    }
  }

  private async token(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const issuer = this.registry.tokenIssuer;
    if (!issuer) throw new RegistryError(404, 'UNSUPPORTED', 'this registry has no token endpoint (token auth is not configured with a signing key)');
    let form: URLSearchParams | undefined;
    if (req.method === 'POST') form = new URLSearchParams((await readBody(req, 64 * 1024)).toString('utf8'));
    else if (req.method !== 'GET') throw methodNotAllowed(req.method);
    const answer = await issuer.issue(req, query, form);
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, answer);
  }
}

