import { BerthError } from '../errors.js';
import type { LinuxResources } from './spec-types.js';

export interface CgroupManager {
  /** Controller name (or 'unified' for the cgroup2 hierarchy) → absolute cgroup directory. */
  readonly paths: Record<string, string>;
  create(): Promise<void>;
  apply(resources: LinuxResources | undefined): Promise<void>;
  addProcess(pid: number): Promise<void>;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  pids(): Promise<number[]>;
  killAll(signal: NodeJS.Signals | number): Promise<void>;
  destroy(): Promise<void>;
}

export function cgroupManagerFor(cgroupsPath: string | undefined, containerId: string): CgroupManager {
  void cgroupsPath;
  throw new BerthError('UNSUPPORTED', `cgroup manager not finished yet (container ${containerId})`);
}
