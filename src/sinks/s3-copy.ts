import { command, EXIT_STATUS_TEXT, intFlag, sizeFlag, stringFlag, type Context } from '../core/command';
import { sha256b64 } from '../core/digest';
import type { Encoder } from '../core/encode';
import { IntegrityError, UsageError } from '../core/errors';
import { flushThenTake, writeCommitLast, type ObjectWriter } from '../core/commit-last';
import { RecordStores } from '../core/record-stores';
import { PAYLOAD, type Rec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import { BufferPool } from '../core/buffer-pool';
import { keyProblem, openStore, storeErrorAt, type GetOptions, type ObjectStore } from '../core/store';
import type { CopyOptions, CopyResult } from '../core/store-s3-copy';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT } from '../core/store-s3-flags';
import { DEFAULT_PART_SIZE as PAYLOAD_SIZE, MAX_PART_SIZE as MAX_COPY_SIZE, MIN_PART_SIZE } from '../core/store-s3-limits';
import { copyInPieces, PIECE_JOBS, PIECED_BYTES, PIECES_ABOVE } from './s3-copy-pieces';
import { SerialSha } from '../core/serial-sha';
import { ShaPool } from '../core/sha-pool';

// Data held for objects copied through this process (get and put): as s3-put.
const MAX_BYTES_IN_FLIGHT = 64 << 20;
const MIB = 1 << 20;
// Parts of a server-side multipart copy: S3 moves the bytes, so few large calls are best.
const DEFAULT_PART_SIZE = 256 * MIB;

