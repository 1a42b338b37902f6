/**
 * `update`: new resource limits for a container's cgroups, as `runc update` sets them (podman
 * update and containerd's CRI resize call it). Only what is given changes; the rest stays.
 */
import { BerthError } from '../base/errors.js';
import { cgroupManagerFor } from './cgroups/manager.js';
import { validateResources } from './spec/validate.js';
import type { LinuxResources } from './spec/types.js';
import { readRecord, statusOf } from './state.js';

export async function updateContainer(root: string, id: string, raw: unknown): Promise<void> {
  const rec = readRecord(root, id);
  const status = statusOf(root, rec);
  if (status === 'stopped') throw new BerthError('CONTAINER_STATE', `cannot update container ${id}: it is stopped`);
  const resources: LinuxResources = validateResources(raw, 'update resources');
  // runc does not update device rules either; refuse them rather than drop them unsaid.
  if (resources.devices !== undefined) {
    throw new BerthError('UNSUPPORTED', `update resources: devices cannot be changed on a created container (runc cannot either); recreate it with the new linux.resources.devices`);
  }
  await cgroupManagerFor(rec.cgroupsPath, id).apply(resources);
}
