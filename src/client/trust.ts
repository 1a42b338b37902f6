/**
 * Whom a registry's TLS connection trusts and which client certificate it shows, as docker,
 * podman and skopeo decide it:
 * - the system's CA bundle (as Go reads it: $SSL_CERT_FILE or the distribution's bundle, plus
 *   $SSL_CERT_DIR), on top of the CAs built into Node, so that a CA installed with
 *   update-ca-certificates is trusted as docker trusts it;
 * - per registry, a certs.d directory named after the host (`host:port`): every `*.crt` is a CA,
 *   every `*.cert` with its `*.key` a client certificate (mutual TLS). Looked up under
 *   /etc/containers/certs.d, /etc/docker/certs.d and $XDG_CONFIG_HOME/containers/certs.d; a
 *   `--cert-dir` (skopeo's and podman's flag) is used instead of them.
 * Contexts are built once per host and reused by every connection: parsing CA certificates is
 * slow in Node (~0.3 ms each), so only those not already among Node's roots are added.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, type Dirent } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type * as TlsModule from 'node:tls';
import { BerthError } from '../base/errors.js';
import { lazyRequire } from '../base/lazy-require.js';

const tls = lazyRequire<typeof TlsModule>('node:tls');

export interface TrustOptions {
  /** Use only this directory's *.crt / *.cert / *.key for every registry (`--cert-dir`). */
  certDir?: string;
  /** Where per-host certs.d directories are looked up (default: podman's and docker's places). */
  certsDirRoots?: string[];
  /** Read for SSL_CERT_FILE, SSL_CERT_DIR and XDG_CONFIG_HOME (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Go's list (crypto/x509/root_linux.go): the first that exists is the system bundle. */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/ca-bundle.pem',
  '/etc/pki/tls/cacert.pem',
  '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem',
  '/etc/ssl/cert.pem',
];

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function defaultCertsDirRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const config = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return ['/etc/containers/certs.d', '/etc/docker/certs.d', join(config, 'containers', 'certs.d')];
}

/** What one registry's connections present and trust, read from its certs.d directory. */
export interface HostCerts {
  /** PEM CA certificates (*.crt). */
  cas: string[];
  /** The client certificate and its key (the first *.cert with a *.key), for mutual TLS. */
  client?: { cert: string; key: string; file: string };
}

/** Reads a certs.d directory; an absent one is empty. A *.cert without its *.key (or the reverse) is an error, as in docker. */
export function readCertsDir(dir: string): HostCerts {
  const out: HostCerts = { cas: [] };
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return out;
    throw err;
  }
  for (const name of names) {
    const path = join(dir, name);
    if (name.endsWith('.crt')) {
      out.cas.push(...pemCertificates(readFileSync(path, 'utf8'), path));
    } else if (name.endsWith('.cert')) {
      const keyName = `${name.slice(0, -'.cert'.length)}.key`;
      if (!names.includes(keyName)) throw new BerthError('USAGE', `client certificate ${path} has no key: put it in ${join(dir, keyName)}`);
      out.client ??= { cert: readFileSync(path, 'utf8'), key: readFileSync(join(dir, keyName), 'utf8'), file: path };
    } else if (name.endsWith('.key')) {
      const certName = `${name.slice(0, -'.key'.length)}.cert`;
      if (!names.includes(certName)) throw new BerthError('USAGE', `key ${path} has no client certificate: put it in ${join(dir, certName)}`);
    }
  }
  return out;
}