const USAGE = `Usage: s3-copy --to URL [options] [URL]

Copies every object an "object" record names (its "key", in the store its "store" field
names, as s3-list writes it; or in URL when given) to the same key under the --to URL, in
parallel, and prints a journal: one record per object copied, after it was copied (in input
order), being the input record plus "size", "etag", "sha256" (base64, when known) and
"store" (the --to URL), as s3-put's journal. Other records go to the journal as they are,
and the journal ends with its own trailer. Records need no data: a listing is enough (data
that records carry is not used). An existing object of the same key is replaced.

When both stores are on S3 (the S3 flags apply to both, so they share an endpoint), S3 copies
the object itself and no byte of it passes through here: CopyObject up to the multipart
threshold (5 GiB, CopyObject's limit), and beyond it a multipart upload of UploadPartCopy
calls, 8 parts of an object at once, each retried, the upload aborted on failure. Each call
names the ETag the source had when the copy began (x-amz-copy-source-if-match), so the copy is
of one version; a source replaced meanwhile is copied again, once. The source's metadata, with
the SHA-256 it keeps (x-amz-meta-sluice-sha256), goes with it, so the copy reads back checked.
Otherwise (a local directory on either side) each object is read (get, checked against the
store's checksum) and written (put, its SHA-256 kept), holding at most ${MAX_BYTES_IN_FLIGHT >> 20} MiB of data plus one
object; an object larger than ${PIECES_ABOVE >> 20} MiB goes in pieces of 8 MiB (read as ranges, ${PIECE_JOBS} at once,
or, from a plain-http endpoint, as the consecutive parts of one GET of the whole object;
written as the parts of one upload or into one temporary file), checked whole before it
appears, so it holds ${PIECED_BYTES >> 20} MiB (one piece more, streamed) however large it is. Either way a record's "size"
and "sha256", when given, must match the source object (status 5), checked before anything of
it is copied.

A record with "versionId" (s3-list --versions) copies that version of the object (the copy
is a new object, with its own version); a delete marker ("deleteMarker": true) is refused
(status 4). Versions of one key are copied in no set order: keep one record per key.

An object whose record has "commit": true (a layout's volume.json or stream.json, as s3-list
marks them) is copied last: only once every other object was copied (and made durable) and
the input's "end" trailer was read and valid, so the copy never holds a marker promising
objects it does not have. When a copy fails, every other object that was copied is still
journaled, and the status is that of the failure (1 for an object that is not there, naming
the input line and the key).

Options:
  --to URL                 the store to copy into: a directory or s3://bucket/prefix (required)
  -j, --jobs N             objects copied at once, 1 to 64 (default 8)
  --no-fsync               --to a directory: do not flush files and folders to disk (as
                           s3-put --no-fsync: each file still appears whole or not at all,
                           but a crash of the machine can lose what was journaled)
  --storage-class CLASS    store the copies in this class (S3: STANDARD_IA, GLACIER, ...;
                           without it a server-side copy is STANDARD)
  --multipart-threshold SIZE
                           objects larger than SIZE are copied server-side in parts (bytes,
                           or with K, M, G; 5M to 5G, default 5G)
  --part-size SIZE         part size of those copies (5M to 5G, default ${DEFAULT_PART_SIZE / MIB}M; grown to stay
                           within 10,000 parts)
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  s3-list s3://bkt/backups/vol-1 | s3-copy --to s3://bkt/archive/vol-1 > copy.journal
  s3-list s3://bkt/a | skip --done copy.journal | s3-copy --to s3://bkt/b >> copy.journal
  s3-list /backups/vol-1 | s3-copy --to s3://bkt/vol-1 --storage-class STANDARD_IA > up.journal

On an input that ends without its trailer, the objects already copied stay (and are
journaled), no commit object is copied, and the status is 3. On SIGINT or SIGTERM no commit
object is copied either.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 's3-copy',
  usage: USAGE,
  // --no-fsync turns it off.
  flags: storeFlags({ string: ['to', 'jobs', 'storage-class', 'multipart-threshold', 'part-size'], boolean: ['fsync'], default: { fsync: true }, alias: { j: 'jobs' } }),
  positionals: { max: 1 },
  async run(args, ctx) {
    const jobs = intFlag(args, 'jobs', 8, 1, 64);
    const to = stringFlag(args, 'to');
    if (to === undefined) throw new UsageError('--to URL is needed: the store to copy into');
    // Objects that pass through are hashed (checked, or kept with the copy) on these threads.
    const sha = new ShaPool();
    const settings = { ...s3Settings(args, ctx.signal), sha, fsync: args.fsync !== false };
    const copier = new Copier(ctx, new RecordStores(ctx, settings, args._[0] === undefined ? undefined : openStore(args._[0], settings)), openStore(to, settings), {
      storageClass: stringFlag(args, 'storage-class'),
      multipartThreshold: sizeFlag(args, 'multipart-threshold', MAX_COPY_SIZE, MIN_PART_SIZE, MAX_COPY_SIZE),
      partSize: sizeFlag(args, 'part-size', DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_COPY_SIZE),
    });
    try {
      await transform(ctx, {}, writeCommitLast(ctx, copier, jobs, MAX_BYTES_IN_FLIGHT));
    } finally {
      await Promise.all([copier.serial.close(), sha.close()]);
    }
  },
});

class Copier implements ObjectWriter {
  // Per source store: whether S3 copies from it to the destination itself.
  private readonly serverSide = new Map<ObjectStore, boolean>();
  private copyModule: typeof import('../core/store-s3-copy') | undefined;
  /** The thread that hashes large objects copied in pieces (started only if there are some). */
  readonly serial = new SerialSha();
  // Objects are read into buffers used again once written: a fresh 8 MiB buffer per object
  // made V8 mark its whole heap again and again (a fifth of a download's CPU).
  private readonly payloads = new BufferPool(PAYLOAD_SIZE, MAX_BYTES_IN_FLIGHT / PAYLOAD_SIZE);

  constructor(
    private readonly ctx: Context,
    private readonly sources: RecordStores,
    private readonly dest: ObjectStore,
    private readonly opts: CopyOptions,
  ) {}

  /** Refuses an object record that cannot be copied as it is. */
  check(rec: Rec): void {
    const problem = keyProblem(rec.key);
    if (problem) throw badRecord(this.ctx, rec, problem);
    const key = JSON.stringify(rec.key);
    if (rec.size !== undefined && !(Number.isSafeInteger(rec.size) && (rec.size as number) >= 0)) {
      throw badRecord(this.ctx, rec, `object ${key}: "size" must be a non-negative integer, got ${JSON.stringify(rec.size)}`);
    }
    if (rec.sha256 !== undefined && typeof rec.sha256 !== 'string') throw badRecord(this.ctx, rec, `object ${key}: "sha256" must be a base64 string`);
    const versionId = rec.versionId;
    if (versionId !== undefined && (typeof versionId !== 'string' || versionId === '')) throw badRecord(this.ctx, rec, `object ${key}: "versionId" must be a non-empty string, got ${JSON.stringify(versionId)}`);
    if (rec.deleteMarker === true) throw badRecord(this.ctx, rec, `object ${key} version ${versionId}: a delete marker has no data to copy (leave out records with "deleteMarker": true)`);
    // The source store is opened (its URL checked) now, in input order.
    this.sources.for(rec);
  }

  /** The bytes a copy holds in memory while it runs: none when S3 copies it. */
  heldBytes(rec: Rec): number {
    if (this.isServerSide(this.sources.for(rec))) return 0;
    if (typeof rec.size !== 'number') return 0;
    return rec.size > PIECES_ABOVE && rec.versionId === undefined ? PIECED_BYTES : rec.size;
  }

  sort(rec: Rec): 'pass' | 'write' | 'commit' {
    // Data that came with a record is not what is copied, and not journaled.
    delete rec[PAYLOAD];
    if (rec.type !== 'object') return 'pass';
    this.check(rec);
    return rec.commit === true ? 'commit' : 'write';
  }

  /** Copies the object; resolves to its journal record. */
  async write(rec: Rec): Promise<Rec> {
    const from = this.sources.for(rec);
    const key = rec.key as string;
    const expect = { size: rec.size as number | undefined, sha256: rec.sha256 as string | undefined };
    const versionId = rec.versionId as string | undefined;
    let copied: Omit<CopyResult, 'parts'>;
    try {
      if (this.isServerSide(from)) {
        // Loaded by isServerSide: both stores are S3 stores.
        const m = this.copyModule!;
        copied = await m.copyServerSide(from as import('../core/store-s3').S3Store, this.dest as import('../core/store-s3').S3Store, key, { ...this.opts, expect, versionId });
      } else {
        copied = await this.getPut(from, key, expect, versionId);
      }
    } catch (err) {
      throw storeErrorAt(this.ctx, rec, err);
    }
    // A new record: the input's batch must not be kept alive by it.
    const done: Rec = { ...rec, size: copied.size, etag: copied.etag, store: this.dest.url };
    if (copied.sha256 !== undefined) done.sha256 = copied.sha256;
    else delete done.sha256;
    // These described the object where it came from, not where it is now.
    if (copied.versionId !== undefined) done.versionId = copied.versionId;
    else delete done.versionId;
    if (this.opts.storageClass !== undefined) done.storageClass = this.opts.storageClass;
    else delete done.storageClass;
    delete done.latest;
    return done;
  }

  /** Makes the objects copied so far durable; gives what `out` holds, ready to journal. */
  durable(out: Encoder): Promise<Buffer[]> {
    return flushThenTake(this.ctx, this.dest, out);
  }

  private isServerSide(from: ObjectStore): boolean {
    let known = this.serverSide.get(from);
    if (known === undefined) {
      known = false;
      // Only S3 stores can: a copy between local directories never loads the AWS SDK.
      if (from.url.startsWith('s3://') && this.dest.url.startsWith('s3://')) {
        this.copyModule ??= require('../core/store-s3-copy') as typeof import('../core/store-s3-copy');
        known = this.copyModule.canCopyServerSide(from, this.dest);
      }
      this.serverSide.set(from, known);
    }
    return known;
  }

  /** Through this process: the source's bytes read and checked, then written. */
  private async getPut(from: ObjectStore, key: string, expect: { size?: number; sha256?: string }, versionId: string | undefined): Promise<Omit<CopyResult, 'parts'>> {
    // A large object (or version) goes in pieces.
    let size = expect.size;
    if (size === undefined || size > PIECES_ABOVE) {
      const info = await from.head(key, versionId);
      if (size !== undefined && info.size !== size) throw this.integrity(from, key, `the object is ${info.size} bytes, the record says ${size}`);
      if (info.size > PIECES_ABOVE) return copyInPieces({ from, to: this.dest, key, versionId, info, sha256: expect.sha256, storageClass: this.opts.storageClass, serial: this.serial, buffers: this.payloads });
      size = info.size;
    }
    // An object larger than a buffer of the pool would leave its first range's buffer behind.
    const buffer = size !== undefined && size <= this.payloads.size ? this.payloads.takeFor : undefined;
    const opts: GetOptions & { versionId?: string } = versionId === undefined ? { buffer } : { versionId, buffer };
    const { data, info } = await from.get(key, opts);
    if (expect.size !== undefined && data.length !== expect.size) throw this.integrity(from, key, `${data.length} bytes read, the record says ${expect.size}`);
    // The store has checked the data against its own checksum already.
    if (expect.sha256 !== undefined && expect.sha256 !== info.sha256) {
      const actual = sha256b64(data);
      if (actual !== expect.sha256) throw this.integrity(from, key, `the data's SHA-256 is ${actual}, the record says ${expect.sha256}`);
    }
    const metadata = info.metadata && Object.keys(info.metadata).length ? info.metadata : undefined;
    const bytes = data.length;
    // A whole get checked the bytes against info.sha256: the put need not hash them again.
    const written = await this.dest.put(key, data, { sha256: info.sha256, sha256Known: info.sha256 !== undefined, storageClass: this.opts.storageClass, metadata, batch: true });
    // Only a put that succeeded is done with the bytes (one that failed may still be sending
    // them); a buffer that went to a hashing thread in the put is not the pool's any more.
    this.payloads.lend(data, 0);
    return { size: bytes, etag: written.etag, sha256: written.sha256, versionId: written.versionId };
  }

  /** Located by storeErrorAt, as the store's own errors are. */
  private integrity(from: ObjectStore, key: string, what: string): IntegrityError {
    return new IntegrityError(`${from.url}: object ${JSON.stringify(key)}: ${what}; nothing was copied`);
  }
}
