import { setTimeout as sleep } from 'node:timers/promises';
import { command, EXIT_STATUS_TEXT, intFlag, stringFlag, type Context } from '../core/command';
import { UsageError } from '../core/errors';
import { LINE, PAYLOAD, type Rec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import { RecordStores } from '../core/record-stores';
import { keyProblem, openStore, storeErrorAt, type RestoreOptions, type RestoreState } from '../core/store';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT } from '../core/store-s3-flags';

const TIERS = ['Standard', 'Bulk', 'Expedited'];
// Records held while the first of them waits for its restore: restores of the objects behind
// it are asked for meanwhile, and memory stays bounded (a manifest record is a few hundred bytes).
const MAX_HELD = 100_000;

const USAGE = `Usage: s3-restore [options] [URL]

Makes archived objects readable: for every "object" record whose object is in GLACIER or
DEEP_ARCHIVE and not restored, asks S3 for a temporary copy (RestoreObject, for --days at
--tier), then waits until the copy is readable (HeadObject's x-amz-restore says
ongoing-request="false") and passes the record on, unchanged, in input order, so that
"s3-list | s3-restore | s3-get" reads an archive. Objects already readable, or whose restore
is under way, are not asked for again. Other records, and objects with their data, pass
through. A local directory never archives: its records pass through.

Restores are asked for as records arrive (up to ${MAX_HELD} records ahead of the one waited
for), so they run at the same time; while waiting, only the first object not yet readable is
polled, every --interval seconds. An object found archived again while it waits (its restored
copy expired before its turn, as one restored early with a short --days can) is asked for
again. Without URL, each record's "store" says where the object is.
A record with "versionId" (s3-list --versions) restores, and waits for, that version of the
object, not the current one; a local directory holds only version "null". A delete marker
("deleteMarker": true) has nothing to restore and is refused (status 4).
A record whose "storageClass" is neither GLACIER nor DEEP_ARCHIVE costs no call; one without
a storageClass costs a HeadObject.

A restore takes minutes (Expedited) to hours (Standard: 3-5 h for GLACIER, up to 12 h for
DEEP_ARCHIVE; Bulk longer). For many objects, ask with --no-wait first, then run again later
to wait for what remains.

Options:
  --days N                 days the restored copies stay readable, 1 to 3650 (default 1)
  --tier T                 Standard, Bulk or Expedited (default Standard; DEEP_ARCHIVE
                           takes no Expedited)
  --no-wait                pass each record on once its restore was asked for
  --interval SECONDS       between polls of an object being restored (default 60)
  -j, --jobs N             restore requests at once, 1 to 64 (default 8)
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  s3-list s3://bkt/archive | s3-restore --tier Bulk --days 3 | s3-get | zstd-unchunk | file-write disk.img
  s3-list s3://bkt/archive | s3-restore --no-wait > /dev/null
  s3-list --versions s3://bkt/db | pick --not-latest --no-delete-markers | s3-restore | s3-get | s3-put /old-db

${EXIT_STATUS_TEXT}
`;

interface Held {
  rec: Rec;
  /** undefined: nothing to restore. */
  asked?: Promise<RestoreState>;
  state?: RestoreState;
  failed?: unknown;
}

