// The object store contract: what every store (a local directory, S3) must guarantee, and the
// factory that opens a store from its URL.
import { SluiceError } from './errors';
import { LocalStore } from './store-local';
import { parseStoreUrl } from './store-url';
import type { S3StoreOptions } from './store-s3';
import type { UploadJournal } from './upload-journal';
import type { RestoreOptions, RestoreState, VersionChoice } from './store-restore';
import type { BodySegments } from './raw-http';

/** One stored object, as a listing or a HEAD sees it. */
export interface ObjectInfo {
  /** Relative to the store URL's prefix. */
  key: string;
  /** Bytes as stored. */
  size: number;
  mtime: Date;
  /**
   * Quotes included, as S3 gives it. Opaque: equal content written to one store gives equal
   * ETags, but how it is made is the store's business (S3: the MD5 for a single-part upload,
   * something else for a multipart one; a local directory: the hex SHA-256). Compare ETags only
   * with ETags of the same store, and use `sha256` to compare content.
   */
  etag?: string;
  /** `STANDARD`, `GLACIER`, ... when the store knows it. */
  storageClass?: string;
  /** base64 SHA-256 of the whole object, when the store keeps one. */
  sha256?: string;
  versionId?: string;
  /** User metadata given to put(); head() and get() return it, list() may leave it out. */
  metadata?: Record<string, string>;
}

export interface ListOptions {
  /** Only keys after this one (in key order), as S3's StartAfter. */
  startAfter?: string;
  /** Objects per page, 1 to 1000 (default 1000, S3's page). */
  pageSize?: number;
}

/** The page size a listing asked for; a RangeError if no store can list in such pages. */
export function pageSizeOf(opts: ListOptions): number {
  const pageSize = opts.pageSize ?? 1000;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > 1000) throw new RangeError(`page size must be 1 to 1000, got ${pageSize}`);
  return pageSize;
}

export interface GetOptions {
  /** Bytes [start, end) of the object; end defaults to the object's end. */
  range?: { start: number; end?: number };
  /**
   * Read this version (as listVersions() names it) instead of the current object; a version
   * the store does not hold is a NotFoundError.
   */
  versionId?: string;
  /**
   * A buffer to read `size` bytes into (at least that long, at offset 0 of an ArrayBuffer nothing
   * else uses), or undefined for the store to make one; the data is then a view of it, or of the
   * ArrayBuffer a hashing thread gave back. Not to be used again after a failed read (which may
   * still be writing into it).
   */
  buffer?: (size: number) => Buffer | undefined;
}

/**
 * One entry of a listing of versions: a version of an object, or a delete marker (which makes
 * its key read as absent while it is the latest, and has no data, size or ETag).
 */
export type VersionInfo = StoredVersion | DeleteMarker;

/** S3's id of the one version of a key written while its bucket had no versioning. */
export const NULL_VERSION = 'null';

export interface VersionOf {
  /** S3's id; NULL_VERSION for the one version of a key written while versioning was off. */
  versionId: string;
  /** Whether this is what the key reads as now. */
  latest: boolean;
}

export interface StoredVersion extends Omit<ObjectInfo, 'versionId'>, VersionOf {
  deleteMarker?: false;
}

export interface DeleteMarker extends VersionOf {
  key: string;
  mtime: Date;
  deleteMarker: true;
}

export interface GetResult {
  data: Buffer;
  info: ObjectInfo;
}

export interface PutOptions {
  /** base64 SHA-256 the data must have: a mismatch is an IntegrityError and nothing is stored. */
  sha256?: string;
  /**
   * `sha256` was computed over these very bytes in this process (a whole get that checked them
   * against it, GetResult): it is taken as the data's, not computed again.
   */
  sha256Known?: boolean;
  storageClass?: string;
  metadata?: Record<string, string>;
  /**
   * Leave part of the object's durability to the next flush() (a local directory: the flush of
   * its folder, done once there for every put of the batch instead of once per put). Until then
   * the object is stored and readable, but a power cut may lose it.
   */
  batch?: boolean;
  /**
   * Where multipart uploads are journaled (S3): an upload interrupted by a failure or a signal
   * is kept, not aborted, and the next put of the same object continues it. A store that
   * writes an object in one piece ignores it.
   */
  uploads?: UploadJournal;
}

