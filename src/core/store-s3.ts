// The object store on S3 (or an S3-compatible server): s3://bucket/prefix/, keys under prefix.
//
// The whole object's SHA-256 is kept as user metadata, x-amz-meta-sluice-sha256 (base64): the
// one place that holds it for single-part and multipart objects alike, on AWS and on other
// servers (S3's own SHA-256 checksum of a multipart object is a checksum of part checksums).
// A single PUT also sends it as x-amz-checksum-sha256, which S3 checks before storing; parts of
// a multipart upload carry their CRC32. Reads check the length, that SHA-256 when the object
// has one, and else the MD5 that a single-part object's ETag is.
import { setMaxListeners } from 'node:events';
import type { S3Client, StorageClass } from '@aws-sdk/client-s3';
import { digestOf, type ShaPool } from './sha-pool';
import { eachLimited } from './each-limited';
import { IntegrityError } from './errors';
import { s3Client, s3Sdk } from './store-s3-client';
import type { S3Settings } from './store-s3-flags';
import { DEFAULT_MAX_TRIES, S3ReplyError, withRetries, type RetryPolicy } from './store-s3-errors';
import { checkOf, declarePayloadHash, mismatch } from './store-s3-checks';
import { describeObject, listedObject, metadataProblem, SHA256_META } from './store-s3-records';
import { DEFAULT_PART_SIZE, MIN_PART_SIZE } from './store-s3-limits';
import { abortNamedUpload, listUploads, uploadParts } from './store-s3-multipart';
import { PART_JOBS, readRange, readSegments, type Target } from './store-s3-transfer';
import type { BodySegments } from './raw-http';
import { rawRequests } from './store-s3-raw-get';
import { rawListPage, type ListPage, type ListPageAsk } from './store-s3-raw-list';
import type { SignedRequests } from './signed-requests';
import { startPieces } from './store-s3-pieces';
import { listVersions, versionTarget } from './store-s3-versions';
import { restoreAt, restoreStateAt } from './store-s3-restore';
import { MAX_KEY_BYTES, StoreError, keyProblem, pageSizeOf, type GetOptions, type GetResult, type ListOptions, type ObjectInfo, type ObjectStore, type PieceWrite, type PutOptions, type PutResult, type RestoreOptions, type RestoreState, type UnfinishedWrite, type VersionChoice } from './store';

const DELETE_BATCH = 1000;

export interface S3StoreOptions extends S3Settings {
  /** Bytes per part and per ranged read, at least 5 MiB (S3's least part). */
  partSize?: number;
  /** Tries of one call before a transient failure is final. */
  maxTries?: number;
  /**
   * False: every call through the SDK's client, even where requests can go without it (plain
   * http: store-s3-raw-get.ts), as they do on AWS's https endpoints; for tests of that way.
   */
  raw?: boolean;
}

export class S3Store implements ObjectStore {
  readonly url: string;
  private sdkClient: S3Client | undefined;
  /** Requests that go without the SDK, on a plain-http endpoint; else undefined. */
  private readonly raw: SignedRequests | undefined;
  private readonly policy: RetryPolicy;
  private readonly partSize: number;
  private readonly sha: ShaPool | undefined;
  private readonly settings: S3StoreOptions;

  constructor(
    readonly bucket: string,
    /** Empty, or ending in "/". */
    readonly prefix: string,
    opts: S3StoreOptions = {},
  ) {
    this.url = `s3://${bucket}/${prefix}`;
    this.raw = opts.raw === false ? undefined : rawRequests(opts);
    this.settings = opts;
    this.partSize = opts.partSize ?? DEFAULT_PART_SIZE;
    this.sha = opts.sha;
    if (!(this.partSize >= MIN_PART_SIZE)) throw new RangeError(`part size must be at least ${MIN_PART_SIZE} bytes, got ${this.partSize}`);
    // Every request in flight listens on the command's abort signal.
    if (opts.signal) setMaxListeners(0, opts.signal);
    this.policy = { maxTries: opts.maxTries ?? DEFAULT_MAX_TRIES, signal: opts.signal };
  }