export const main = command({
  name: 's3-restore',
  usage: USAGE,
  flags: storeFlags({ string: ['days', 'tier', 'interval', 'jobs'], boolean: ['wait'], alias: { j: 'jobs' }, default: { wait: true } }),
  positionals: { max: 1 },
  async run(args, ctx) {
    const tier = stringFlag(args, 'tier') ?? 'Standard';
    if (!TIERS.includes(tier)) throw new UsageError(`--tier must be one of ${TIERS.join(', ')}, got ${JSON.stringify(tier)}`);
    const opts: RestoreOptions = { days: intFlag(args, 'days', 1, 1, 3650), tier };
    const intervalMs = intFlag(args, 'interval', 60, 1, 86400) * 1000;
    const jobs = intFlag(args, 'jobs', 8, 1, 64);
    const wait = args.wait !== false;
    const settings = s3Settings(args, ctx.signal);
    const stores = new RecordStores(ctx, settings, args._[0] === undefined ? undefined : openStore(args._[0], settings));
    const limit = limiter(jobs);
    await transform(ctx, { frames: 'passed-on' }, async function* (batches, out) {
      const held: Held[] = [];
      /**
       * Writes out the records at the head whose objects are readable (or asked for, with
       * --no-wait); waits for the first one while more than `keep` are held.
       */
      const drain = async (keep: number) => {
        while (held.length) {
          const first = held[0];
          const block = held.length > keep;
          if (first.asked) {
            if (!done(first)) {
              if (!block) return;
              await settle(first);
            }
            if (first.failed !== undefined) throw storeErrorAt(ctx, first.rec, first.failed);
            if (wait && first.state !== 'readable') {
              if (!block) return;
              await pollUntilReadable(first);
            }
          }
          out.push(held.shift()!.rec);
        }
      };
      const settle = (h: Held) => h.asked!.then(() => h.state, () => h.state);
      const done = (h: Held) => h.state !== undefined || h.failed !== undefined;
      const pollUntilReadable = async (h: Held) => {
        const store = stores.for(h.rec);
        while (h.state !== 'readable') {
          await sleep(intervalMs, undefined, { signal: ctx.signal });
          try {
            h.state = await store.restoreState(h.rec.key as string, { versionId: versionOf(h.rec) });
            // Archived again: its restored copy expired before its turn came (a restore queued
            // behind slower ones outlives --days), or S3 dropped the request. Waiting on would
            // never end: ask again.
            if (h.state === 'archived') {
              ctx.log(`${ctx.input ?? 'stdin'}:${h.rec[LINE] ?? '?'}: ${named(h.rec)} is archived again (its restored copy expired?): asking for a restore again`);
              h.state = await store.restore(h.rec.key as string, { ...opts, versionId: versionOf(h.rec) });
            }
          } catch (err) {
            throw storeErrorAt(ctx, h.rec, err);
          }
        }
      };
      for await (const batch of batches) {
        for (const rec of batch) {
          const h: Held = { rec };
          if (needsAsking(ctx, rec)) {
            const store = stores.for(rec);
            h.asked = limit(() => store.restore(rec.key as string, { ...opts, versionId: versionOf(rec) }));
            h.asked.then(
              (state) => (h.state = state),
              (err) => (h.failed = err),
            );
          }
          held.push(h);
          if (held.length >= MAX_HELD) {
            await drain(MAX_HELD - 1);
            yield out.take();
          }
        }
        await drain(Infinity);
        yield out.take();
      }
      await drain(0);
      yield out.take();
    });
  },
});

/** An object record the store must be asked about: not readable by what the record says. */
function needsAsking(ctx: Context, rec: Rec): boolean {
  if (rec.type !== 'object' || rec[PAYLOAD]) return false;
  const problem = keyProblem(rec.key);
  if (problem) throw badRecord(ctx, rec, problem);
  const versionId = rec.versionId;
  if (versionId !== undefined && (typeof versionId !== 'string' || versionId === '')) throw badRecord(ctx, rec, `object ${JSON.stringify(rec.key)}: "versionId" must be a non-empty string, got ${JSON.stringify(versionId)}`);
  if (rec.deleteMarker === true) throw badRecord(ctx, rec, `object ${named(rec)}: a delete marker has nothing to restore (leave out records with "deleteMarker": true)`);
  return rec.storageClass === undefined || rec.storageClass === 'GLACIER' || rec.storageClass === 'DEEP_ARCHIVE';
}

/** The version a record names; undefined: the current object. */
function versionOf(rec: Rec): string | undefined {
  return rec.versionId as string | undefined;
}

/** How messages name a record's object: its key, and its version when it names one. */
function named(rec: Rec): string {
  return rec.versionId === undefined ? JSON.stringify(rec.key) : `${JSON.stringify(rec.key)} version ${rec.versionId}`;
}

/** Runs at most `n` of the functions given at once, in the order given. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    // A finished call hands its place to the first waiting one: were it freed instead, a call
    // made before the waiting one resumes would take it too, and n + 1 would run.
    if (running >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