function pemCertificates(text: string, path: string): string[] {
  const pems = text.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw new BerthError('USAGE', `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return pems;
}

/** The system's CA certificates as Go finds them ($SSL_CERT_FILE or the first bundle, then $SSL_CERT_DIR). */
export function systemCaPems(env: NodeJS.ProcessEnv = process.env): string[] {
  const pems: string[] = [];
  const file = env.SSL_CERT_FILE || SYSTEM_BUNDLES.find((f) => existsSync(f));
  if (file) {
    try {
      pems.push(...(readFileSync(file, 'utf8').match(PEM_CERT) ?? []));
    } catch {
      /* unreadable: Node's own roots remain */
    }
  }
  // Go also reads /etc/ssl/certs and /etc/pki/tls/certs when SSL_CERT_DIR is unset: some 300
  // files on every start, for certificates update-ca-certificates has put in the bundle anyway.
  for (const dir of (env.SSL_CERT_DIR ?? '').split(':').filter(Boolean)) {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      try {
        // As Go: a symlink to another entry of the same directory (c_rehash's hash names) is read once.
        if (entry.isSymbolicLink() && !readlinkSync(path).includes('/')) continue;
        if (statSync(path).isFile()) pems.push(...(readFileSync(path, 'utf8').match(PEM_CERT) ?? []));
      } catch {
        /* unreadable entry: skipped, as Go does */
      }
    }
  }
  return pems;
}

/** A certificate's identity for de-duplication: the end of its signature (unique per certificate; cheap to take). */
const tail = (pem: string) => pem.slice(-200).replace(/\s+/g, '').slice(-100);

/** TLS contexts per registry host. */
export class RegistryTrust {
  private readonly contexts = new Map<string, TlsModule.SecureContext>();
  /** The context of hosts without certs.d entries (most of them): Node's roots and the system's. */
  private shared: TlsModule.SecureContext | undefined;
  private extraRoots: string[] | undefined;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: TrustOptions = {}) {
    this.env = options.env ?? process.env;
  }

  /** The certs.d directories for `host` (host[:port]), most specific first. */
  certsDirsFor(host: string): string[] {
    if (this.options.certDir) return [this.options.certDir];
    return (this.options.certsDirRoots ?? defaultCertsDirRoots(this.env)).map((root) => join(root, host));
  }

  /** The context every TLS connection to `host` uses (built at the first). */
  contextFor(host: string): TlsModule.SecureContext {
    let ctx = this.contexts.get(host);
    if (!ctx) {
      const certs: HostCerts = { cas: [] };
      for (const dir of this.certsDirsFor(host)) {
        const found = readCertsDir(dir);
        certs.cas.push(...found.cas);
        certs.client ??= found.client;
      }
      ctx = certs.cas.length || certs.client ? this.build(host, certs) : (this.shared ??= this.build(host, certs));
      this.contexts.set(host, ctx);
    }
    return ctx;
  }

  private build(host: string, certs: HostCerts): TlsModule.SecureContext {
    let ctx: TlsModule.SecureContext;
    try {
      ctx = tls().createSecureContext(certs.client ? { cert: certs.client.cert, key: certs.client.key } : {});
    } catch (err) {
      throw new BerthError('USAGE', `client certificate ${certs.client?.file} for ${host} cannot be used: ${(err as Error).message}`, { cause: err });
    }
    // Node's own roots stay; the system's others and this host's CAs are added to them.
    for (const pem of this.systemExtras()) {
      try {
        ctx.context.addCACert(pem);
      } catch {
        /* a damaged entry in the system bundle is skipped, as Go skips it */
      }
    }
    for (const pem of certs.cas) {
      try {
        ctx.context.addCACert(pem);
      } catch (err) {
        throw new BerthError('USAGE', `a CA certificate in ${this.certsDirsFor(host).join(' or ')} cannot be read: ${(err as Error).message}`, { cause: err });
      }
    }
    return ctx;
  }

  /** System CA certificates that Node's built-in roots do not already hold. */
  private systemExtras(): string[] {
    if (!this.extraRoots) {
      const known = new Set(tls().rootCertificates.map(tail));
      this.extraRoots = [];
      for (const pem of systemCaPems(this.env)) {
        const key = tail(pem);
        if (known.has(key)) continue;
        known.add(key);
        this.extraRoots.push(pem);
      }
    }
    return this.extraRoots;
  }
}
