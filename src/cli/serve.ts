/** `berth serve` (the registry server) and `berth registry gc|verify`. */
import type { AddressInfo } from 'node:net';
import { BerthError } from '../base/errors.js';
import { buildConfig, defaultConfig, overridesFromEnv, overridesFromFile, type ConfigOverrides, type RegistryConfig } from '../registry/config.js';
import { collectGarbage } from '../registry/gc.js';
import { migrateRegistry } from '../registry/migrate.js';
import { openBlobStore, openMetadata, openRegistry } from '../registry/registry.js';
import { RegistryServer } from '../registry/server.js';
import { removeServePid, runningServer, writeServePid } from '../registry/serve-lock.js';
import { verifyRegistry } from '../registry/verify.js';
import { flag, printJson, printLine, str, strs, type CommandGroup, type ParsedCommand } from './common.js';

const CONFIG_OPTIONS = {
  config: { type: 'string' },
  addr: { type: 'string' },
  data: { type: 'string' },
  storage: { type: 'string' },
  metadata: { type: 'string' },
} as const;

const SERVE_OPTIONS = {
  ...CONFIG_OPTIONS,
  'debug-addr': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  htpasswd: { type: 'string' },
  realm: { type: 'string' },
  policy: { type: 'string' },
  'token-realm': { type: 'string' },
  'token-service': { type: 'string' },
  'token-issuer': { type: 'string' },
  'token-key': { type: 'string' },
  'token-trust': { type: 'string', multiple: true },
  'token-expires': { type: 'string' },
  'no-delete': { type: 'boolean' },
  'no-redirect': { type: 'boolean' },
  'sparse-manifests': { type: 'boolean' },
  proxy: { type: 'string', multiple: true },
  'proxy-ttl': { type: 'string' },
  'upload-purge-after': { type: 'string' },
  'max-manifest-bytes': { type: 'string' },
  'chunk-min-length': { type: 'string' },
  'log-format': { type: 'string' },
  'gc-interval': { type: 'string' },
  'gc-delete-untagged': { type: 'boolean' },
  'gc-grace': { type: 'string' },
  warning: { type: 'string', multiple: true },
} as const;

