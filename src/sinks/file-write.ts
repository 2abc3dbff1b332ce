import { command, EXIT_STATUS_TEXT, intFlag } from '../core/command';
import { UsageError } from '../core/errors';
import { openFileTarget, type FileTarget } from '../core/file-target';
import { sink } from '../core/stage';
import { VolumeWriter } from '../core/volume-writer';

const USAGE = `Usage: file-write [options] PATH...

Writes a block stream (a "volume" header and "block" records with their data, as file-blocks
and zstd-unchunk produce) to one or more files or block devices, each block at byte offset
index x 524288. Every PATH receives the same data; they are written in parallel.

A new file is written under a temporary name in its directory (.NAME.sluice-XXXXXXXX), sized
to the volume's size (a last partial block is cut back to it), flushed to disk, and renamed to
PATH only after the input's end trailer has been read and checked. If the input stops early,
is not a valid stream, fails a checksum, or the command is interrupted, the temporary file is
removed and PATH is left as it was. Zero blocks and absent blocks are not written: the new
file is sparse there. An existing PATH is refused unless --force is given.

The data of every block is checked before it is written: it must be 524288 bytes long and its
SHA-256 must match the record's "sha256". A block without data must be marked "zero": true
(a manifest cannot be written: attach the data first).

With --in-place, blocks go straight into an existing file or block device, as when applying a
delta: "zero" blocks are written as zeros, absent blocks are left as they are. A file smaller
than the volume is extended to the volume's size; a larger one keeps its size and the data
past the volume's end, unless --truncate is given. A block device is always written in place
and must be at least as large as the volume. In-place writes cannot be undone: an input that
stops early leaves the blocks written so far in place (exit 3); run the same pipeline again.
To put a whole volume onto a used device or file, give --zero-absent: blocks the stream does
not list (the holes of a sparse file, the unwritten blocks of a snapshot) are then written as
zeros too. Without it, a note on stderr counts the absent blocks left as they were, unless the
header names a "parent" (a delta, where absent means unchanged).

Writes are positional and run concurrently, a few per PATH; memory stays a few MiB whatever
the size of the volume. Nothing is printed on stdout.

Options:
  --in-place     write into existing files or block devices (see above)
  --truncate     with --in-place: cut a file larger than the volume down to the volume's size
  --zero-absent  in place: write zeros where the stream lists no block (a full restore)
  -f, --force    replace an existing file (the new one is renamed over it at the end)
  -j, --jobs N   writes in flight per PATH, 1 to 64 (default 4)
  -h, --help     show this text

Examples:
  file-blocks disk.img | file-write copy.img
  file-blocks /dev/nvme1n1 | file-write copy-1.img copy-2.img
  s3-list /backups/vol-1 | s3-get | zstd-unchunk | file-write restored.img
  s3-list /backups/vol-1 | s3-get | zstd-unchunk | file-write --zero-absent /dev/nvme2n1

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'file-write',
  usage: USAGE,
  flags: { string: ['jobs'], boolean: ['in-place', 'truncate', 'force', 'zero-absent'], alias: { f: 'force', j: 'jobs' } },
  positionals: { min: 1, max: Infinity },
  async run(args, ctx) {
    const opts = {
      inPlace: Boolean(args['in-place']),
      truncate: Boolean(args.truncate),
      force: Boolean(args.force),
      zeroAbsent: Boolean(args['zero-absent']),
      jobs: intFlag(args, 'jobs', 4, 1, 64),
    };
    if (opts.truncate && !opts.inPlace) throw new UsageError('--truncate goes with --in-place');
    if (opts.force && opts.inPlace) throw new UsageError('--force replaces a file, --in-place writes into it: give one of them');
    for (const p of args._) if (p === '-' || p === '') throw new UsageError(`${JSON.stringify(p)} is not a file name: file-write writes to files and devices`);
    const targets: FileTarget[] = [];
    try {
      for (const p of args._) targets.push(await openFileTarget(p, opts, targets));
      const volume = new VolumeWriter(ctx, targets, opts);
      await sink(ctx, {}, (batches) => volume.consume(batches));
      await volume.finish();
    } catch (err) {
      await Promise.all(targets.map((t) => t.discard()));
      throw err;
    }
  },
});
