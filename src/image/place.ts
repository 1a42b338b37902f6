/** Layout places named as skopeo names them: `oci:DIR[:REF]` (REF a tag or a digest; also `oci:DIR@DIGEST`). */
import { BerthError } from '../base/errors.js';
import { isValidDigest } from '../base/digest.js';

export interface LayoutPlace {
  dir: string;
  ref?: string;
}

const DIGEST_SUFFIX = /^(.+)@([a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+)$/;

export function isLayoutPlace(s: string): boolean {
  return s.startsWith('oci:');
}

/** Parses `oci:DIR[:REF]`; the directory is what precedes the first ':' after `oci:` (as skopeo does). */
export function parseLayoutPlace(s: string, opts: { ref?: 'required' | 'forbidden' | 'optional' } = {}): LayoutPlace {
  if (!isLayoutPlace(s)) {
    throw new BerthError('USAGE', `${JSON.stringify(s)} is not a layout place: write oci:DIR or oci:DIR:REF (e.g. oci:./images:v1)`);
  }
  const rest = s.slice(4);
  let dir: string;
  let ref: string | undefined;
  const at = DIGEST_SUFFIX.exec(rest);
  if (at && isValidDigest(at[2])) {
    dir = at[1]!;
    ref = at[2];
  } else {
    const colon = rest.indexOf(':');
    dir = colon < 0 ? rest : rest.slice(0, colon);
    ref = colon < 0 ? undefined : rest.slice(colon + 1);
  }
  if (dir === '') throw new BerthError('USAGE', `${JSON.stringify(s)} names no directory: write oci:DIR[:REF]`);
  if (ref === '') ref = undefined;
  const want = opts.ref ?? 'optional';
  if (want === 'required' && ref === undefined) {
    throw new BerthError('USAGE', `${JSON.stringify(s)} needs a reference: write oci:${dir}:TAG or oci:${dir}@sha256:…`);
  }
  if (want === 'forbidden' && ref !== undefined) {
    throw new BerthError('USAGE', `${JSON.stringify(s)}: this command takes a whole layout, write oci:${dir} without a reference`);
  }
  return ref === undefined ? { dir } : { dir, ref };
}
