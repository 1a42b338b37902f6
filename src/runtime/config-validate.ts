import { BerthError } from '../errors.js';
import type { Spec } from './spec-types.js';

export interface ValidateOptions {
  /** The bundle directory: when given, root.path is resolved against it and must exist. */
  bundleDir?: string;
  /** Also refuse what this host cannot do (namespaces, capabilities, LSMs). */
  checkHost?: boolean;
}

export function validateRuntimeConfig(doc: unknown, opts: ValidateOptions = {}): Spec {
  void opts;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new BerthError('RUNTIME_CONFIG_INVALID', 'config.json: the document must be a JSON object');
  }
  return doc as Spec;
}
