/**
 * Image references `[registry/]repository[:tag][@digest]`: the distribution-spec `<name>` and
 * tag grammars, with the Docker Hub defaults docker applies (docker.io, library/, latest), as
 * github.com/distribution/reference's ParseNormalizedNamed does.
 */
import { BerthError } from '../base/errors.js';
import { parseDigest } from '../base/digest.js';

export interface Reference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Repository `<name>` inside the registry, e.g. `library/busybox`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';
const LEGACY_DOCKER_HUB = 'index.docker.io';
/** The host that actually serves Docker Hub's registry API. */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const OFFICIAL_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
/** distribution-spec: clients commonly limit registry host + '/' + name to 255 characters. */
export const NAME_TOTAL_LENGTH_MAX = 255;

// distribution-spec spec.md "Pulling manifests":
//   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const PATH_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
export const NAME_REGEXP = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
// distribution-spec: a tag MUST be at most 128 characters and match this.
export const TAG_REGEXP = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// distribution/reference regexp.go: domain name components, IPv6 in brackets, optional port.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
export const REGISTRY_REGEXP = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const HEX_ID = /^[a-f0-9]{64}$/;

/** Throws NAME_INVALID unless `name` is a valid repository `<name>` (and, with `registry`, the pair fits 255 characters). */
export function validateRepositoryName(name: string, registry?: string): void {
  if (typeof name !== 'string' || name === '') {
    throw new BerthError('NAME_INVALID', 'repository name is empty: expected e.g. library/busybox');
  }
  if (!NAME_REGEXP.test(name)) {
    const hint =
      name.toLowerCase() !== name
        ? 'it must be lowercase'
        : 'each /-separated component must be lowercase letters and digits, separated by ".", "_", "__" or "-"';
    throw new BerthError('NAME_INVALID', `invalid repository name ${JSON.stringify(name)}: ${hint}`);
  }
  const total = registry === undefined ? name.length : registry.length + 1 + name.length;
  if (total > NAME_TOTAL_LENGTH_MAX) {
    throw new BerthError(
      'NAME_INVALID',
      `repository name ${JSON.stringify(name)} is too long: ${registry === undefined ? 'the name' : 'registry + "/" + name'} has ${total} characters, at most ${NAME_TOTAL_LENGTH_MAX} are portable`,
    );
  }
}

/** Throws TAG_INVALID unless `tag` matches [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. */
export function validateTag(tag: string): void {
  if (typeof tag !== 'string' || !TAG_REGEXP.test(tag)) {
    const why =
      typeof tag !== 'string' || tag === ''
        ? 'it is empty'
        : tag.length > 128
          ? `it has ${tag.length} characters, at most 128 are allowed`
          : 'it must start with a letter, digit or "_" and contain only letters, digits, "_", "." and "-"';
    throw new BerthError('TAG_INVALID', `invalid tag ${JSON.stringify(tag)}: ${why}`);
  }
}

function invalid(s: string, why: string): BerthError {
  return new BerthError('REFERENCE_INVALID', `invalid reference ${JSON.stringify(s)}: ${why}`);
}

/** distribution/reference splitDockerDomain: the first component is a registry if it looks like a host. */
function splitRegistry(name: string): { registry: string; path: string } {
  const slash = name.indexOf('/');
  let registry: string;
  let path: string;
  if (slash === -1) {
    registry = DOCKER_HUB;
    path = name;
  } else {
    const first = name.slice(0, slash);
    const looksLikeHost = /[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first;
    if (looksLikeHost) {
      registry = first;
      path = name.slice(slash + 1);
    } else {
      registry = DOCKER_HUB;
      path = name;
    }
  }
  if (registry === LEGACY_DOCKER_HUB) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !path.includes('/')) path = OFFICIAL_PREFIX + path;
  return { registry, path };
}

/**
 * Parses a reference the way docker does: `busybox` is `docker.io/library/busybox:latest`;
 * a reference with a digest and no tag keeps no tag. Throws REFERENCE_INVALID naming the bad part.
 */
export function parseReference(s: string): Reference {
  if (typeof s !== 'string' || s === '') throw invalid(String(s), 'it is empty; expected [registry/]repository[:tag][@digest]');
  if (/\s/.test(s)) throw invalid(s, 'it contains whitespace');
  if (HEX_ID.test(s)) {
    throw invalid(s, 'a 64-character hexadecimal string is an image ID, not a repository name (use repository@sha256:<hex>)');
  }
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      parseDigest(digest);
    } catch (err) {
      throw new BerthError('REFERENCE_INVALID', `invalid reference ${JSON.stringify(s)}: bad digest: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_REGEXP.test(tag)) {
      throw invalid(s, `bad tag ${JSON.stringify(tag)}: a tag is 1 to 128 of [a-zA-Z0-9_.-] and cannot start with "." or "-"`);
    }
  }
  if (rest === '') throw invalid(s, 'the repository name is missing');
  const { registry, path } = splitRegistry(rest);
  if (!REGISTRY_REGEXP.test(registry)) {
    throw invalid(s, `bad registry ${JSON.stringify(registry)}: expected a host name or [IPv6 address], with an optional :port`);
  }
  if (path === '') throw invalid(s, 'the repository name is missing after the registry');
  if (path.toLowerCase() !== path) throw invalid(s, `repository name ${JSON.stringify(path)} must be lowercase`);
  if (!NAME_REGEXP.test(path)) {
    throw invalid(
      s,
      `bad repository name ${JSON.stringify(path)}: each /-separated component must be lowercase letters and digits, separated by ".", "_", "__" or "-"`,
    );
  }
  const total = registry.length + 1 + path.length;
  if (total > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(s, `the name ${registry}/${path} has ${total} characters; at most ${NAME_TOTAL_LENGTH_MAX} are allowed`);
  }
  const ref: Reference = { registry, repository: path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** The canonical full form: `docker.io/library/busybox:latest`, `host:5000/a/b@sha256:…`. */
export function formatReference(r: Reference): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** The short form docker prints: `busybox:latest`, `user/app:1`, other registries in full. */
export function familiarReference(r: Reference): string {
  let name = `${r.registry}/${r.repository}`;
  if (r.registry === DOCKER_HUB) {
    name = r.repository;
    if (name.startsWith(OFFICIAL_PREFIX) && !name.slice(OFFICIAL_PREFIX.length).includes('/')) {
      name = name.slice(OFFICIAL_PREFIX.length);
    }
  }
  return `${name}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** What to ask the registry for: the digest when there is one (it pins the content), else the tag. */
export function referenceTarget(r: Reference): string {
  return r.digest ?? r.tag ?? DEFAULT_TAG;
}

/** The host to contact for a registry name (Docker Hub's API is not served at docker.io). */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB || registry === LEGACY_DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}
