import { command, EXIT_STATUS_TEXT, intFlag, stringFlag } from '../core/command';
import { UsageError } from '../core/errors';
import { readJournal } from '../core/journal';
import { transform } from '../core/stage';
import { DEFAULT_LEVEL, MAX_LEVEL } from '../core/zstd';
import { Chunker, type ChunkOptions } from '../core/zstd-chunker';
import { codecFlags } from '../core/zstd-flags';

const USAGE = `Usage: zstd-chunk [options] [FILE|-]

Compresses a block stream into "object" frames, each one zstd frame of up to 64 consecutive
blocks (32 MiB raw), named by a store layout, ready for s3-put. A chunk starts at every gap in
the block indices and at every index divisible by 64, so the same blocks always make the same
chunks, and a run resumed with skip --done makes exactly the chunks still missing.

Each object record gives: key, size (compressed bytes), codec "zstd", firstBlock, blockCount,
rawSize, blocksSha256 (base64 SHA-256 of the blocks' 32-byte SHA-256 digests in order, the
chunk's checksum in the default layout), sha256 (of the compressed bytes, for s3-put to check),
and in the fsp layout rawSha256 (SHA-256 of the raw chunk, which FSP's keys carry). Frames
carry the content size and no zstd checksum: the SHA-256s are the checks. Records other than
blocks pass through, the volume header included.

The SHA-256 of every block is verified before it is compressed (exit 5 naming the block), on
the worker threads that compress, where the data is at hand; it costs one pass of SHA-256
over the data (see docs/BENCHMARKS.md). With --no-verify the blocks' own checksums are
trusted: the default layout's blocksSha256 is then made from them unread, and a block whose
data did not match is found when zstd-unchunk reads the chunk back.

Chunks are compressed on worker threads, one per job, and written in input order. Memory:
a 32 MiB buffer per job and one more, and the frames of at most jobs + 1 chunks (being made,
or finished and waiting for a slower one before them), plus the one being written: on
incompressible data about 80 MiB + 32 MiB x (2 x jobs + 3), some 300 MiB with 2 jobs.

Layouts (docs/LAYOUTS.md):
  default  zstd/{firstBlock, 10 digits}-{blockCount}-{blocksSha256, base64url}.zst for each
           chunk (zero blocks stay inside chunks: a delta's zero blocks must survive), then
           volume.json (the volume header, the chunk count) last, with "commit": true:
           s3-put writes it only once everything else is stored and the input was whole.
  fsp      the Flexible Snapshot Proxy movetos3 layout:
           {snapshotId}.{GiB}/{firstBlock}.{rawSha256, base64url, padded}.{blockCount}.zstd
           zero blocks are left out (as gaps) unless --full-copy; no index object. The
           snapshot id comes from the header's "snapshotId" or --snapshot-id; GiB is the size
           rounded up, so the header must give the size (not so for a stream from stdin).

Options:
  --layout NAME       default or fsp (default: default)
  --level N           zstd level, 1 to ${MAX_LEVEL} (default: ${DEFAULT_LEVEL})
  -j, --jobs N        chunks compressed at once, 1 to 64 (default: the number of CPUs)
  --no-verify         trust the blocks' SHA-256 instead of checking the data (see above)
  --journal FILE      default layout: the journal of an earlier run into the same store (the
                      one given to skip --done; repeatable): its chunks count in volume.json,
                      so a resumed upload still describes the whole volume
  --snapshot-id ID    fsp: the snapshot id for the keys (default: the header's snapshotId)
  --full-copy         fsp: keep zero blocks (FSP's FULL_COPY)
  -h, --help          show this text

Examples:
  file-blocks disk.img | zstd-chunk | s3-put /backups/disk > run1.journal
  file-blocks disk.img | skip --done run1.journal | zstd-chunk --journal run1.journal | s3-put /backups/disk > run2.journal
  file-blocks disk.img | zstd-chunk --layout fsp --snapshot-id snap-0123456789abcdef0 | s3-put s3://bkt
  file-blocks disk.img | zstd-chunk | strip | jq -c '{key, size, rawSize}'

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'zstd-chunk',
  usage: USAGE,
  flags: {
    string: ['layout', 'level', 'jobs', 'snapshot-id', 'journal'],
    repeatable: ['journal'],
    boolean: ['full-copy', 'verify'],
    alias: { j: 'jobs' },
    default: { verify: true },
  },
  positionals: { max: 1 },
  async run(args, ctx) {
    const { layout, jobs } = codecFlags(args);
    const opts: ChunkOptions = {
      layout,
      level: intFlag(args, 'level', DEFAULT_LEVEL, 1, MAX_LEVEL),
      jobs,
      snapshotId: stringFlag(args, 'snapshot-id'),
      fullCopy: Boolean(args['full-copy']),
      verify: args.verify !== false,
    };
    if (layout !== 'fsp' && (opts.fullCopy || opts.snapshotId !== undefined)) {
      throw new UsageError(`${opts.fullCopy ? '--full-copy' : '--snapshot-id'} goes with --layout fsp`);
    }
    const journals = args.journal === undefined ? [] : (Array.isArray(args.journal) ? args.journal : [args.journal]).map(String);
    if (journals.includes('')) throw new UsageError('--journal needs a value');
    if (layout === 'fsp' && journals.length) throw new UsageError('--journal goes with the default layout (FSP has no index object to count chunks in)');
    const chunker = new Chunker(ctx, opts);
    for (const path of journals) chunker.countStored(await readJournal(ctx, path));
    try {
      await transform(ctx, { input: args._[0], frames: true }, (batches, out) => chunker.run(batches, out));
    } finally {
      await chunker.pool.close();
    }
  },
});
