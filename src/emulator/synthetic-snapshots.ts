// Adding a completed synthetic snapshot (from --synthetic or the control API).
import { Emulator } from './context';
import { invalid } from './errors';
import { Snapshot } from './state';
import { SyntheticRequest } from './synthetic';

const ID = /^snap-[0-9a-f]{17}$/;

export function addSynthetic(emu: Emulator, request: SyntheticRequest): Snapshot {
  const id = request.id ?? emu.reg.newId();
  if (!ID.test(id)) throw invalid('INVALID_SNAPSHOT_ID', `${JSON.stringify(id)} is not a snapshot id (snap- and 17 lowercase hex digits).`);
  if (emu.reg.snapshots.has(id)) throw invalid('INVALID_SNAPSHOT_ID', `The snapshot ${id} exists already.`);
  let encrypted = emu.encrypted;
  if (request.parent !== undefined) {
    const parent = emu.reg.get(request.parent);
    if (!parent) throw invalid('INVALID_SNAPSHOT_ID', `The parent snapshot ${request.parent} does not exist.`);
    if (parent.status !== 'completed') throw invalid('INVALID_SNAPSHOT_ID', `The parent snapshot ${request.parent} is not completed.`);
    if (request.size < parent.volumeSize) throw invalid('INVALID_VOLUME_SIZE', `size ${request.size} is smaller than the parent's ${parent.volumeSize} GiB.`);
    encrypted ||= parent.encrypted;
  }
  const snap: Snapshot = {
    id,
    volumeSize: request.size,
    parentId: request.parent,
    status: 'completed',
    startTime: Date.now(),
    description: `synthetic ${request.spec.pattern}`,
    encrypted,
    timeoutMinutes: 60,
    progress: 100,
    synthetic: request.spec,
  };
  emu.reg.add(snap);
  return snap;
}
