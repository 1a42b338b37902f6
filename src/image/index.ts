/** The image-spec data model: digests, media types, documents, validation, platforms, references. */
export * from '../base/digest.js';
export * from '../base/media-types.js';
export * from '../base/types.js';
export * from './formats.js';
export * from './json.js';
export * from './validate.js';
export * from './platform.js';
export * from './reference.js';
export * from './docker.js';
export * from './annotations.js';
