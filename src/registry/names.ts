/**
 * The grammars of distribution-spec "Pulling manifests" (src/image/reference.ts), checked
 * before a name, tag or digest touches storage, answered with the spec's error codes.
 */
import { BerthError } from '../base/errors.js';
import { parseDigest } from '../base/digest.js';
import { TAG_REGEXP, validateRepositoryName, validateTag } from '../image/reference.js';
import { RegistryError } from './errors.js';

export function checkName(name: string): string {
  try {
    validateRepositoryName(name);
  } catch (err) {
    if (err instanceof BerthError) throw new RegistryError(400, 'NAME_INVALID', err.message, { name });
    throw err;
  }
  return name;
}

export function isTag(ref: string): boolean {
  return TAG_REGEXP.test(ref);
}

export function checkTag(tag: string): string {
  try {
    validateTag(tag);
  } catch (err) {
    if (err instanceof BerthError) throw new RegistryError(400, 'TAG_INVALID', err.message, { tag });
    throw err;
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
