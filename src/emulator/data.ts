// The bytes of one block of a snapshot's merged view, with its checksum, computed as cheaply as
// possible: synthetic blocks made and hashed on worker threads into pooled buffers, each
// synthetic checksum hashed once.
import { createHash } from 'node:crypto';
import { BlockWorkers } from './block-workers';
import { Recipe } from './block-worker';
import { BLOCK_SIZE } from './limits';
import { Registry, Snapshot } from './state';
import { isZero } from './synthetic';
import { chain, sourceOf } from './view';

export interface BlockData {
  data: Buffer;
  checksum: string;
  /** Gives the buffer back once the response no longer needs it. */
  release(): void;
}

const ZERO = Buffer.alloc(BLOCK_SIZE);
const ZERO_SHA = createHash('sha256').update(ZERO).digest('base64');
const noop = () => {};

/** Checksums of synthetic and noise blocks, so a re-read costs no hashing. */
const checksumCache = new Map<string, string>();
const CACHE_MAX = 1 << 18;

async function synthesize(workers: BlockWorkers, recipe: Recipe, index: number, cacheKey: string): Promise<BlockData> {
  const cached = checksumCache.get(cacheKey);
  const made = await workers.synthesize(recipe, index, cached === undefined);
  const checksum = cached ?? made.checksum!;
  if (cached === undefined) {
    if (checksumCache.size >= CACHE_MAX) checksumCache.delete(checksumCache.keys().next().value as string);
    checksumCache.set(cacheKey, checksum);
  }
  return { data: made.data, checksum, release: () => workers.give(made.data) };
}

export async function readBlock(reg: Registry, workers: BlockWorkers, snap: Snapshot, index: number): Promise<BlockData> {
  const source = sourceOf(reg, chain(reg, snap), index);
  if (!source) {
    if (!snap.encrypted) return { data: ZERO, checksum: ZERO_SHA, release: noop };
    // An encrypted snapshot's unwritten blocks decrypt to noise, not zeros.
    return synthesize(workers, { randomKey: `unwritten:${snap.id}` }, index, `u:${snap.id}:${index}`);
  }
  const spec = source.synthetic;
  if (spec) {
    if (isZero(spec, index)) return { data: ZERO, checksum: ZERO_SHA, release: noop };
    if (spec.pattern === 'random') return synthesize(workers, { randomKey: `synthetic:${spec.seed}` }, index, `r:${spec.seed}:${index}`);
    // isZero() covers the pattern "zeros".
    return synthesize(workers, { pattern: spec.pattern as Exclude<typeof spec.pattern, 'random' | 'zeros'> }, index, `${spec.pattern}:${index}`);
  }
  const sha = reg.blocks.index(source.id).get(index)!;
  const scratch = workers.take();
  const data = reg.blocks.read(source.id, index, scratch);
  const release = () => workers.give(scratch);
  // The memory store hands out the stored block itself: the scratch buffer goes straight back.
  if (data !== scratch) release();
  return { data, checksum: sha.toString('base64'), release: data === scratch ? release : noop };
}
