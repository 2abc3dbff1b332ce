import { command, EXIT_STATUS_TEXT, type Args } from '../core/command';
import { UsageError } from '../core/errors';
import { DoneSet, readJournal } from '../core/journal';
import { transform } from '../core/stage';

const USAGE = `Usage: skip --done JOURNAL [--done JOURNAL]... [FILE|-]

Drops the records an earlier run already finished, so a rerun resumes where it stopped. A
journal is what a committing sink printed on stdout (s3-put prints one "object" record per
object written): tee it to a file, and after a crash feed it back here. A journal from a killed
run has no trailer and may end in a partial line; both are accepted. Anything else invalid in
it is an error.

A record is done, and dropped, when a journal has:
  - for an "object": the same "key", with the same "sha256" when both records carry one;
  - for a "block": the same "index", with the same "sha256" when both records carry one;
  - for a "block": an "object" whose block range ("firstBlock", "blockCount") covers its
    index. Those are compressed chunks written by s3-put: finished chunks are skipped before
    their blocks are read into compression again.
Volume headers and records of other types pass through. One line on stderr says how many
records were skipped. Memory: one bit per block index, and the keys of the journals' objects.

Options:
  --done JOURNAL  the journal of an earlier run; repeat for several runs. Give each run its
                  own journal: appending to one that ends in a partial line garbles it.
                  Resuming a default-layout upload, give the same journals to zstd-chunk
                  --journal, so that its volume.json counts the chunks written before.
  -h, --help      show this text

Examples:
  file-blocks disk.img | zstd-chunk | s3-put /backups/disk > run1.journal
  file-blocks disk.img | skip --done run1.journal | zstd-chunk --journal run1.journal | s3-put /backups/disk > run2.journal
  s3-list /backups/disk | skip --done copied.journal | s3-get | s3-put s3://bkt/disk > copied2.journal

${EXIT_STATUS_TEXT}
`;

function journalPaths(args: Args): string[] {
  const raw = args.done;
  if (raw === undefined) throw new UsageError('--done JOURNAL is required');
  const paths = (Array.isArray(raw) ? raw : [raw]).map(String);
  if (paths.includes('')) throw new UsageError('--done needs a value');
  return paths;
}

export const main = command({
  name: 'skip',
  usage: USAGE,
  flags: { string: ['done'], repeatable: ['done'] },
  positionals: { max: 1 },
  async run(args, ctx) {
    const paths = journalPaths(args);
    const done = new DoneSet();
    for (const path of paths) await readJournal(ctx, path, done);
    let skippedBlocks = 0;
    let skippedObjects = 0;
    let passed = 0;
    await transform(ctx, { input: args._[0], frames: 'passed-on' }, async function* (batches, out) {
      for await (const batch of batches) {
        for (const rec of batch) {
          if (done.isDone(rec)) {
            if (rec.type === 'block') skippedBlocks++;
            else skippedObjects++;
          } else {
            out.push(rec);
            passed++;
          }
        }
        yield out.take();
      }
    });
    const skipped = skippedBlocks + skippedObjects;
    ctx.log(`skipped ${skipped} of ${skipped + passed} records as done (${skippedBlocks} blocks, ${skippedObjects} objects); ${passed} passed on`);
  },
});
