import { command, EXIT_STATUS_TEXT, intFlag, stringFlag, type Context } from '../core/command';
import { sha256b64 } from '../core/digest';
import type { Encoder } from '../core/encode';
import { IntegrityError, SluiceError } from '../core/errors';
import { OrderedOutput } from '../core/ordered';
import { LINE, PAYLOAD, type Rec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import { keyProblem, openStore, storeErrorAt, type ObjectStore } from '../core/store';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT } from '../core/store-s3-flags';

// Data held for objects being written: two 32 MiB chunks at once keep a local disk busy, and
// memory stays bounded whatever the number of jobs.
const MAX_BYTES_IN_FLIGHT = 64 << 20;
// Commit objects wait in memory until the end; a layout's index is far smaller.
const MAX_COMMIT_BYTES = 16 << 20;

const USAGE = `Usage: s3-put [options] URL

Writes every "object" frame's data to URL/KEY, in parallel, and prints a journal: one record
per object written, after it was written (in input order), being the input record without
its data plus "size", "etag", "sha256" (base64, of the bytes stored) and "store" (URL). Other
records (a volume header) go to the journal as they are, without payload, and the journal
ends with its own trailer. Tee it to a file: "skip --done JOURNAL" resumes a run that died.

URL is a directory (/backups/disk, ./out, file:///backups/disk) or s3://bucket/prefix; keys
are relative to it. An existing object of the same key is replaced.

Each object needs its data: a record with "len" (0 for an empty object). A record without
data (a manifest line: s3-list without s3-get) is an error, never journaled as written.
Block records that carry data are refused too: make objects of them first (zstd-chunk).
A record's "size" and "sha256", when given, must match the data (status 5), checked before
anything of that object is stored.

An object whose record has "commit": true is written last: only once every other object of
the stream is stored durably and the input's "end" trailer was read and valid. A layout's
header or index object says so, so a store never has it without everything it points to.
Commit objects are held in memory until then: at most ${MAX_COMMIT_BYTES >> 20} MiB of them in all (status 4
beyond that).

An object is journaled only once it is durable (its data and its folder flushed to disk, in
a local directory; folders are flushed once per batch of objects, not once per object). When
a write fails, every other object that was written is still journaled, and the status is
that of the failure.

Options:
  -j, --jobs N             objects written at once, 1 to 64 (default 8); at most
                           ${MAX_BYTES_IN_FLIGHT >> 20} MiB of data is held for writing, plus one object
  --storage-class CLASS    store the objects in this class (S3: STANDARD_IA, GLACIER, ...)
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  file-blocks disk.img | zstd-chunk | s3-put /backups/disk > disk.journal
  s3-list /backups/a | s3-get | s3-put /backups/b > copy.journal
  s3-list /backups/a | skip --done copy.journal | s3-get | s3-put /backups/b >> copy.journal

On an input that ends without its trailer, the objects already written stay (and are
journaled), no commit object is written, and the status is 3. On SIGINT or SIGTERM no commit
object is written either; objects stored by then stay, journaled or not.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 's3-put',
  usage: USAGE,
  flags: storeFlags({ string: ['jobs', 'storage-class'], alias: { j: 'jobs' } }),
  positionals: { min: 1, max: 1 },
  async run(args, ctx) {
    const jobs = intFlag(args, 'jobs', 8, 1, 64);
    const writer = new Writer(ctx, openStore(args._[0], s3Settings(args, ctx.signal)), stringFlag(args, 'storage-class'));
    await transform(ctx, {}, async function* (batches, out) {
      const output = new OrderedOutput(jobs, MAX_BYTES_IN_FLIGHT);
      const commits: Rec[] = [];
      let commitBytes = 0;
      try {
        for await (const batch of batches) {
          for (const rec of batch) {
            if (rec.type !== 'object') {
              if (rec.type === 'block' && rec[PAYLOAD]) {
                throw badRecord(ctx, rec, 'a block with data: s3-put stores objects; make objects of blocks first (zstd-chunk)');
              }
              delete rec[PAYLOAD];
              output.records(rec);
              continue;
            }
            writer.check(rec);
            const size = rec[PAYLOAD]?.length ?? 0;
            if (rec.commit === true) {
              writer.checkSha(rec);
              commitBytes += size;
              if (commitBytes > MAX_COMMIT_BYTES) {
                throw badRecord(ctx, rec, `commit objects add up to more than ${MAX_COMMIT_BYTES >> 20} MiB: they are held in memory until everything else is written`);
              }
              commits.push(rec);
              continue;
            }
            while (output.full) {
              await output.flush(out);
              yield await writer.durable(out);
            }
            output.job(writer.write(rec).then((written) => [written]), size);
          }
          await output.flush(out);
          yield await writer.durable(out);
        }
        await output.flush(out, true);
      } catch (err) {
        // Every object that was written is journaled, those after a failed one too, so that a
        // rerun can skip them; if they cannot be made durable, none of them is.
        await output.settle(out);
        const journal = await writer.durable(out).catch(() => undefined);
        if (journal) yield journal;
        throw err;
      }
      // The input ended with a valid trailer; every other object is stored, and durable
      // before a commit object can point to it.
      yield await writer.durable(out);
      if (ctx.signal.aborted) throw ctx.signal.reason;
      try {
        for (const rec of commits) out.push(await writer.write(rec));
      } finally {
        const journal = await writer.durable(out).catch(() => undefined);
        if (journal) yield journal;
      }
    });
  },
});

class Writer {
  constructor(
    private readonly ctx: Context,
    private readonly store: ObjectStore,
    private readonly storageClass: string | undefined,
  ) {}

  /** Refuses an object record that cannot be written as it is. */
  check(rec: Rec): void {
    const problem = keyProblem(rec.key);
    if (problem) throw badRecord(this.ctx, rec, problem);
    const key = JSON.stringify(rec.key);
    if (!rec[PAYLOAD] && rec.len !== 0) {
      throw badRecord(this.ctx, rec, `object ${key} has no data (no "len"): s3-put writes object frames; read the data with s3-get first`);
    }
    const length = this.data(rec).length;
    if (rec.size !== undefined) {
      if (!(Number.isSafeInteger(rec.size) && (rec.size as number) >= 0)) throw badRecord(this.ctx, rec, `object ${key}: "size" must be a non-negative integer, got ${JSON.stringify(rec.size)}`);
      if (rec.size !== length) throw this.integrity(rec, `the record says ${rec.size} bytes, the data has ${length}`);
    }
    if (rec.sha256 !== undefined && typeof rec.sha256 !== 'string') throw badRecord(this.ctx, rec, `object ${key}: "sha256" must be a base64 string`);
  }

  /** Checks a held object at once, rather than after everything else was written. */
  checkSha(rec: Rec): void {
    if (typeof rec.sha256 !== 'string') return;
    const actual = sha256b64(this.data(rec));
    if (actual !== rec.sha256) throw this.integrity(rec, `the data's SHA-256 is ${actual}, the record says ${rec.sha256}`);
  }

  /** Stores the object; resolves to its journal record. */
  async write(rec: Rec): Promise<Rec> {
    const data = this.data(rec);
    let written;
    try {
      written = await this.store.put(rec.key as string, data, {
        sha256: rec.sha256 as string | undefined,
        storageClass: this.storageClass,
        batch: true,
      });
    } catch (err) {
      throw storeErrorAt(this.ctx, rec, err);
    }
    delete rec[PAYLOAD];
    rec.size = data.length;
    rec.etag = written.etag;
    rec.sha256 = written.sha256;
    rec.store = this.store.url;
    // These described the object where it came from, not where it is now.
    if (written.versionId !== undefined) rec.versionId = written.versionId;
    else delete rec.versionId;
    if (this.storageClass !== undefined) rec.storageClass = this.storageClass;
    else delete rec.storageClass;
    return rec;
  }

  /** Makes the objects written so far durable; gives what `out` holds, ready to journal. */
  async durable(out: Encoder): Promise<Buffer[]> {
    try {
      await this.store.flush();
    } catch (err) {
      throw new SluiceError(`${this.ctx.command}: ${(err as Error).message}`);
    }
    return out.take();
  }

  private data(rec: Rec): Buffer {
    return rec[PAYLOAD] ?? Buffer.alloc(0);
  }

  private integrity(rec: Rec, what: string): IntegrityError {
    return new IntegrityError(`${this.ctx.command}: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}: object ${JSON.stringify(rec.key)}: ${what}; nothing was stored`);
  }
}
