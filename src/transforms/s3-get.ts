import { BufferPool } from '../core/buffer-pool';
import { command, EXIT_STATUS_TEXT, intFlag, sizeFlag, type Context } from '../core/command';
import { DEFAULT_PIECE_SIZE, MAX_PIECE_SIZE, MIN_PIECE_SIZE, pieceSizeFor } from '../core/object-pieces';
import { pieceJobs, type PieceJob } from './s3-get-pieces';
import { StreamedPieces } from './s3-get-stream';
import { DEFAULT_MAX_PAYLOAD } from '../core/decode';
import { sha256b64 } from '../core/digest';
import { IntegrityError, SluiceError } from '../core/errors';
import { OrderedOutput } from '../core/ordered';
import { PAYLOAD, type Rec } from '../core/records';
import { badRecord, integrityError, recordAt, transform } from '../core/stage';
import { RecordStores } from '../core/record-stores';
import { ShaPool } from '../core/sha-pool';
import { SerialSha } from '../core/serial-sha';
import { keyProblem, openStore, StoreError, storeErrorAt, type ObjectInfo, type ObjectStore } from '../core/store';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT, type S3Settings } from '../core/store-s3-flags';
import { DEFAULT_PART_SIZE } from '../core/store-s3-limits';

const USAGE = `Usage: s3-get [options] [URL]

Attaches to every "object" record the object's data, read from URL, or, without URL, from the
store the record names in its "store" field (as s3-list writes it). Other records pass
through untouched. Objects are read in parallel and written out in input order.

Every object is checked before it goes on: its length against the record's "size", and its
SHA-256 against the checksum the store kept and the record's "sha256", when they are known.
The record gains "size", "etag" and "sha256" when it lacked them, and "store" names where the
data was read.

A record with "versionId" (s3-list --versions) reads that version of the object; a local
directory holds only version "null". A delete marker ("deleteMarker": true) has no data and
is refused. An archived object (GLACIER, DEEP_ARCHIVE) must be restored first: put s3-restore
before s3-get.

An object larger than --pieces-above comes out in pieces: consecutive frames of its key, each
with "offset" (where its bytes go) and the whole object's "size", "etag" and "sha256", every
one --piece-size bytes but the last. From a plain-http endpoint (an S3-compatible server),
they are the consecutive parts of one GET of the whole object (after a HEAD, and naming its
ETag): the socket reads a piece only once the output has room for it, and a GET cut off is
made again from the first piece not yet whole. Elsewhere (https: AWS) they are read as
ranges, several at once. The last piece goes out only after the whole object's SHA-256
matched. s3-put joins them into one
object; the stages that need whole objects refuse them. The pieces of one object must all
come from the same version of it (the same ETag, and the record's when it has one).

Options:
  -j, --jobs N             objects (or pieces) read at once, 1 to 64 (default 8); memory
                           holds up to N of them, and N spare buffers of 8M (of
                           --piece-size when larger)
  --pieces-above SIZE      read objects larger than this in pieces (default and most: 256M,
                           the largest frame)
  --piece-size SIZE        bytes per piece, 5M to 256M (default 8M; grown for objects of
                           more than 10,000 pieces)
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  s3-list /backups/vol-1 | s3-get | zstd-unchunk | file-write restored.img
  s3-list /backups/a | s3-get -j 16 | s3-put /backups/b > copy.journal
  s3-list --prefix zstd/ /backups/vol-1 | s3-get | count
  s3-list s3://bkt/images | s3-get --pieces-above 64M | s3-put /restore/images

An object that is not there ends the run with status 1, a mismatch with status 5, each
naming the input line and the key.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 's3-get',
  usage: USAGE,
  flags: storeFlags({ string: ['jobs', 'pieces-above', 'piece-size'], alias: { j: 'jobs' } }),
  positionals: { max: 1 },
  async run(args, ctx) {
    const jobs = intFlag(args, 'jobs', 8, 1, 64);
    const pieces = { above: sizeFlag(args, 'pieces-above', MAX_PIECE_SIZE, MIN_PIECE_SIZE, MAX_PIECE_SIZE), size: sizeFlag(args, 'piece-size', DEFAULT_PIECE_SIZE, MIN_PIECE_SIZE, MAX_PIECE_SIZE) };
    // Objects are checked against their stored SHA-256 on these threads: on the main thread,
    // hashing took a third of a download's time.
    const sha = new ShaPool();
    const settings = { ...s3Settings(args, ctx.signal), sha };
    // Objects (and pieces) are read into buffers of the size S3 stores read in one range, used
    // again once written: a fresh 8 MiB buffer per object made garbage collection a quarter to
    // a third of the main thread's time. At most -j are read at once, and as many kept spare.
    const payloads = new BufferPool(Math.max(DEFAULT_PART_SIZE, pieces.size), jobs);
    const serial = new SerialSha();
    const fetcher = new Fetcher(ctx, settings, args._[0] === undefined ? undefined : openStore(args._[0], settings), pieces, payloads, serial);
    try {
      await fetchAll(ctx, fetcher, jobs);
    } finally {
      await Promise.all([sha.close(), serial.close()]);
    }
  },
});

function fetchAll(ctx: Context, fetcher: Fetcher, jobs: number): Promise<void> {
  return transform(ctx, { frames: true }, async function* (batches, out) {
    const output = new OrderedOutput(jobs);
    for await (const batch of batches) {
      for (const rec of batch) {
        if (rec.type !== 'object') {
          output.records(rec);
          continue;
        }
        const pieces = await fetcher.pieces(rec);
        for (const job of pieces ?? [{ start: () => fetcher.fetch(rec).then((got) => [got]), bytes: 0 }]) {
          while (output.full) {
            await output.flush(out);
            yield* fetcher.payloads.written(out);
          }
          output.job(fetcher.lending(job.start()), job.bytes);
        }
      }
      await output.flush(out);
      yield* fetcher.payloads.written(out);
    }
    await output.flush(out, true);
    yield* fetcher.payloads.written(out);
  });
}

/** A store error, with what the reader of s3-get's message can do about it. */
function withHint(err: unknown, versionId: string | undefined): unknown {
  if (!(err instanceof StoreError)) return err;
  let hint = '';
  if (err.kind === 'archived') hint = ': run s3-restore first (s3-list URL | s3-restore | s3-get)';
  else if (err.kind === 'not-found' && versionId !== undefined && !err.message.includes(versionId)) hint = ` (version ${versionId})`;
  if (!hint) return err;
  return Object.assign(new StoreError(err.message + hint, err.kind, err.key), { cause: err });
}

class Fetcher {
  private readonly stores: RecordStores;

  constructor(
    private readonly ctx: Context,
    settings: S3Settings,
    given: ObjectStore | undefined,
    private readonly piecing: { above: number; size: number },
    readonly payloads: BufferPool,
    /** The thread that hashes objects read in pieces, in order (started only if there are some). */
    readonly serial: SerialSha,
  ) {
    this.stores = new RecordStores(ctx, settings, given);
  }

  /**
   * The records of a job, their buffers lent out until written. Only a read that succeeded and
   * passed its checks gets here: the buffer of one that failed is left to the garbage collector,
   * as the read may still be writing into it.
   */
  async lending(job: Promise<Rec[]>): Promise<Rec[]> {
    const recs = await job;
    for (const rec of recs) {
      const data = rec[PAYLOAD];
      if (data) this.payloads.lend(data, 1);
    }
    return recs;
  }

  /** The jobs that read the record's object in pieces, or undefined to read it whole. */
  async pieces(rec: Rec): Promise<PieceJob[] | undefined> {
    this.check(rec);
    let size = rec.size as number | undefined;
    const key = rec.key as string;
    const versionId = rec.versionId as string | undefined;
    const store = this.stores.for(rec);
    // Without a size (s3-list gives one), the object's or the version's is asked for.
    let head: ObjectInfo | undefined;
    if (size === undefined) {
      try {
        head = await store.head(key, versionId);
        size = head.size;
      } catch (err) {
        throw storeErrorAt(this.ctx, rec, withHint(err, versionId));
      }
    }
    if (size === undefined || size <= this.piecing.above) return undefined;
    const ranged = (range: { start: number; end: number }) => store.get(key, { range, versionId, buffer: this.payloads.takeFor });
    let read = ranged;
    if (versionId === undefined && store.readSegments && (await store.streamsReads?.())) {
      // One streamed GET for all the pieces, of the object the HEAD describes.
      try {
        head ??= await store.head(key);
      } catch (err) {
        throw storeErrorAt(this.ctx, rec, withHint(err, versionId));
      }
      const pieceSize = pieceSizeFor(head.size, this.piecing.size);
      if (head.etag !== undefined && pieceSize !== undefined) {
        const take = () => this.payloads.takeFor(pieceSize) ?? Buffer.allocUnsafeSlow(pieceSize);
        const stream = new StreamedPieces(store, key, { ...head, etag: head.etag }, pieceSize, take, ranged);
        read = (range) => stream.read(range);
      }
    }
    return pieceJobs(this.ctx, store, rec, size, this.piecing.size, (range) =>
      read(range).catch((err: unknown) => {
        throw storeErrorAt(this.ctx, rec, withHint(err, versionId));
      }),
      head,
      this.serial,
    );
  }

  /** Refuses a record that names no readable object. */
  private check(rec: Rec): void {
    const ctx = this.ctx;
    const problem = keyProblem(rec.key);
    if (problem) throw badRecord(ctx, rec, problem);
    const key = rec.key as string;
    const size = rec.size;
    if (size !== undefined && !(Number.isSafeInteger(size) && (size as number) >= 0)) throw badRecord(ctx, rec, `object ${JSON.stringify(key)}: "size" must be a non-negative integer, got ${JSON.stringify(size)}`);
    if (rec.sha256 !== undefined && typeof rec.sha256 !== 'string') throw badRecord(ctx, rec, `object ${JSON.stringify(key)}: "sha256" must be a base64 string`);
    const versionId = rec.versionId;
    if (versionId !== undefined && (typeof versionId !== 'string' || versionId === '')) throw badRecord(ctx, rec, `object ${JSON.stringify(key)}: "versionId" must be a non-empty string, got ${JSON.stringify(versionId)}`);
    if (rec.deleteMarker === true) throw badRecord(ctx, rec, `object ${JSON.stringify(key)} version ${versionId}: a delete marker has no data (leave out records with "deleteMarker": true)`);
  }

  async fetch(rec: Rec): Promise<Rec> {
    const ctx = this.ctx;
    const key = rec.key as string;
    const size = rec.size;
    const versionId = rec.versionId as string | undefined;
    const store = this.stores.for(rec);
    // An object larger than a buffer of the pool would leave its first range's buffer behind.
    const buffer = typeof size === 'number' && size > this.payloads.size ? undefined : this.payloads.takeFor;
    let read;
    try {
      read = await store.get(key, { versionId, buffer });
    } catch (err) {
      throw storeErrorAt(ctx, rec, withHint(err, versionId));
    }
    const { data, info } = read;
    if (data.length > DEFAULT_MAX_PAYLOAD) throw this.tooLarge(rec, key, data.length);
    if (typeof size === 'number' && data.length !== size) throw this.integrity(rec, key, `${data.length} bytes read, the record says ${size}`);
    // The store has checked the data against its own checksum already.
    if (typeof rec.sha256 === 'string' && rec.sha256 !== info.sha256) {
      const actual = sha256b64(data);
      if (actual !== rec.sha256) throw this.integrity(rec, key, `the data's SHA-256 is ${actual}, the record says ${rec.sha256}`);
    }
    // A new record: the input's batch (a manifest chunk holds hundreds of records) must not
    // keep every payload alive until its last record is done.
    const got: Rec = { ...rec, [PAYLOAD]: data, size: data.length, store: store.url };
    if (rec.etag === undefined && info.etag !== undefined) got.etag = info.etag;
    if (rec.sha256 === undefined && info.sha256 !== undefined) got.sha256 = info.sha256;
    return got;
  }

  private integrity(rec: Rec, key: string, what: string): IntegrityError {
    return integrityError(this.ctx, rec, `object ${JSON.stringify(key)}: ${what}`);
  }

  private tooLarge(rec: Rec, key: string, size: number): SluiceError {
    return new SluiceError(`${recordAt(this.ctx, rec)}: object ${JSON.stringify(key)} is ${size} bytes; a frame carries at most ${DEFAULT_MAX_PAYLOAD}`);
  }
}
