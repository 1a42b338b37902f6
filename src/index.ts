/**
 * berth as a library: everything the CLI does, a TypeScript program can do by importing it.
 * The image model is re-exported whole; the other areas export their main entry points
 * (deeper modules remain importable from dist/src/<area>/<module>.js).
 */
export * from './base/errors.js';
export * from './image/index.js';
export type * from './base/target.js';
export { berthVersion } from './base/package.js';

// Image layout, conversion to a runtime bundle, creating images and artifacts.
export { OciLayout } from './image/layout.js';
export { verifyLayout, gcLayout, type LayoutProblem } from './image/layout-verify.js';
export { imageConfigToRuntimeSpec } from './image/runtime-config.js';
export { unpackImage } from './image/unpack.js';
export { createImage, appendLayer, mutateImage } from './image/build.js';
export { createArtifact } from './image/artifact.js';

// Layers: create, diff, apply, compression, tar.
export { writeLayerFromDir, createLayerFile } from './layer/create.js';
export { diffTrees, writeDiffLayer, type Change } from './layer/diff.js';
export type { LayerOptions, LayerResult } from './layer/layer-output.js';
export { applyLayer, type ApplyOptions, type ApplyResult } from './layer/apply.js';
export { unpackLayers, type LayerSource } from './layer/unpack-layers.js';
export { compressStream, decompressStream, decompressorForMediaType } from './layer/compress.js';
export { TarWriter, type TarEntry as TarWriterEntry } from './layer/tar-writer.js';
export { readTar, type TarEntry as TarReaderEntry } from './layer/tar-reader.js';

// Content: copy between any two places.
export { copy, type CopyOptions, type CopyResult } from './content/copy.js';
export { MemoryStore } from './content/memory.js';
export { parsePlace, formatPlace, openSource, openDestination, type Place, type OpenedPlace } from './client/places.js';
export { readAll, fetchBytes, fetchJson } from './base/read.js';

// Registry client.
export { RegistryClient } from './client/registry.js';
export { Repository } from './client/repository.js';
export { findCredentials, storeCredentials, removeCredentials } from './client/credentials.js';

// Local image store.
export { openImageStore, berthRoot } from './engine/store.js';

// Registry server.
export { openRegistry, Registry } from './registry/registry.js';
export { RegistryServer } from './registry/server.js';
export { buildConfig, defaultConfig, type RegistryConfig } from './registry/config.js';