function num(p: ParsedCommand, key: string): number | undefined {
  const v = str(p, key);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new BerthError('USAGE', `--${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function flagOverrides(p: ParsedCommand): ConfigOverrides {
  const o: ConfigOverrides = {
    addr: str(p, 'addr'),
    debugAddr: str(p, 'debug-addr'),
    data: str(p, 'data'),
    storage: str(p, 'storage'),
    metadata: str(p, 'metadata'),
    tlsCert: str(p, 'tls-cert'),
    tlsKey: str(p, 'tls-key'),
    htpasswd: str(p, 'htpasswd'),
    realm: str(p, 'realm'),
    policy: str(p, 'policy'),
    tokenRealm: str(p, 'token-realm'),
    tokenService: str(p, 'token-service'),
    tokenIssuer: str(p, 'token-issuer'),
    tokenKey: str(p, 'token-key'),
    tokenExpiresIn: num(p, 'token-expires'),
    uploadPurgeAfter: num(p, 'upload-purge-after'),
    maxManifestBytes: num(p, 'max-manifest-bytes'),
    chunkMinLength: num(p, 'chunk-min-length'),
    proxyTtl: num(p, 'proxy-ttl'),
    logFormat: str(p, 'log-format'),
    gcGrace: num(p, 'gc-grace'),
  };
  if (strs(p, 'token-trust').length > 0) o.tokenTrust = strs(p, 'token-trust');
  if (strs(p, 'warning').length > 0) o.warnings = strs(p, 'warning');
  if (strs(p, 'proxy').length > 0) o.proxy = strs(p, 'proxy');
  if (flag(p, 'no-delete')) o.delete = false;
  if (flag(p, 'no-redirect')) o.redirect = false;
  if (flag(p, 'sparse-manifests')) o.sparseManifests = true;
  if (flag(p, 'gc-delete-untagged')) o.gcDeleteUntagged = true;
  return o;
}

function loadConfig(p: ParsedCommand): RegistryConfig {
  const env = overridesFromEnv(process.env);
  const file = str(p, 'config') ?? process.env.BERTH_CONFIG;
  const layers = [file ? overridesFromFile(file) : {}, env, flagOverrides(p)];
  return buildConfig(defaultConfig(process.env), ...layers);
}

const SERVE_USAGE = `Usage: berth serve [OPTIONS]

Serves an OCI distribution-spec registry. With no options: http://127.0.0.1:5000, data in
$XDG_DATA_HOME/berth/registry (~/.local/share/berth/registry; /var/lib/berth/registry as root).

Options (each also as a BERTH_* environment variable or a key of the --config JSON file):
  --addr HOST:PORT             listen address (BERTH_ADDR, "addr")
  --data DIR                   data directory (BERTH_DATA, "data")
  --storage s3://BUCKET[/PREFIX]?endpoint=URL&region=R   blobs in S3 (BERTH_STORAGE, "storage");
                               credentials from the AWS chain (AWS_ACCESS_KEY_ID/…, ~/.aws)
  --metadata postgres://USER@HOST:PORT/DB   metadata in PostgreSQL, shared by replicas (BERTH_METADATA, "metadata")
  --sparse-manifests           accept manifests whose blobs or child manifests are missing, as a mirror of
                               part of an index needs (BERTH_SPARSE_MANIFESTS, "sparseManifests")
  --proxy [PREFIX=]URL         pull-through cache of the registry at URL (repeatable; BERTH_PROXY, comma-
                               separated): repositories PREFIX/NAME (PREFIX a host such as docker.io, or a
                               path; also NAME?ns=PREFIX from containerd) are the upstream's NAME; without
                               PREFIX, every other repository. Credentials: the config's "proxies" list
                               ([{"prefix","url","username","password","ttl"}]); for the upstream without
                               prefix also BERTH_PROXY_USERNAME/_PASSWORD ("proxyUsername"/"proxyPassword")
  --proxy-ttl SECONDS          serve a cached tag this long before asking the upstream again (default 300)
  --no-redirect                proxy blob GETs from S3 instead of redirecting to presigned URLs (BERTH_REDIRECT=false)
  --debug-addr HOST:PORT       plain-HTTP listener with /metrics and /healthz, no auth (BERTH_DEBUG_ADDR,
                               "debugAddr"); on --addr, /metrics needs the catalog right
  --config FILE                JSON config file (BERTH_CONFIG)
  --tls-cert FILE --tls-key FILE   serve HTTPS (BERTH_TLS_CERT/BERTH_TLS_KEY, "tlsCert"/"tlsKey")
  --htpasswd FILE              Basic auth with bcrypt entries, htpasswd -B (BERTH_HTPASSWD, "htpasswd")
  --realm NAME                 Basic auth realm (BERTH_AUTH_REALM, "realm")
  --policy FILE                JSON access policy: users/groups -> repositories -> actions (BERTH_POLICY)
  --token-key FILE             PEM key (RSA or EC P-256): token auth with the built-in /token issuer
  --token-trust FILE           PEM key or certificate of an external token issuer (repeatable)
  --token-realm URL --token-service NAME --token-issuer NAME --token-expires SECONDS
  --no-delete                  refuse deletes with 405 UNSUPPORTED (BERTH_DELETE=false, "delete": false)
  --upload-purge-after SECONDS purge upload sessions older than this (default 86400)
  --max-manifest-bytes N       largest manifest accepted (default 4194304; 413 beyond)
  --chunk-min-length N         advertise OCI-Chunk-Min-Length
  --log-format text|json|off   access log on stderr (BERTH_LOG_FORMAT, "logFormat")
  --gc-interval SECONDS        run garbage collection in the server periodically
  --gc-delete-untagged --gc-grace SECONDS   garbage collection settings (default grace 3600)
  --warning TEXT               a notice sent to clients as a Warning header (repeatable; BERTH_WARNING)

Examples:
  berth serve
  berth serve --addr 0.0.0.0:5000 --data /srv/registry --htpasswd /etc/berth/htpasswd
`;

function urlOf(scheme: string, addr: AddressInfo): string {
  return `${scheme}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
}

async function serve(p: ParsedCommand): Promise<number> {
  const config = loadConfig(p);
  const registry = await openRegistry(config);
  const server = new RegistryServer(registry);
  const addr = await server.listen();
  // serve.pid keeps an offline `berth registry gc` away from a SQLite registry in use.
  if (!config.metadata) writeServePid(config.dataDir);
  const url = urlOf(config.tls ? 'https' : 'http', addr);
  const debug = server.debugAddress;
  const debugUrl = debug ? urlOf('http', debug) : undefined;
  if (p.json) printJson({ url, address: addr.address, port: addr.port, data: config.dataDir, storage: config.storage ?? 'data', metadata: config.metadata ? 'postgres' : 'sqlite', pid: process.pid, ...(debugUrl ? { debugUrl } : {}) });
  else printLine(`berth registry listening on ${url}, data in ${config.dataDir}${debugUrl ? `; /metrics and /healthz on ${debugUrl}` : ''}`);
  let gcTimer: NodeJS.Timeout | undefined;
  const gcInterval = num(p, 'gc-interval');
  if (gcInterval) {
    gcTimer = setInterval(() => {
      collectGarbage(registry.meta, registry.blobs, registry.digestLocks, { dryRun: false, ...config.gc })
        .then((r) => {
          if (r.manifests.length + r.blobs.length + r.orphans.length > 0) {
            registry.invalidateManifests();
            server.logger.info('garbage collected', { manifests: r.manifests.length, blobs: r.blobs.length + r.orphans.length, bytes: r.bytesFreed });
          }
        })
        .catch((err: Error) => server.logger.info('garbage collection failed', { error: err.message }));
    }, gcInterval * 1000);
    gcTimer.unref();
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      server.logger.info(`received ${signal}: finishing requests in flight and stopping`);
      clearInterval(gcTimer);
      removeServePid(config.dataDir);
      server.close().then(resolve, (err: Error) => {
        process.stderr.write(`berth: shutdown failed: ${err.message}\n`);
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

const REGISTRY_USAGE = `Usage: berth registry gc [--dry-run] [--delete-untagged] [--grace SECONDS] [--force] [--data DIR] [--config FILE]
       berth registry verify [--data DIR] [--config FILE]
       berth registry migrate --to-storage s3://… --to-metadata postgres://… [--data DIR] [--force]

gc removes blobs no manifest references (and, with --delete-untagged, manifests no tag, index or
subject reaches), keeping anything linked or pushed within the grace period (default 3600 s).
--dry-run prints what would go. While "berth serve" runs on the same data, gc refuses to delete
(unless --force): use "berth serve --gc-interval SECONDS", which collects under the server's locks.
verify checks every blob against its digest and size, and every manifest reference.
migrate copies the registry (blobs hashed on the way, manifests with their tags) into S3 and
PostgreSQL and verifies the copy; run it again to resume. Stop "berth serve" on the source first.

Examples:
  berth registry gc --dry-run
  berth registry verify --data /srv/registry
  berth registry migrate --data /srv/registry --to-storage 's3://reg?endpoint=http://s3:7480' --to-metadata postgres://berth@db/reg
`;

async function registryCommand(p: ParsedCommand): Promise<number> {
  const [sub] = p.positionals;
  if (sub !== 'gc' && sub !== 'verify' && sub !== 'migrate') throw new BerthError('USAGE', `berth registry: expected "gc", "verify" or "migrate"\n\n${REGISTRY_USAGE}`);
  const config = loadConfig(p);
  // With shared metadata the locks hold across processes: gc may run beside the servers.
  const serving = config.metadata ? undefined : runningServer(config.dataDir);
  if (sub === 'migrate') {
    if (serving !== undefined && !flag(p, 'force')) {
      throw new BerthError('USAGE', `berth serve (pid ${serving}) is using ${config.dataDir}: stop it before migrating (or --force if that server is gone)`);
    }
    return migrateCommand(p, config);
  }
  if (sub === 'gc' && serving !== undefined && !flag(p, 'dry-run') && !flag(p, 'force')) {
    throw new BerthError(
      'USAGE',
      `berth serve (pid ${serving}) is using ${config.dataDir}: collect inside it with "berth serve --gc-interval SECONDS", or use --dry-run (or --force if that server is gone)`,
    );
  }
  const registry = await openRegistry({ ...config, auth: { realm: config.auth.realm } });
  try {
    if (sub === 'verify') {
      const { checked, problems } = await verifyRegistry(registry.meta, registry.blobs);
      if (p.json) printJson({ checked, problems });
      else {
        for (const pr of problems) printLine(`${pr.kind}: ${pr.message}`);
        printLine(`checked ${checked} blobs and manifests: ${problems.length === 0 ? 'all good' : `${problems.length} problem(s)`}`);
      }
      return problems.length === 0 ? 0 : 1;
    }
    const grace = num(p, 'grace');
    const report = await collectGarbage(registry.meta, registry.blobs, registry.digestLocks, {
      dryRun: flag(p, 'dry-run'),
      deleteUntagged: flag(p, 'delete-untagged') || config.gc.deleteUntagged,
      graceMs: grace !== undefined ? grace * 1000 : config.gc.graceMs,
    });
    if (p.json) printJson(report);
    else {
      const verb = flag(p, 'dry-run') ? 'would remove' : 'removed';
      for (const m of report.manifests) printLine(`${verb} manifest ${m.repo}@${m.digest}`);
      for (const b of report.blobs) printLine(`${verb} blob ${b.digest} (${b.size} bytes)`);
      for (const o of report.orphans) printLine(`${verb} orphan file ${o}`);
      printLine(`${verb} ${report.manifests.length} manifest(s), ${report.blobs.length + report.orphans.length} blob(s), ${report.bytesFreed} bytes`);
    }
    return 0;
  } finally {
    await registry.close();
  }
}

async function migrateCommand(p: ParsedCommand, config: RegistryConfig): Promise<number> {
  const storage = str(p, 'to-storage');
  const metadata = str(p, 'to-metadata');
  if (!storage || !metadata) throw new BerthError('USAGE', `berth registry migrate needs --to-storage s3://… and --to-metadata postgres://…\n\n${REGISTRY_USAGE}`);
  const target = buildConfig(defaultConfig(process.env), { storage, metadata });
  const fromMeta = await openMetadata(config);
  try {
    const from = { meta: fromMeta, blobs: await openBlobStore(config, fromMeta) };
    const toMeta = await openMetadata(target);
    try {
      const to = { meta: toMeta, blobs: await openBlobStore(target, toMeta) };
      const report = await migrateRegistry(from, to, p.json ? undefined : (line) => printLine(`copied ${line}`)).finally(() => to.blobs.close?.());
      if (p.json) printJson(report);
      else {
        for (const pr of report.problems) printLine(`${pr.kind}: ${pr.message}`);
        printLine(
          `${report.blobsCopied} blob(s) copied (${report.bytesCopied} bytes), ${report.blobsPresent} already there, ${report.manifests} manifest(s), ${report.tags} tag(s): ${report.problems.length === 0 ? 'verified' : `${report.problems.length} problem(s)`}`,
        );
      }
      return report.problems.length === 0 ? 0 : 1;
    } finally {
      await toMeta.close();
    }
  } finally {
    await fromMeta.close();
  }
}

export const commands: CommandGroup = {
  serve: { summary: 'Serve an OCI registry (distribution-spec) from a local directory', usage: SERVE_USAGE, options: SERVE_OPTIONS, run: serve },
  registry: {
    summary: 'Registry maintenance: gc (garbage collection), verify (check every blob), migrate (to S3 and PostgreSQL)',
    usage: REGISTRY_USAGE,
    options: { ...CONFIG_OPTIONS, 'dry-run': { type: 'boolean' }, 'delete-untagged': { type: 'boolean' }, grace: { type: 'string' }, force: { type: 'boolean' }, 'to-storage': { type: 'string' }, 'to-metadata': { type: 'string' } },
    run: registryCommand,
  },
};