/** An object being written in pieces (ObjectStore.putPieces). */
export interface PieceWrite {
  /** Stores piece `index` (bytes from index × pieceSize); pieces may come in any order, several at once. */
  write(index: number, data: Uint8Array): Promise<void>;
  /**
   * Makes the object appear, whole, once every piece was written; `sha256` is the SHA-256 of all
   * its bytes (the caller hashed them in order). One that differs from putPieces()'s
   * `opts.sha256` is an IntegrityError and nothing is stored. Durable as a put with `batch`.
   */
  commit(sha256: string): Promise<PutResult>;
  /** Stores nothing; drops what was written (best effort), or keeps a journaled upload for a rerun. */
  abort(): Promise<void>;
}

/** A write begun and never finished: a multipart upload, or a temporary file. */
export interface UnfinishedWrite {
  /** The key being written (a directory: the folder's key prefix, ending in "/" or empty). */
  key: string;
  /** The upload id, or the temporary file's name. */
  id: string;
  started: Date;
}

export type { RestoreOptions, RestoreState, VersionChoice } from './store-restore';

export interface PutResult {
  etag: string;
  /** base64 SHA-256 of the bytes stored. */
  sha256: string;
  versionId?: string;
}

/**
 * An object store under one URL. Keys are strings of 1 to 1024 UTF-8 bytes (S3's rule); any such
 * key can be stored, `..`, `//`, `%` and all, and every store keeps it exactly.
 */
export interface ObjectStore {
  /** The store's URL in canonical form: an absolute path, or `s3://bucket/prefix/`. */
  readonly url: string;

  /**
   * Every object whose key starts with `prefix` (a key prefix, not a folder: `a/b` lists `a/b`,
   * `a/bc` and `a/b/c`), in UTF-8 byte order of the full key, in pages of at most `pageSize`.
   * Must stream: memory is bounded by a page (and, for a directory, the entries of the folders
   * being read), never by the number of objects. Objects put or deleted while a listing runs
   * may or may not appear in it. Temporary files of writes in progress never appear.
   * A store that does not exist at all is a NotFoundError; an empty prefix lists nothing.
   */
  list(prefix: string, opts?: ListOptions): AsyncIterable<ObjectInfo[]>;

  /**
   * Every version and delete marker of the keys list() would list (same prefix, startAfter,
   * pages and streaming), in key order and, within a key, newest first. Required of every
   * store, so that one pipeline works on any of them: a store that keeps no versions (a local
   * directory) lists each object as its one version, versionId "null" and latest, which is
   * what S3 lists for a bucket that never had versioning, and get() with versionId "null"
   * reads it there as on S3.
   */
  listVersions(prefix: string, opts?: ListOptions): AsyncIterable<VersionInfo[]>;

  /** Bytes [start, end) of the current object (ETag `ifMatch`) by one request, in segments
   * (raw-http.ts), resumed where a transfer broke off; its description as the reply gave it.
   * Undefined, having read nothing, where ranges are better (https, a directory). Optional. */
  readSegments?(key: string, range: { start: number; end: number }, reader: BodySegments, ifMatch: string): Promise<ObjectInfo | undefined>;
  /** Whether readSegments() streams here (else it gives undefined). */
  streamsReads?(): Promise<boolean>;

  /** The object's (or its version's) description, with metadata; NotFoundError if there is none. */
  head(key: string, versionId?: string): Promise<ObjectInfo>;

  /**
   * The object's bytes (whole, or a range), checked against what the store kept: a whole
   * object whose length or stored SHA-256 does not match is an IntegrityError (exit 5), not
   * data; so the `sha256` of a whole object's info is that of the bytes given. A range starting at or past the end gives an empty buffer. NotFoundError if there is
   * no such object; StoreError kind "archived" if its storage class needs a restore first.
   * Large objects are read in ranges (as parallel S3 downloaders do), so a Buffer is enough.
   */
  get(key: string, opts?: GetOptions): Promise<GetResult>;

