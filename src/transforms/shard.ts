import { command, EXIT_STATUS_TEXT, intFlag } from '../core/command';
import { UsageError } from '../core/errors';
import { fnv1a32 } from '../core/fnv';
import { isBlockIndex } from '../core/journal';
import { badRecord, transform } from '../core/stage';
import type { Rec } from '../core/records';

const USAGE = `Usage: shard -n N -i I [FILE|-]

Keeps the records of shard I (counted from 0) of N, so that N processes can share one job:
each runs the same pipeline with its own -i, and together they cover every record once.

The assignment is fixed and will not change between versions:
  block    by groups of 64 blocks: shard = floor(index / 64) mod N, so a compressed chunk
           of up to 64 blocks (zstd-chunk) never straddles two shards
  object   by key: shard = FNV-1a 32-bit hash of the key's UTF-8 bytes mod N
           (offset basis 2166136261, prime 16777619)
Volume headers and records of other types go to every shard.

Shard only work whose outputs do not depend on each other: copying objects (s3-get |
s3-put), or chunking into the fsp layout, which has no index object. Do not shard a
default-layout zstd-chunk: each shard's zstd-chunk writes its own volume.json, counting only
its own chunks, to the same key; whichever finishes last wins, and a restore refuses the
store (status 5). zstd-chunk already compresses on every CPU (-j). After such a run, one
unsharded run that skips every chunk writes a volume.json that counts them all (it reads the
source again but writes no chunk):
  file-blocks disk.img | skip --done put.0.journal --done put.1.journal |
    zstd-chunk --journal put.0.journal --journal put.1.journal | s3-put /backups/disk
Nor is a listing of a default-layout store sharded into zstd-unchunk: volume.json, the header
every chunk needs, falls into one shard only.

Options:
  -n, --shards N  the number of shards, 1 or more
  -i, --index I   the shard to keep, 0 to N-1
  -h, --help      show this text

Examples:
  for i in 0 1 2 3; do
    s3-list s3://bkt/data | shard -n 4 -i $i | s3-get | s3-put /mirror/data > copy.$i.journal &
  done; wait
  for i in 0 1; do
    file-blocks disk.img | shard -n 2 -i $i |
      zstd-chunk --layout fsp --snapshot-id snap-0123456789abcdef0 | s3-put s3://bkt > put.$i.journal &
  done; wait

${EXIT_STATUS_TEXT}
`;

/** Blocks per shard group: the largest chunk zstd-chunk makes. */
export const BLOCKS_PER_GROUP = 64;

/** The shard a record belongs to; -1 for records every shard gets; 'invalid' if it lacks its index or key. */
export function shardOf(rec: Rec, shards: number): number | 'invalid' {
  if (rec.type === 'block') {
    if (!isBlockIndex(rec.index)) return 'invalid';
    return Math.floor(rec.index / BLOCKS_PER_GROUP) % shards;
  }
  if (rec.type === 'object') {
    if (typeof rec.key !== 'string') return 'invalid';
    return fnv1a32(rec.key) % shards;
  }
  return -1;
}

export const main = command({
  name: 'shard',
  usage: USAGE,
  flags: { string: ['shards', 'index'], alias: { n: 'shards', i: 'index' } },
  positionals: { max: 1 },
  async run(args, ctx) {
    if (args.shards === undefined) throw new UsageError('-n N is required');
    if (args.index === undefined) throw new UsageError('-i I is required');
    const shards = intFlag(args, 'shards', 1, 1, 2 ** 31);
    const index = intFlag(args, 'index', 0, 0, shards - 1);
    await transform(ctx, { input: args._[0], frames: 'passed-on' }, async function* (batches, out) {
      for await (const batch of batches) {
        for (const rec of batch) {
          const shard = shardOf(rec, shards);
          if (shard === 'invalid') {
            throw badRecord(ctx, rec, rec.type === 'block' ? `block record has an invalid "index": ${JSON.stringify(rec.index)}` : 'object record has no string "key"');
          }
          if (shard === -1 || shard === index) out.push(rec);
        }
        yield out.take();
      }
    });
  },
});
