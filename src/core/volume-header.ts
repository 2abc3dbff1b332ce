import { BLOCK_SIZE, type VolumeRec } from './records';

/**
 * Tracks the current `volume` header of a stream. A source that learns the size only at the
 * end (reading stdin) repeats the header after the last block; that record completes the header
 * it follows instead of starting a new volume.
 */
export class VolumeHeader {
  current: VolumeRec | undefined;
  /** Distinct volumes seen (repeated headers not counted). */
  volumes = 0;

  /** Takes a `volume` record; returns true when it starts a new volume. */
  take(rec: VolumeRec): boolean {
    const cur = this.current;
    if (cur && cur.size === undefined && cur.source === rec.source && cur.snapshotId === rec.snapshotId) {
      this.current = { ...cur, ...rec };
      return false;
    }
    this.current = { ...rec };
    this.volumes++;
    return true;
  }

  get blockSize(): number {
    const size = this.current?.blockSize;
    return typeof size === 'number' && Number.isSafeInteger(size) && size > 0 ? size : BLOCK_SIZE;
  }

  /** The block count of the current volume, from `blocks` or else `size`; undefined if unknown. */
  get totalBlocks(): number | undefined {
    const cur = this.current;
    if (!cur) return undefined;
    if (typeof cur.blocks === 'number' && cur.blocks >= 0) return cur.blocks;
    if (typeof cur.size === 'number' && cur.size >= 0) return Math.ceil(cur.size / this.blockSize);
    return undefined;
  }
}
