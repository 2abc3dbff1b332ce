// The frame of one compressed chunk read back: decompressed on a worker thread, its length and
// SHA-256 checked, and turned into the chunk's block records.
import { IntegrityError } from './errors';
import type { BufferPool } from './buffer-pool';
import { BLOCK_SIZE, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type ObjectRec } from './records';
import { FrameError } from './zstd';
import type { ZstdPool } from './zstd-pool';

/** A chunk named by its key, its record kept for messages. */
export interface Chunk {
  rec: ObjectRec;
  firstBlock: number;
  blockCount: number;
  /** The checksum the chunk must have: blocksSha256 (default layout) or rawSha256 (fsp). */
  checksum: string;
}

/**
 * The blocks of a chunk from its frame, decompressed into a buffer of `buffers` (lent to the
 * blocks that carry data); the checksum is rawSha256 in the fsp layout, else blocksSha256.
 * `where` begins messages ("zstd-unchunk: FILE:LINE").
 */
export async function chunkBlocks(pool: ZstdPool, buffers: BufferPool, c: Chunk, frame: Buffer, fsp: boolean, where: string): Promise<BlockRec[]> {
  const rawSize = c.blockCount * BLOCK_SIZE;
  const key = JSON.stringify(c.rec.key);
  const checksumField = fsp ? 'rawSha256' : 'blocksSha256';
  const r = await pool.decompress(frame, rawSize, fsp, buffers.take()).catch((err: Error) => {
    if (err instanceof FrameError) throw new IntegrityError(`${where}: object ${key}: not a valid zstd chunk: ${err.message}`);
    throw err;
  });
  const got = fsp ? r.rawSha256 : r.blocksSha256;
  if (got !== c.checksum) throw new IntegrityError(`${where}: object ${key}: the decompressed chunk's ${checksumField} is ${got}, expected ${c.checksum}`);
  const blocks: BlockRec[] = [];
  for (let i = 0; i < c.blockCount; i++) {
    const sha = r.blockSha256[i];
    const index = c.firstBlock + i;
    if (sha === null) blocks.push({ type: 'block', index, sha256: ZERO_BLOCK_SHA256, zero: true });
    else blocks.push({ type: 'block', index, sha256: sha, [PAYLOAD]: r.raw.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE) });
  }
  buffers.lend(r.raw, r.blockSha256.filter((sha) => sha !== null).length);
  return blocks;
}