  /**
   * The SDK's client for these settings (one per endpoint, region and profile: two stores with
   * the same client can copy server-side), loaded by the first call that needs it.
   */
  get client(): S3Client {
    return (this.sdkClient ??= s3Client(this.settings));
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncGenerator<ObjectInfo[]> {
    const ask = { bucket: this.bucket, prefix: this.prefix + prefix, maxKeys: pageSizeOf(opts), signal: this.policy.signal };
    // S3 ignores StartAfter once a continuation token is given.
    const startAfter = opts.startAfter === undefined ? undefined : this.prefix + opts.startAfter;
    let token: string | undefined;
    do {
      const page = await withRetries(this.policy, { url: this.url, op: 'ListObjectsV2' }, () => this.listPage({ ...ask, startAfter, token }));
      const objects = page.contents.map((o) => listedObject(o, this.prefix, page.encoded));
      if (objects.length) yield objects;
      token = page.next;
    } while (token !== undefined);
  }

  private async listPage(ask: ListPageAsk): Promise<ListPage> {
    if (this.raw) return rawListPage(this.raw, ask);
    const { ListObjectsV2Command } = s3Sdk();
    const res = await this.client.send(
      new ListObjectsV2Command({
        Bucket: ask.bucket,
        Prefix: ask.prefix,
        MaxKeys: ask.maxKeys,
        StartAfter: ask.token === undefined ? ask.startAfter : undefined,
        ContinuationToken: ask.token,
        // XML cannot carry every character a key may hold (U+0001...): keys come URL-encoded.
        EncodingType: 'url',
      }),
      { abortSignal: ask.signal },
    );
    // A listing that goes on without saying where would end here, incomplete and unnoticed.
    if (res.IsTruncated && !res.NextContinuationToken) throw Object.assign(new Error('the listing says it goes on, without a continuation token'), { name: 'InvalidReply' });
    return { contents: res.Contents ?? [], next: res.IsTruncated ? res.NextContinuationToken : undefined, encoded: res.EncodingType === 'url' };
  }

  listVersions(prefix: string, opts: ListOptions = {}) {
    return listVersions({ client: this.client, bucket: this.bucket, prefix: this.prefix, url: this.url, policy: this.policy }, prefix, opts);
  }

  async head(key: string, versionId?: string): Promise<ObjectInfo> {
    const t = versionId === undefined ? this.target(key) : versionTarget(this.target(key), versionId);
    const res = await withRetries(this.policy, t.where('HeadObject'), () => t.client.send(new (s3Sdk().HeadObjectCommand)({ Bucket: this.bucket, Key: t.fullKey }), { abortSignal: this.policy.signal }));
    return describeObject(key, res, res.ContentLength ?? 0);
  }

  async get(key: string, opts: GetOptions = {}): Promise<GetResult> {
    const t = opts.versionId === undefined ? this.target(key) : versionTarget(this.target(key), opts.versionId);
    if (opts.range) return this.getRange(t, key, opts.range, opts.buffer);
    // A put that replaced the object between its first range and the others fails their
    // If-Match: the new object is read from the start, once.
    return this.getWhole(t, key, opts.buffer).catch((err) => {
      if (statusOf(err) === 412) return this.getWhole(t, key, opts.buffer);
      throw err;
    });
  }

  private async getWhole(t: Target, key: string, buffer: GetOptions['buffer']): Promise<GetResult> {
    let first;
    try {
      first = await readRange(t, 0, this.partSize, { buffer });
    } catch (err) {
      // A range of an empty object is "not satisfiable" on S3: read it whole.
      if (!isInvalidRange(err)) throw err;
      first = await readRange(t, 0, undefined);
    }
    const info = describeObject(key, first.head, first.total);
    let data = first.data;
    if (first.total > data.length) {
      // Its own ArrayBuffer, which can move to a hashing thread.
      data = Buffer.allocUnsafeSlow(first.total);
      first.data.copy(data);
      const starts: number[] = [];
      for (let s = first.data.length; s < first.total; s += this.partSize) starts.push(s);
      await eachLimited(starts, PART_JOBS, async (s) => {
        const into = data.subarray(s, Math.min(s + this.partSize, first.total));
        await readRange(t, s, into.length, { into, ifMatch: info.etag });
      });
    }
    const check = checkOf(info, first.head.ServerSideEncryption, first.head.SSECustomerAlgorithm);
    // The hash may move the bytes to another thread and back, into a new Buffer; one range's
    // buffer is this read's alone, even when longer than the object (a reused one).
    const hashed = check ? await digestOf(data, check.kind, this.sha, data === first.data) : { data, digest: undefined };
    const problem = mismatch(hashed.data, info, check, hashed.digest);
    if (problem) throw new IntegrityError(`${this.url}: object ${JSON.stringify(key)}: ${problem}`);
    return { data: hashed.data, info };
  }

  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<PutResult> {
    const t = this.target(key);
    const problem = metadataProblem(opts.metadata);
    if (problem) throw new StoreError(`${this.url}: object ${JSON.stringify(key)}: ${problem}`, 'permanent', key);
    // On a hashing thread when the command has some; the bytes come back in a new Buffer.
    const hashed = opts.sha256Known && opts.sha256 !== undefined ? { data: Buffer.from(data.buffer, data.byteOffset, data.length), digest: opts.sha256 } : await digestOf(Buffer.from(data.buffer, data.byteOffset, data.length), 'sha256', this.sha);
    data = hashed.data;
    const sha256 = hashed.digest;
    if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
      throw new IntegrityError(`${this.url}: object ${JSON.stringify(key)}: the data's SHA-256 is ${sha256}, expected ${opts.sha256}; nothing was stored`);
    }
    const metadata = { ...opts.metadata, [SHA256_META]: sha256 };
    if (data.length > this.partSize) {
      const done = await uploadParts(t, data, { storageClass: opts.storageClass, metadata, partSize: this.partSize, sha256, journal: opts.uploads });
      return { etag: done.etag, sha256, versionId: versionOf(done.versionId) };
    }
    const res = await withRetries(this.policy, t.where('PutObject'), () => {
      const put = new (s3Sdk().PutObjectCommand)({ Bucket: this.bucket, Key: t.fullKey, Body: data, ChecksumSHA256: sha256, StorageClass: opts.storageClass as StorageClass | undefined, Metadata: metadata });
      declarePayloadHash(put, sha256);
      return this.client.send(put, { abortSignal: this.policy.signal });
    });
    return { etag: res.ETag!, sha256, versionId: versionOf(res.VersionId) };
  }

