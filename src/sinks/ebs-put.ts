import { command, EXIT_STATUS_TEXT, intFlag, stringFlag, type Args } from '../core/command';
import { EbsSession, ebsFlags, ebsOptionsText, ebsSettings } from '../core/ebs-client';
import { JournalMerge } from '../core/ebs-journal';
import { planRecord, snapshotIdArg } from '../core/ebs-records';
import { SnapshotPutter, type PutOptions } from '../core/ebs-put-plan';
import { UsageError } from '../core/errors';
import { OrderedOutput } from '../core/ordered';
import { isBlock, isVolume, PAYLOAD } from '../core/records';
import { transform } from '../core/stage';

const DEFAULT_JOBS = 64;
// Minutes a pending snapshot waits for its next block before the service gives it up: how long
// a killed run stays resumable. A day, not the 3-day maximum: pending snapshots count toward a
// quota of 100 per account.
const DEFAULT_TIMEOUT_MINUTES = 1440;

const USAGE = `Usage: ebs-put [options] [FILE|-]

Writes a block stream (file-blocks, ebs-get, zstd-unchunk output) into a new EBS snapshot:
StartSnapshot (with a ClientToken, so a retried start never makes two), PutSnapshotBlock for
the blocks in parallel, each with its SHA-256, and, only after the input's end trailer was read
and valid, CompleteSnapshot with the number of blocks and their LINEAR checksum; then it waits
until the snapshot is completed (not with --no-wait).

Stdout is a journal: a "snapshot" record with the new id (status pending), one "block" record
per block put (index, sha256; in input order, once the put succeeded), and at the end the
"snapshot" record again with its final status, block count and checksum. Tee it to a file.

Zero blocks are not put into a snapshot without a parent (unwritten blocks read as zeros),
unless --full-copy: then every block record of the stream is put, zeros too, and the snapshot
lists them (blocks the stream leaves out, such as sparse holes, stay unwritten).
With --parent the new snapshot starts as a copy of the parent, so what differs must be put:
  - a delta stream (its header names a "parent", as delta writes it): its zero blocks are put
    as zeros, its absent blocks stay as in the parent;
  - a whole volume (file-blocks): the parent is listed too, and every block the parent has
    that the stream lists as zero or not at all (a sparse hole) is put as zeros. No block ever
    keeps the parent's data where the stream says otherwise.

An input that ends without its trailer leaves the snapshot pending (status 3) and the message
says how to resume: feed the same input through "skip --done JOURNAL" into
"ebs-put --resume SNAPSHOT-ID --done JOURNAL", which puts the rest and completes the snapshot
with the blocks of every journal counted. The first run's --parent and --full-copy carry over
from its journal, and a stream read from a snapshot must be of the same one (and delta parent).
A resumed run's journal starts with the "snapshot" record too: keep each run's for the next.

Options:
  --parent ID          the snapshot the new one starts from (see above)
  --size GiB           volume size (default: the stream's size rounded up to whole GiB, at
                       least the parent's); needed when the stream's header gives no size
  --description TEXT   the snapshot's description (at most 255 characters)
  --tags K=V[,K=V]...  tags for the snapshot (repeatable)
  --timeout MINUTES    a pending snapshot that gets nothing for this long goes to error,
                       10 to 4320 (default ${DEFAULT_TIMEOUT_MINUTES}): how long a failed run stays resumable
  --full-copy          put the stream's zero blocks too (FSP's FULL_COPY)
  --no-wait            do not wait for the snapshot to be completed after CompleteSnapshot
  --resume ID          put the rest of a pending snapshot; give the earlier runs' journals
  --done JOURNAL       with --resume: the journal of an earlier run (repeatable)
${ebsOptionsText(DEFAULT_JOBS)}
  -h, --help           show this text

Examples:
  file-blocks disk.img | ebs-put --description "disk.img" > put.journal
  ebs-blocks snap-0a | delta --parent snap-09 | ebs-get | ebs-put --parent snap-09copy > put.journal
  file-blocks disk.img | skip --done put.journal | ebs-put --resume snap-0123456789abcdef0 --done put.journal > put2.journal

A permanent error (access denied, unknown parent, invalid request) ends the run at once with
status 1, naming the snapshot and block; the snapshot stays pending and can be resumed.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'ebs-put',
  usage: USAGE,
  flags: ebsFlags({
    string: ['parent', 'size', 'description', 'tags', 'timeout', 'resume', 'done'],
    boolean: ['wait', 'full-copy'],
    repeatable: ['tags', 'done'],
    default: { wait: true },
  }),
  positionals: { max: 1 },
  async run(args, ctx) {
    const session = new EbsSession(ctx, ebsSettings(args, DEFAULT_JOBS));
    const options = putOptions(args);
    const journals = options.resume ? new JournalMerge(ctx, options.done) : undefined;
    const putter = new SnapshotPutter(ctx, session, options, journals);
    try {
      await transform(ctx, { input: args._[0] }, async function* (batches, out) {
        const output = new OrderedOutput(session.settings.jobs);
        putter.attach(output, out);
        try {
          for await (const batch of batches) {
            for (const rec of batch) {
              if (isVolume(rec)) await putter.header(rec);
              else if (isBlock(rec)) await putter.block(rec);
              // Records of other types are not part of the snapshot, nor of the journal.
              delete rec[PAYLOAD];
            }
            yield out.take();
          }
          await putter.finish();
          await output.flush(out, true);
          yield out.take();
        } catch (err) {
          await output.settle(out);
          yield out.take();
          throw putter.explain(err);
        }
        await putter.complete();
        if (session.settings.dryRun) {
          out.push(planRecord(ctx.command, { snapshotId: options.resume, parent: putter.parent, calls: putter.writer.calls, blocks: putter.blocksPut, bytes: putter.bytesPut }));
          yield out.take();
          return;
        }
        if (options.wait) await putter.waitCompleted();
        out.push(putter.snapshotRecord(options.wait ? 'completed' : 'pending', true));
        yield out.take();
        const retried = session.retry.summary();
        if (retried) ctx.log(`${putter.writer.snapshotId}: ${putter.blocksPut} blocks put; ${retried}`);
      });
    } finally {
      session.close();
    }
  },
});

function putOptions(args: Args): PutOptions {
  const list = (name: string) => ([] as unknown[]).concat(args[name] ?? []).map(String).filter((v) => v !== '');
  const description = stringFlag(args, 'description');
  if (description !== undefined && description.length > 255) throw new UsageError('--description is at most 255 characters');
  const tags = list('tags').flatMap((group) =>
    group.split(',').map((pair) => {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UsageError(`--tags takes KEY=VALUE pairs, got ${JSON.stringify(pair)}`);
      return { Key: pair.slice(0, eq), Value: pair.slice(eq + 1) };
    }),
  );
  const resume = args.resume === undefined ? undefined : snapshotIdArg(args.resume, '--resume');
  const done = list('done');
  if (resume && !done.length) throw new UsageError('--resume needs the journals of the earlier runs (--done JOURNAL): their blocks count toward the completion checksum');
  if (!resume && done.length) throw new UsageError('--done goes with --resume');
  const parent = args.parent === undefined ? undefined : snapshotIdArg(args.parent, '--parent');
  if (resume && (args.description !== undefined || list('tags').length)) throw new UsageError('--description and --tags are given when a snapshot starts, not on --resume');
  return {
    fullCopy: args['full-copy'] === true,
    parent,
    size: args.size === undefined ? undefined : intFlag(args, 'size', 0, 1, 65536),
    description,
    tags: tags.length ? tags : undefined,
    timeoutMinutes: intFlag(args, 'timeout', DEFAULT_TIMEOUT_MINUTES, 10, 4320),
    wait: args.wait !== false,
    resume,
    done,
  };
}
