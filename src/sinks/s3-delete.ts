import { command, EXIT_STATUS_TEXT } from '../core/command';
import { PAYLOAD, type Rec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import { keyProblem, openStore, storeErrorAt } from '../core/store';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT } from '../core/store-s3-flags';

// S3's DeleteObjects takes up to 1000 keys: one call per batch, one journal write per batch.
const BATCH = 1000;

const USAGE = `Usage: s3-delete [options] URL

Deletes from URL every object that an "object" record of the input names by its "key": an
s3-list listing (the objects to delete), or s3-put's journal (objects copied elsewhere, to
delete at the source). Nothing is deleted before the input's "end" trailer was read and found
valid: a listing cut short (its producer died) deletes nothing and ends with status 3.

The keys are kept in memory until then (about a hundred bytes each plus the key). Then the
objects marked "commit": true (a layout's header, which promises the others) are deleted
first, so a store is never left with a header whose chunks are gone, and the rest in batches
of ${BATCH} (one DeleteObjects call on S3; unlinked, with their checksum sidecars and any folder
left empty, in a local directory). After each batch, its records are printed: the input
record without data, with "store" set to URL. That is a journal: after a failure,
"skip --done JOURNAL" drops what was deleted from a rerun. A key given twice is deleted once.

Keys are relative to URL, whatever the records' own "store" says: the records choose what
goes, URL where it goes from. A key that is not there is not an error (S3 does the same). On
a bucket with versioning, S3 keeps the old versions behind a delete marker; "versionId"
fields are not used. Other records are not printed.

Options:
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  s3-list --prefix old/ s3://bkt/backups | s3-delete s3://bkt/backups > deleted.journal
  s3-list /backups/a | s3-get | s3-put /backups/b > copy.journal && s3-delete /backups/a < copy.journal
  s3-list /backups/vol-1 | s3-delete /backups/vol-1 > /dev/null

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 's3-delete',
  usage: USAGE,
  flags: storeFlags(),
  positionals: { min: 1, max: 1 },
  async run(args, ctx) {
    const store = openStore(args._[0], s3Settings(args, ctx.signal));
    await transform(ctx, {}, async function* (batches, out) {
      const commits: Rec[] = [];
      const others: Rec[] = [];
      const seen = new Set<string>();
      for await (const batch of batches) {
        for (const rec of batch) {
          if (rec.type !== 'object') continue;
          const problem = keyProblem(rec.key);
          if (problem) throw badRecord(ctx, rec, problem);
          const key = rec.key as string;
          if (seen.has(key)) continue;
          seen.add(key);
          // Only the key and the description are kept, never data.
          delete rec[PAYLOAD];
          rec.store = store.url;
          (rec.commit === true ? commits : others).push(rec);
        }
      }
      // The input ended with a valid trailer (the decoder refuses one without): the listing is
      // whole, and may now decide a delete.
      // Commit objects in calls of their own: one call's deletes happen in no set order.
      for (const group of [commits, others]) {
        for (let i = 0; i < group.length; i += BATCH) {
          if (ctx.signal.aborted) throw ctx.signal.reason;
          const recs = group.slice(i, i + BATCH);
          try {
            await store.delete(recs.map((r) => r.key as string));
          } catch (err) {
            throw storeErrorAt(ctx, recs[0], err);
          }
          for (const rec of recs) out.push(rec);
          yield out.take();
        }
      }
    });
  },
});