  /**
   * Stores `data` under `key`, replacing any object there, atomically: a reader sees the old
   * object or the new one, never a part, and a failed put leaves the old one (or none). The
   * SHA-256 is computed, kept with the object, and returned; `opts.sha256` is checked before
   * anything is stored. Two puts of one key at once: one of them wins, whole. Without `batch`
   * the object is durable (survives a power cut) when the put resolves. `data` may be moved to
   * a hashing thread (detached): the caller must not use it once put() was called.
   */
  put(key: string, data: Uint8Array, opts?: PutOptions): Promise<PutResult>;

  /**
   * Begins writing an object of `size` bytes that arrives in pieces of `pieceSize` bytes (the
   * last one shorter), too large to hold whole: S3 makes each piece a part of one multipart
   * upload, a directory writes them into one temporary file. Nothing shows under `key` until
   * commit(); a write that is aborted, or never committed, leaves the old object (or none).
   * With `opts.sha256` (known before the bytes are, as when copying a stored object) the store
   * keeps it as the object's checksum; without, a directory keeps the one commit() is given
   * and S3 keeps none. With `opts.uploads`, S3 journals the upload and continues one a journal
   * recorded for the same object, as put() does.
   */
  putPieces(key: string, size: number, pieceSize: number, opts?: PutOptions): Promise<PieceWrite>;

  /**
   * Makes durable every object whose put (with `batch`) resolved before this call; a store
   * whose puts are durable when they resolve has nothing to do. Call it before recording
   * anywhere that those objects exist, and before writing an object that points to them.
   */
  flush(): Promise<void>;

  /** Deletes the objects; keys that do not exist are not an error (S3's DeleteObjects). */
  delete(keys: string[]): Promise<void>;

  /**
   * Whether the object, or the version `opts.versionId`, can be read now (one HEAD on S3);
   * NotFoundError if there is none.
   */
  restoreState(key: string, opts?: VersionChoice): Promise<RestoreState>;

  /**
   * Asks for a readable copy of an archived object (of the version `opts.versionId`, when
   * given), unless it is readable or being restored already; gives the state after asking. A
   * store that never archives gives `readable`. NotFoundError if there is no such object.
   */
  restore(key: string, opts: RestoreOptions): Promise<RestoreState>;

  /**
   * Writes begun under `prefix` and never finished, started before `before`, in key order: S3's
   * multipart uploads not completed or aborted (their parts are stored, and billed, until
   * then); a directory's temporary files that a crash left behind.
   */
  unfinishedWrites(prefix: string, before: Date): AsyncIterable<UnfinishedWrite[]>;

  /** Ends an unfinished write and frees its space; one that is gone already is not an error. */
  discardWrite(write: UnfinishedWrite): Promise<void>;
}

/**
 * How a failure may be retried: `not-found` and `permanent` never succeed by trying again,
 * `transient` may (throttling, 5xx, resets, timeouts, a busy file system), and `archived`
 * needs a restore of the object first.
 */
export type StoreErrorKind = 'not-found' | 'archived' | 'transient' | 'permanent';

export class StoreError extends SluiceError {
  constructor(
    message: string,
    readonly kind: StoreErrorKind,
    readonly key?: string,
  ) {
    super(message);
  }
}

export class NotFoundError extends StoreError {
  constructor(message: string, key?: string) {
    super(message, 'not-found', key);
  }
}

export function isTransient(err: unknown): boolean {
  return err instanceof StoreError && err.kind === 'transient';
}

export { MAX_KEY_BYTES, compareKeys, keyProblem } from './store-keys';

export { parseStoreUrl, type StoreLocation } from './store-url';

/**
 * Opens the store a URL names; `s3` (endpoint, region, profile, abort signal) applies to
 * s3:// URLs, and without it they use the environment's settings. Opening does no I/O: a
 * missing store shows on first use.
 */
export function openStore(url: string, s3: S3StoreOptions = {}): ObjectStore {
  const where = parseStoreUrl(url);
  if (where.kind === 'local') return new LocalStore(where.root, s3.sha, s3.fsync !== false);
  // Loaded here: the AWS SDK is large, and commands on local directories never need it.
  const { S3Store } = require('./store-s3') as typeof import('./store-s3');
  return new S3Store(where.bucket, where.prefix, s3);
}

export { storeErrorAt } from './store-error-at';
