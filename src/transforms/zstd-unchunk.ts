import { command, EXIT_STATUS_TEXT, intFlag, stringFlag } from '../core/command';
import { UsageError } from '../core/errors';
import { transform } from '../core/stage';
import { codecFlags } from '../core/zstd-flags';
import { Unchunker, type UnchunkOptions } from '../core/zstd-unchunker';

const USAGE = `Usage: zstd-unchunk [options] [FILE|-]

Turns the "object" frames of compressed chunks (from s3-list URL | s3-get, or straight from
zstd-chunk) back into a block stream: a "volume" header, then "block" records in index order
with their data, all-zero blocks as "zero": true without data. Every chunk is decompressed
on a worker thread, its length checked (blockCount x 524288) and its SHA-256 checked against
the record's rawSha256 or, for a plain listing, the one in its key. Records of other types
pass through.

Layouts (docs/LAYOUTS.md):
  default  the header comes from volume.json (first in a listing), or from the "volume"
           record when piped straight from zstd-chunk; chunks without any header are
           refused. At the end the number of chunks must be the one volume.json gives.
  fsp      Flexible Snapshot Proxy (movetos3) objects: .../{snapshotId}.{GiB}/{firstBlock}.
           {sha256}.{blockCount}.zstd. The header comes from the folder name (or the "store"
           URL of the records): size = GiB x 2^30, as FSP keeps nothing finer. Give --size to
           restore a file's true size. FSP's block numbers do not sort in block order, so
           chunks that come early wait in a temporary file ($TMPDIR) until their turn;
           memory stays bounded, the disk holds at most the compressed volume.

Options:
  --layout NAME       default or fsp (default: default)
  -j, --jobs N        chunks decompressed at once, 1 to 64 (default: the number of CPUs)
  --partial           do not require volume.json or check the chunk count (a filtered
                      listing, or a shard); chunks still need a header
  --skip-unknown      drop objects whose keys are not of the layout (default: an error)
  --size BYTES        fsp: the volume's true size, at most GiB x 2^30 and more than (GiB-1) x 2^30
  --snapshot-id ID    fsp: the snapshot id, when keys carry no {snapshotId}.{GiB}/ folder
                      (then --size is needed too)
  -h, --help          show this text

Examples:
  s3-list /backups/disk | s3-get | zstd-unchunk | file-write disk.img
  s3-list s3://bkt/snap-0123456789abcdef0.8 | s3-get | zstd-unchunk --layout fsp | file-write disk.img
  file-blocks disk.img | zstd-chunk | zstd-unchunk | count

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'zstd-unchunk',
  usage: USAGE,
  flags: { string: ['layout', 'jobs', 'size', 'snapshot-id'], boolean: ['partial', 'skip-unknown'], alias: { j: 'jobs' } },
  positionals: { max: 1 },
  async run(args, ctx) {
    const { layout, jobs } = codecFlags(args);
    const opts: UnchunkOptions = {
      layout,
      jobs,
      partial: Boolean(args.partial),
      skipUnknown: Boolean(args['skip-unknown']),
      size: args.size === undefined ? undefined : intFlag(args, 'size', 0, 1),
      snapshotId: stringFlag(args, 'snapshot-id'),
    };
    if (layout !== 'fsp' && (opts.size !== undefined || opts.snapshotId !== undefined)) {
      throw new UsageError(`${opts.size !== undefined ? '--size' : '--snapshot-id'} goes with --layout fsp (volume.json gives the default layout's header)`);
    }
    if (opts.snapshotId !== undefined && opts.size === undefined) throw new UsageError('--snapshot-id needs --size: the key folder that would give the size is missing');
    const unchunker = new Unchunker(ctx, opts);
    try {
      await transform(ctx, { input: args._[0], frames: true }, (batches, out) => unchunker.run(batches, out));
    } finally {
      await Promise.all([unchunker.pool.close(), unchunker.reorder.close()]);
    }
    if (unchunker.skipped) ctx.log(`dropped ${unchunker.skipped} object${unchunker.skipped === 1 ? '' : 's'} not of the ${layout} layout`);
  },
});
