import { command, durationFlag, EXIT_STATUS_TEXT, intFlag, sizeFlag, stringFlag, type Args, type Context } from '../core/command';
import { sha256b64 } from '../core/digest';
import type { Encoder } from '../core/encode';
import { IntegrityError, UsageError } from '../core/errors';
import { flushThenTake, writeCommitLast, type ObjectWriter } from '../core/commit-last';
import { LINE, PAYLOAD, type Rec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import { keyProblem, openStore, parseStoreUrl, storeErrorAt, type ObjectStore } from '../core/store';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT } from '../core/store-s3-flags';
import { DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE } from '../core/store-s3-limits';
import { UploadJournal } from '../core/upload-journal';
import { ShaPool } from '../core/sha-pool';
import { SerialSha } from '../core/serial-sha';
import { abortStale, DEFAULT_STALE_AGE } from './s3-put-stale';
import { PieceJoiner } from './s3-put-pieces';
import { isPiece } from '../core/object-pieces';
import { PayloadPool } from '../core/payload-pool';

// Data held for objects being written: two 32 MiB chunks at once keep a local disk busy, and
// memory stays bounded whatever the number of jobs.
const MAX_BYTES_IN_FLIGHT = 64 << 20;
// Commit objects wait in memory until the end; a layout's index is far smaller.
const MAX_COMMIT_BYTES = 16 << 20;

