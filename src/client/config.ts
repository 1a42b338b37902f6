/**
 * Which registries are reached over plain HTTP (or HTTPS without verification).
 * Loopback hosts always are; others when marked insecure by flag (`--insecure`,
 * `--tls-verify=false`), by `BERTH_INSECURE_REGISTRIES=host[:port],…`, or in the
 * config file `$XDG_CONFIG_HOME/berth/registries.json` (`{"insecure": ["host:port"]}`).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export function registriesConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'berth', 'registries.json');
}

/** The insecure registries named by the environment and the config file. */
export function configuredInsecureRegistries(env: NodeJS.ProcessEnv = process.env): string[] {
  const out = (env.BERTH_INSECURE_REGISTRIES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  try {
    const parsed = JSON.parse(readFileSync(registriesConfigPath(env), 'utf8')) as { insecure?: unknown };
    if (Array.isArray(parsed.insecure)) out.push(...parsed.insecure.filter((s): s is string => typeof s === 'string'));
  } catch {
    /* no config file: nothing marked */
  }
  return out;
}

/** The host the registry API is served from (Docker Hub's API is not on docker.io itself). */
export { registryApiHost as apiHost } from '../image/reference.js';