  async putPieces(key: string, size: number, pieceSize: number, opts: PutOptions = {}): Promise<PieceWrite> {
    const problem = metadataProblem(opts.metadata);
    if (problem) throw new StoreError(`${this.url}: object ${JSON.stringify(key)}: ${problem}`, 'permanent', key);
    const metadata = opts.sha256 === undefined ? { ...opts.metadata } : { ...opts.metadata, [SHA256_META]: opts.sha256 };
    return startPieces(this.target(key), this.url, key, size, pieceSize, { ...opts, metadata });
  }

  /** A put is durable on S3 once it succeeded: nothing is left to flush. */
  async flush(): Promise<void> {}

  async delete(keys: string[]): Promise<void> {
    const full = keys.map((key) => this.target(key).fullKey);
    for (let i = 0; i < full.length; i += DELETE_BATCH) {
      const batch = full.slice(i, i + DELETE_BATCH);
      const where = { url: this.url, op: 'DeleteObjects', key: keys[i] };
      await withRetries(this.policy, where, async () => {
        const res = await this.client.send(new (s3Sdk().DeleteObjectsCommand)({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }), { abortSignal: this.policy.signal });
        const failed = res.Errors?.[0];
        if (failed) throw new S3ReplyError(failed.Code ?? 'Error', `${failed.Message ?? ''} (key ${JSON.stringify(keyOf(failed.Key, this.prefix))})`);
      });
    }
  }

