/**
 * The grammars of distribution-spec "Pulling manifests", checked before a name, tag or
 * digest touches storage. (src/image/reference.ts carries the same rules for clients.)
 */
import { parseDigest } from '../image/digest.js';
import { RegistryError } from './errors.js';

// spec.md: <name> MUST match this expression.
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
// spec.md: a tag is at most 128 characters and matches this expression.
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Clients limit host + "/" + name to 255 characters (spec.md implementers note). */
const MAX_NAME_LENGTH = 255;

export function checkName(name: string): string {
  if (name.length > MAX_NAME_LENGTH || !NAME_RE.test(name)) {
    throw new RegistryError(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(name)}: use lowercase path components such as "team/app"`, {
      name,
    });
  }
  return name;
}

export function isTag(ref: string): boolean {
  return TAG_RE.test(ref);
}

export function checkTag(tag: string): string {
  if (!TAG_RE.test(tag)) {
    throw new RegistryError(400, 'TAG_INVALID', `invalid tag ${JSON.stringify(tag)}: at most 128 of [A-Za-z0-9_.-], not starting with "." or "-"`, {
      tag,
    });
  }
  return tag;
}

/** Validates a digest at the boundary; answers 400 DIGEST_INVALID (also for unsupported algorithms). */
export function checkDigest(digest: string): string {
  try {
    parseDigest(digest);
  } catch (err) {
    throw new RegistryError(400, 'DIGEST_INVALID', (err as Error).message, { digest });
  }
  return digest;
}

/** A reference is a digest when it contains ":" (tags cannot). */
export function isDigestReference(ref: string): boolean {
  return ref.includes(':');
}
