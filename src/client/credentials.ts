/**
 * Registry credentials, found and stored where docker, podman and skopeo keep them:
 * `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json` (podman), then
 * `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (docker). In each file:
 * `credHelpers[host]`, then `auths[host]` (base64 `auth`, `identitytoken`), then `credsStore`.
 * Helpers run as docker runs them: `docker-credential-NAME get|store|erase` with JSON on stdio.
 */
import type * as ChildProcessModule from 'node:child_process';
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { BerthError } from '../base/errors.js';
import { lazyRequire } from '../base/lazy-require.js';
import { writeFileAtomic } from './atomic.js';

/** node:child_process loads only when a credential helper runs (~5 ms of every start otherwise). */
const childProcess = lazyRequire<typeof ChildProcessModule>('node:child_process');

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's `identitytoken`). */
  identityToken?: string;
}

export interface AuthFileEntry {
  auth?: string;
  identitytoken?: string;
  username?: string;
  password?: string;
}

export interface AuthFile {
  auths?: Record<string, AuthFileEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [other: string]: unknown;
}

/** Docker Hub's credentials live under this historical key. */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** The key a registry host is stored under (docker.io has its legacy URL). */
export function authKey(host: string): string {
  return host === 'docker.io' || host === 'registry-1.docker.io' || host === 'index.docker.io' ? DOCKER_HUB_KEY : host;
}

export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/** Files searched for credentials, in order. */
export function authFilePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json'));
  paths.push(dockerConfigPath(env));
  return paths;
}

/** The file `berth login` writes: $REGISTRY_AUTH_FILE when set (as podman), else docker's config. */
export function defaultLoginFile(env: NodeJS.ProcessEnv = process.env): string {
  return env.REGISTRY_AUTH_FILE || dockerConfigPath(env);
}

export async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as AuthFile;
  } catch (err) {
    throw new BerthError('USAGE', `credentials file ${path} is not valid JSON (${(err as Error).message}): fix or remove it`);
  }
}

/** Finds the entry for a host: exact key, then keys written as URLs (`https://host`, `host/v1/`). */
function findEntry(auths: Record<string, AuthFileEntry> | undefined, host: string): AuthFileEntry | undefined {
  if (!auths) return undefined;
  const key = authKey(host);
  if (auths[key]) return auths[key];
  for (const [k, v] of Object.entries(auths)) {
    const normalized = k.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (normalized === host || (key === DOCKER_HUB_KEY && normalized === 'index.docker.io')) return v;
  }
  return undefined;
}

function decodeEntry(entry: AuthFileEntry, where: string): Credentials | undefined {
  const creds: Credentials = {};
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const sep = decoded.indexOf(':');
    if (sep < 0) throw new BerthError('USAGE', `the "auth" value in ${where} is not base64 of user:password: log in again`);
    creds.username = decoded.slice(0, sep);
    creds.password = decoded.slice(sep + 1);
  } else if (entry.username !== undefined) {
    creds.username = entry.username;
    creds.password = entry.password;
  }
  if (entry.identitytoken) creds.identityToken = entry.identitytoken;
  return creds.username !== undefined || creds.identityToken ? creds : undefined;
}

/** Runs `docker-credential-NAME ACTION` with `input` on stdin and returns stdout. */
export function runCredentialHelper(
  name: string,
  action: 'get' | 'store' | 'erase',
  input: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    return Promise.reject(new BerthError('USAGE', `invalid credential helper name ${JSON.stringify(name)}`));
  }
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(`docker-credential-${name}`, [action], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let errText = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (errText += d.toString()));
    child.on('error', (err) =>
      reject(new BerthError('USAGE', `credential helper docker-credential-${name} could not run (${err.message}): install it or remove it from the config`)),
    );
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else {
        const msg = (out + errText).trim();
        if (action === 'get' && /credentials not found/i.test(msg)) resolve('');
        else reject(new BerthError('USAGE', `docker-credential-${name} ${action} failed (exit ${code}): ${msg}`));
      }
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

async function fromHelper(helper: string, host: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const out = await runCredentialHelper(helper, 'get', authKey(host), env);
  if (!out.trim()) return undefined;
  const parsed = JSON.parse(out) as { Username?: string; Secret?: string };
  if (!parsed.Secret) return undefined;
  // docker: a Username of "<token>" means the secret is an identity (refresh) token.
  if (parsed.Username === '<token>') return { identityToken: parsed.Secret };
  return { username: parsed.Username ?? '', password: parsed.Secret };
}

/** The credentials for a registry host, or undefined for anonymous access. */
export async function findCredentials(host: string, env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  for (const path of authFilePaths(env)) {
    const file = await readAuthFile(path);
    if (!file) continue;
    const helper = file.credHelpers?.[authKey(host)] ?? file.credHelpers?.[host];
    if (helper) {
      const c = await fromHelper(helper, host, env);
      if (c) return c;
    }
    const entry = findEntry(file.auths, host);
    if (entry) {
      const c = decodeEntry(entry, path);
      if (c) return c;
    }
    if (file.credsStore) {
      const c = await fromHelper(file.credsStore, host, env);
      if (c) return c;
    }
  }
  return undefined;
}

/** Stores credentials as `docker login` does: via credsStore/credHelpers when configured, else in `auths`. */
export async function storeCredentials(
  host: string,
  creds: Credentials,
  path: string = defaultLoginFile(),
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = (await readAuthFile(path)) ?? {};
  const key = authKey(host);
  const helper = file.credHelpers?.[key] ?? file.credsStore;
  if (helper) {
    const secret = creds.identityToken ?? creds.password ?? '';
    const username = creds.identityToken ? '<token>' : (creds.username ?? '');
    await runCredentialHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: username, Secret: secret }), env);
    // docker leaves an empty entry so that `docker info` knows about the login.
    file.auths = { ...(file.auths ?? {}), [key]: {} };
  } else {
    const entry: AuthFileEntry = {};
    if (creds.username !== undefined) {
      entry.auth = Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64');
    }
    if (creds.identityToken) entry.identitytoken = creds.identityToken;
    file.auths = { ...(file.auths ?? {}), [key]: entry };
  }
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, JSON.stringify(file, null, '\t') + '\n', 0o600);
  return path;
}

/** Removes credentials for a host from every file that has them; returns the files changed. */
export async function removeCredentials(host: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const changed: string[] = [];
  const key = authKey(host);
  for (const path of authFilePaths(env)) {
    const file = await readAuthFile(path);
    if (!file) continue;
    const helper = file.credHelpers?.[key] ?? file.credsStore;
    let touched = false;
    if (helper) {
      try {
        await runCredentialHelper(helper, 'erase', key, env);
        touched = true;
      } catch {
        /* nothing stored in the helper */
      }
    }
    if (file.auths) {
      for (const k of Object.keys(file.auths)) {
        if (k === key || k.replace(/^https?:\/\//, '').replace(/\/.*$/, '') === host) {
          delete file.auths[k];
          touched = true;
        }
      }
    }
    if (touched) {
      await writeFileAtomic(path, JSON.stringify(file, null, '\t') + '\n', 0o600);
      changed.push(path);
    }
  }
  return changed;
}
