// The records EBS commands make: the volume header of a snapshot, the snapshot record ebs-put
// prints, and the plan of a dry run (docs/FORMAT.md specifies each field).
import { UsageError } from './errors';
import { GIB } from './layout';
import { BLOCK_SIZE, FORMAT_VERSION, type Rec, type VolumeRec } from './records';

/** Blocks in a volume of `gib` GiB. */
export const blocksOfGiB = (gib: number) => gib * (GIB / BLOCK_SIZE);

export function snapshotHeader(snapshotId: string, volumeSizeGiB: number, encrypted: boolean | undefined): VolumeRec {
  const rec: VolumeRec = {
    type: 'volume',
    format: FORMAT_VERSION,
    source: snapshotId,
    snapshotId,
    size: volumeSizeGiB * GIB,
    blocks: blocksOfGiB(volumeSizeGiB),
    blockSize: BLOCK_SIZE,
  };
  if (encrypted !== undefined) rec.encrypted = encrypted;
  return rec;
}

export interface Plan {
  snapshotId?: string;
  parent?: string;
  /** Calls a real run would make, by operation. */
  calls: Record<string, number>;
  blocks?: number;
  bytes?: number;
  /** The figures are upper bounds (listings: pages can hold fewer blocks than the most). */
  upTo?: boolean;
}

export function planRecord(command: string, plan: Plan): Rec {
  const rec: Rec = { type: 'plan', command, ...plan };
  if (!plan.upTo) delete rec.upTo;
  return rec;
}

// snap- and 8 or 17 hexadecimal digits; a looser pattern still reaches AWS, which decides.
const SNAPSHOT_ID = /^snap-[0-9a-f]{8,}$/i;

/** A snapshot id from the command line, kept as the string it is. */
export function snapshotIdArg(value: unknown, name: string): string {
  const id = String(value ?? '');
  if (!SNAPSHOT_ID.test(id)) throw new UsageError(`${name} must be a snapshot id (snap-0123456789abcdef0), got ${JSON.stringify(id)}`);
  return id;
}
