/** The image-spec data model as TypeScript types. Validation lives in validate.ts. */
import type { Digest } from './digest.js';

export type Annotations = Record<string, string>;

/** image-index.md "platform" (also used in descriptors of manifests and in configs). */
export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  features?: string[];
}

/** descriptor.md */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Annotations;
  data?: string;
  artifactType?: string;
  platform?: Platform;
}

/** manifest.md (and the Docker schema 2 manifest, which has the same shape without artifact fields). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

/** image-index.md (and the Docker manifest list). */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Annotations;
}

/** config.md "config" object: the execution parameters. */
export interface ExecConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Memory?: number;
  MemorySwap?: number;
  CpuShares?: number;
  Healthcheck?: unknown;
  [other: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  author?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** config.md */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: ExecConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  [other: string]: unknown;
}

/** image-layout.md `oci-layout` file. */
export interface LayoutHeader {
  imageLayoutVersion: string;
}
