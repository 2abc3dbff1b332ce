// The header of a Flexible Snapshot Proxy volume, which keeps no header object: the snapshot id
// and the size in GiB come from the keys' folder `{snapshotId}.{GiB}`, or from --snapshot-id
// and --size, or from a "volume" record before the chunks.
import type { Context } from './command';
import { UsageError } from './errors';
import { gibOf, parseFspFolder } from './layout';
import { BLOCK_SIZE, FORMAT_VERSION, type ObjectRec, type VolumeRec } from './records';
import { badRecord } from './stage';

/**
 * The volume record for the chunk `rec` (key `key`, in `folder`), or undefined when a volume
 * record came first (straight from zstd-chunk), after checking that the keys agree with it.
 */
export function fspHeader(
  ctx: Context,
  opts: { size?: number; snapshotId?: string },
  current: VolumeRec | undefined,
  rec: ObjectRec,
  key: string,
  folder: string,
): VolumeRec | undefined {
  const named = folder ? parseFspFolder(folder) : null;
  if (folder && !named) throw badRecord(ctx, rec, `key ${JSON.stringify(key)}: the folder ${JSON.stringify(folder)} is not {snapshotId}.{GiB}`);
  if (!named && opts.snapshotId === undefined && !current) {
    throw badRecord(ctx, rec, `key ${JSON.stringify(key)} has no {snapshotId}.{GiB}/ folder to give the volume's size: give --snapshot-id and --size`);
  }
  const snapshotId = opts.snapshotId ?? named?.snapshotId ?? (current?.snapshotId as string | undefined);
  if (named && opts.snapshotId !== undefined && named.snapshotId !== opts.snapshotId) {
    throw new UsageError(`--snapshot-id ${opts.snapshotId} differs from ${named.snapshotId}, the folder of ${JSON.stringify(key)}`);
  }
  const size = opts.size ?? (named ? named.gib * 2 ** 30 : (current?.size as number | undefined));
  if (size === undefined) throw badRecord(ctx, rec, `the volume's size is not known: give --size`);
  if (named && gibOf(size) !== named.gib) {
    throw new UsageError(`--size ${size} does not round up to ${named.gib} GiB, the size in the folder of ${JSON.stringify(key)}`);
  }
  const header: VolumeRec = { type: 'volume', format: FORMAT_VERSION, source: folder || snapshotId, blockSize: BLOCK_SIZE, size, blocks: Math.ceil(size / BLOCK_SIZE), snapshotId };
  if (current) {
    // Straight from zstd-chunk: the volume record came first, and the keys must agree with it.
    if (named && typeof current.size === 'number' && gibOf(current.size) !== named.gib) {
      throw badRecord(ctx, rec, `key ${JSON.stringify(key)} says ${named.gib} GiB, the volume record ${current.size} bytes`);
    }
    if (opts.size !== undefined && current.size !== opts.size) throw new UsageError(`--size ${opts.size} differs from the volume record's size ${current.size}`);
    return undefined;
  }
  return header;
}