const USAGE = `Usage: s3-put [options] URL
       s3-put --abort-stale [--older-than AGE] [S3 flags] URL

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
that of the failure. With --no-fsync a directory is not flushed: each file still appears
whole or not at all, but a power cut or a crash of the machine can lose what was journaled
(as with cp, aws s3 cp and rclone); use it for copies that can be made again.

An object larger than a frame comes as pieces (s3-get --pieces-above; docs/FORMAT.md): frames
of one key with "offset", one after the other. They become the parts of one multipart upload
(in a directory, one temporary file), and the object appears only once the last piece came
and the whole object's SHA-256 matched the records' "sha256" (when given; on S3 it is kept
with the object only then). An input that stops between two pieces stores nothing of that
object. With --uploads, such an upload is journaled and continued as any other (below).

On S3, an object larger than --part-size goes up as a multipart upload, in parts of that size
(grown for objects beyond 10,000 parts). With --uploads FILE, every upload and every part the
server accepted is recorded in FILE; an upload cut short (a failure, a signal, a crash) is kept
instead of aborted, and a rerun with the same FILE continues it: it asks the server which parts
it holds, keeps those whose size and ETag match the journal and whose bytes have the SHA-256
recorded for them, and sends only the others. An upload recorded for other content (the object
changed since) is aborted and started again. "s3-put --abort-stale URL" aborts the multipart
uploads under URL begun more than --older-than ago, which frees their parts (a rerun then
starts those objects anew), and in a directory removes the temporary files of killed runs; it
prints an "upload" record for each.

Options:
  -j, --jobs N             objects written at once, 1 to 64 (default 8); at most
                           ${MAX_BYTES_IN_FLIGHT >> 20} MiB of data is held for writing, plus one object
  --storage-class CLASS    store the objects in this class (S3: STANDARD_IA, GLACIER, ...)
  --metadata NAME=VALUE    user metadata for every object (repeatable); S3 keeps lower-case
                           names and printable ASCII values
  --part-size SIZE         multipart part size on S3, 5M to 5G (default ${DEFAULT_PART_SIZE >> 20}M)
  --uploads FILE           journal of multipart uploads (appended): continue those it records
  --no-fsync               a directory: do not flush files and folders to disk (see above)
  --abort-stale            read no input: abort the unfinished uploads under URL begun more
                           than --older-than ago (default ${DEFAULT_STALE_AGE / 3600000}h; 0 for all of them)
  --older-than AGE         seconds, or with s, m, h or d (30m, 24h, 7d)
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  file-blocks disk.img | zstd-chunk | s3-put /backups/disk > disk.journal
  s3-list /backups/a | s3-get | s3-put /backups/b > copy.journal
  s3-list /backups/a | skip --done copy.journal | s3-get | s3-put /backups/b >> copy.journal
  s3-list /data | s3-get | s3-put --uploads up.log --metadata team=db s3://bkt/data > put.journal
  s3-put --abort-stale --older-than 7d s3://bkt/data
  s3-list /images | s3-get --pieces-above 64M | s3-put s3://bkt/images > put.journal

On an input that ends without its trailer, the objects already written stay (and are
journaled), no commit object is written, and the status is 3. On SIGINT or SIGTERM no commit
object is written either; objects stored by then stay, journaled or not.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 's3-put',
  usage: USAGE,
  flags: storeFlags({
    string: ['jobs', 'storage-class', 'metadata', 'part-size', 'uploads', 'older-than'],
    // --no-fsync turns it off.
    boolean: ['abort-stale', 'fsync'],
    default: { fsync: true },
    repeatable: ['metadata'],
    alias: { j: 'jobs' },
  }),
  positionals: { min: 1, max: 1 },
  async run(args, ctx) {
    const jobs = intFlag(args, 'jobs', 8, 1, 64);
    const partSize = sizeFlag(args, 'part-size', DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_PART_SIZE);
    // A bad URL is a usage error before anything is opened.
    parseStoreUrl(args._[0]);
    if (args['abort-stale']) {
      const store = openStore(args._[0], s3Settings(args, ctx.signal));
      for (const flag of ['uploads', 'metadata', 'storage-class']) if (args[flag] !== undefined) throw new UsageError(`--${flag} does not go with --abort-stale`);
      return abortStale(ctx, store, durationFlag(args, 'older-than', DEFAULT_STALE_AGE));
    }
    if (args['older-than'] !== undefined) throw new UsageError('--older-than goes with --abort-stale');
    const uploadsFile = stringFlag(args, 'uploads');
    const uploads = uploadsFile === undefined ? undefined : await UploadJournal.open(uploadsFile, ctx.log);
    // Objects are hashed on these threads; on the main thread, hashing was a third of its work.
    const sha = new ShaPool();
    // Objects that come in pieces are hashed on this one, in order.
    const serial = new SerialSha();
    const store = openStore(args._[0], { ...s3Settings(args, ctx.signal), partSize, sha, fsync: args.fsync !== false });
    try {
      // Whole objects' data is read into these, and they come back once the object is stored.
      const payloads = new PayloadPool(DEFAULT_PART_SIZE, MAX_BYTES_IN_FLIGHT / DEFAULT_PART_SIZE + 2);
      const writer = new Writer(ctx, store, { storageClass: stringFlag(args, 'storage-class'), metadata: metadataFlag(args), uploads, serial, payloads });
      const payloadBuffer = (length: number, rec: Rec) => (rec.type === 'object' && !isPiece(rec) ? payloads.take(length) : undefined);
      try {
        await transform(ctx, { decode: { payloadBuffer } }, writeCommitLast(ctx, writer, jobs, MAX_BYTES_IN_FLIGHT));
      } finally {
        await writer.pieces.abandon();
      }
    } finally {
      await Promise.all([uploads?.close(), sha.close(), serial.close()]);
    }
  },
});

/** --metadata NAME=VALUE, given any number of times. */
function metadataFlag(args: Args): Record<string, string> | undefined {
  const given = args.metadata === undefined ? [] : ([] as unknown[]).concat(args.metadata).map(String);
  if (!given.length) return undefined;
  const metadata: Record<string, string> = {};
  for (const pair of given) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new UsageError(`--metadata must be NAME=VALUE, got ${JSON.stringify(pair)}`);
    metadata[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return metadata;
}


interface WriteOptions {
  serial?: SerialSha;
  storageClass?: string;
  metadata?: Record<string, string>;
  uploads?: UploadJournal;
  /** Where the data of whole objects goes back once they are stored. */
  payloads?: PayloadPool;
}

class Writer implements ObjectWriter {
  private readonly storageClass: string | undefined;
  readonly pieces: PieceJoiner;

  constructor(
    private readonly ctx: Context,
    private readonly store: ObjectStore,
    private readonly opts: WriteOptions,
  ) {
    this.storageClass = opts.storageClass;
    this.pieces = new PieceJoiner(ctx, store, (sha256) => ({ sha256, storageClass: this.storageClass, metadata: opts.metadata, uploads: opts.uploads, batch: true }), opts.serial);
  }

  private commitBytes = 0;

  sort(rec: Rec): 'pass' | 'write' | 'commit' {
    if (isPiece(rec)) {
      this.checkKey(rec);
      this.pieces.accept(rec);
      return 'write';
    }
    this.pieces.interrupt(rec);
    if (rec.type !== 'object') {
      if (rec.type === 'block' && rec[PAYLOAD]) {
        throw badRecord(this.ctx, rec, 'a block with data: s3-put stores objects; make objects of blocks first (zstd-chunk)');
      }
      delete rec[PAYLOAD];
      return 'pass';
    }
    this.check(rec);
    if (rec.commit !== true) return 'write';
    this.checkSha(rec);
    this.commitBytes += this.heldBytes(rec);
    if (this.commitBytes > MAX_COMMIT_BYTES) {
      throw badRecord(this.ctx, rec, `commit objects add up to more than ${MAX_COMMIT_BYTES >> 20} MiB: they are held in memory until everything else is written`);
    }
    return 'commit';
  }

  heldBytes(rec: Rec): number {
    return rec[PAYLOAD]?.length ?? 0;
  }

  /** Refuses an object record that cannot be written as it is. */
  check(rec: Rec): void {
    this.checkKey(rec);
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

  private checkKey(rec: Rec): void {
    const problem = keyProblem(rec.key);
    if (problem) throw badRecord(this.ctx, rec, problem);
  }

  endOfInput(): void {
    this.pieces.endOfInput();
  }

  /** Checks a held object at once, rather than after everything else was written. */
  checkSha(rec: Rec): void {
    if (typeof rec.sha256 !== 'string') return;
    const actual = sha256b64(this.data(rec));
    if (actual !== rec.sha256) throw this.integrity(rec, `the data's SHA-256 is ${actual}, the record says ${rec.sha256}`);
  }

  /** Stores the object; resolves to its journal record. */
  async write(rec: Rec): Promise<Rec | undefined> {
    const data = this.data(rec);
    // Taken now: put() may move the bytes to a hashing thread.
    const size = data.length;
    let written;
    try {
      if (isPiece(rec)) {
        written = await this.pieces.write(rec);
        // Journaled once, as the whole object, by its last piece.
        if (!written) return undefined;
        delete rec.offset;
      } else written = await this.store.put(rec.key as string, data, {
        sha256: rec.sha256 as string | undefined,
        storageClass: this.storageClass,
        metadata: this.opts.metadata,
        uploads: this.opts.uploads,
        batch: true,
      });
    } catch (err) {
      throw storeErrorAt(this.ctx, rec, err);
    } finally {
      // Stored (or failed): nothing reads these bytes any more. A piece's may still be.
      if (!isPiece(rec)) this.opts.payloads?.give(data);
    }
    delete rec[PAYLOAD];
    rec.size ??= size;
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
  durable(out: Encoder): Promise<Buffer[]> {
    return flushThenTake(this.ctx, this.store, out);
  }

  private data(rec: Rec): Buffer {
    return rec[PAYLOAD] ?? Buffer.alloc(0);
  }

  private integrity(rec: Rec, what: string): IntegrityError {
    return new IntegrityError(`${this.ctx.command}: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}: object ${JSON.stringify(rec.key)}: ${what}; nothing was stored`);
  }
}
