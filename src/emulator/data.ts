// The bytes of one block of a snapshot's merged view, with its checksum, computed as cheaply as
// possible: pattern blocks written into reused buffers, each synthetic checksum hashed once.
import { createHash } from 'node:crypto';
import { BLOCK_SIZE } from './limits';
import { Registry, Snapshot } from './state';
import { isZero, randomBlock, writePatternBlock } from './synthetic';
import { chain, sourceOf } from './view';

export interface BlockData {
  /** One buffer, or the chunks a block was received in. */
  data: Buffer | Buffer[];
  checksum: string;
  /** Gives the buffer back once the response no longer needs it. */
  release(): void;
}

const ZERO = Buffer.alloc(BLOCK_SIZE);
const ZERO_SHA = createHash('sha256').update(ZERO).digest('base64');
const noop = () => {};

/** Buffers that hold zeros outside the first word of each sector: pattern blocks only. */
const patternPool: Buffer[] = [];
/** Buffers with any content: disk reads. */
const scratchPool: Buffer[] = [];
const POOL_MAX = 256;

function take(pool: Buffer[]): Buffer {
  return pool.pop() ?? Buffer.alloc(BLOCK_SIZE);
}
function giver(pool: Buffer[], buf: Buffer): () => void {
  return () => {
    if (pool.length < POOL_MAX) pool.push(buf);
  };
}

/** Checksums of synthetic and garbage blocks, so a re-read costs no hashing. */
const checksumCache = new Map<string, string>();
const CACHE_MAX = 1 << 18;

function cachedChecksum(key: string, data: Buffer): string {
  let sum = checksumCache.get(key);
  if (sum === undefined) {
    sum = createHash('sha256').update(data).digest('base64');
    if (checksumCache.size >= CACHE_MAX) checksumCache.delete(checksumCache.keys().next().value as string);
    checksumCache.set(key, sum);
  }
  return sum;
}

export function readBlock(reg: Registry, snap: Snapshot, index: number): BlockData {
  const source = sourceOf(reg, chain(reg, snap), index);
  if (!source) {
    if (!snap.encrypted) return { data: ZERO, checksum: ZERO_SHA, release: noop };
    // An encrypted snapshot's unwritten blocks decrypt to noise, not zeros.
    const data = randomBlock(`unwritten:${snap.id}`, index);
    return { data, checksum: cachedChecksum(`u:${snap.id}:${index}`, data), release: noop };
  }
  const spec = source.synthetic;
  if (spec) {
    if (isZero(spec, index)) return { data: ZERO, checksum: ZERO_SHA, release: noop };
    if (spec.pattern === 'random') {
      const data = randomBlock(`synthetic:${spec.seed}`, index);
      return { data, checksum: cachedChecksum(`r:${spec.seed}:${index}`, data), release: noop };
    }
    const data = take(patternPool);
    writePatternBlock(spec.pattern, index, data);
    return { data, checksum: cachedChecksum(`${spec.pattern}:${index}`, data), release: giver(patternPool, data) };
  }
  const sha = reg.blocks.index(source.id).get(index)!;
  const scratch = take(scratchPool);
  const data = reg.blocks.read(source.id, index, scratch);
  const release = giver(scratchPool, scratch);
  // The memory store hands out the stored block itself: the scratch buffer goes straight back.
  if (data !== scratch) release();
  return { data, checksum: sha.toString('base64'), release: data === scratch ? release : noop };
}