  async restoreState(key: string, opts: VersionChoice = {}): Promise<RestoreState> {
    return (await restoreStateAt(this.target(key), opts.versionId)).state;
  }

  restore(key: string, opts: RestoreOptions): Promise<RestoreState> {
    return restoreAt(this.target(key), opts);
  }

  async *unfinishedWrites(prefix: string, before: Date): AsyncGenerator<UnfinishedWrite[]> {
    const where = (op: string) => ({ url: this.url, op });
    for await (const page of listUploads({ client: this.client, bucket: this.bucket, policy: this.policy, where }, this.prefix + prefix, this.prefix)) {
      const stale = page.filter((w) => w.started < before);
      if (stale.length) yield stale;
    }
  }

  discardWrite(write: UnfinishedWrite): Promise<void> {
    return abortNamedUpload(this.target(write.key), write.id);
  }

  /** Where a key's calls go; a key the store cannot hold is refused before any call. */
  target(key: string): Target {
    const problem = keyProblem(key);
    if (problem) throw new StoreError(`${this.url}: ${problem}`, 'permanent', typeof key === 'string' ? key : undefined);
    const fullKey = this.prefix + key;
    const bytes = Buffer.byteLength(fullKey);
    if (bytes > MAX_KEY_BYTES) throw new StoreError(`${this.url}: key ${JSON.stringify(key.slice(0, 40) + '...')} is ${bytes} bytes long with the URL's prefix, the limit is ${MAX_KEY_BYTES}`, 'permanent', key);
    const store = this;
    return {
      get client() {
        return store.client;
      },
      raw: this.raw,
      bucket: this.bucket,
      fullKey,
      policy: this.policy,
      where: (op) => ({ url: this.url, op, key }),
    };
  }

  async streamsReads(): Promise<boolean> {
    return this.raw !== undefined;
  }

  async readSegments(key: string, range: { start: number; end: number }, reader: BodySegments, ifMatch: string): Promise<ObjectInfo | undefined> {
    const read = await readSegments(this.target(key), range.start, range.end, reader, ifMatch);
    return read && describeObject(key, read.head, read.total);
  }

  private async getRange(t: Target, key: string, range: { start: number; end?: number }, buffer: GetOptions['buffer']): Promise<GetResult> {
    const { start, end } = range;
    if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && !Number.isSafeInteger(end))) throw new RangeError(`bad range ${JSON.stringify(range)}`);
    if (end === undefined || end > start) {
      try {
        const read = await readRange(t, start, end === undefined ? undefined : end - start, { buffer });
        return { data: read.data, info: describeObject(key, read.head, read.total) };
      } catch (err) {
        if (!isInvalidRange(err)) throw err;
      }
    }
    // Nothing to read (an empty range, or one past the end): the object must still exist.
    return { data: Buffer.alloc(0), info: await this.head(key) };
  }
}

export { restoreStateOf } from './store-s3-restore';

/** The HTTP status of the S3 reply behind a StoreError. */
function statusOf(err: unknown): number | undefined {
  const cause = (err as { cause?: { $metadata?: { httpStatusCode?: number } } }).cause;
  return err instanceof StoreError ? cause?.$metadata?.httpStatusCode : undefined;
}

/** A range S3 cannot satisfy: one that starts at or past the object's end. */
function isInvalidRange(err: unknown): boolean {
  return statusOf(err) === 416;
}

/** A version id, or undefined for the "null" version of a bucket without versioning. */
function versionOf(id: string | undefined): string | undefined {
  return id === 'null' ? undefined : id;
}

function keyOf(fullKey: string | undefined, prefix: string): string | undefined {
  return fullKey?.startsWith(prefix) ? fullKey.slice(prefix.length) : fullKey;
}
