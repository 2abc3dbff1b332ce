// Copying an object from one S3 store to another without its bytes passing through here: both
// stores share a client (one endpoint, region and profile), so S3 copies it server-side, with
// CopyObject up to 5 GiB and, beyond, a multipart upload whose parts are UploadPartCopy calls of
// byte ranges of the source, several at once, each retried on its own, the upload aborted if it
// cannot complete. Every call names the source's ETag (x-amz-copy-source-if-match), so a copy
// is of one version of the source, never a mix of two; the source's user metadata, among it
// x-amz-meta-sluice-sha256 (the whole object's SHA-256), goes with it, so the copy is read back
// and checked as the source would be.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type HeadObjectCommandOutput,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { IntegrityError } from './errors';
import { StoreError, type ObjectStore } from './store';
import { S3Store, restoreStateOf } from './store-s3';
import { withRetries } from './store-s3-errors';
import { SHA256_META } from './store-s3-records';
import { MAX_PART_SIZE, MIN_PART_SIZE } from './store-s3-limits';
import { partSizeFor, type Target } from './store-s3-transfer';

/** CopyObject's limit, and UploadPartCopy's for one part. */
export const MAX_COPY_SIZE = MAX_PART_SIZE;
/** Objects above this are copied in parts: by default only those CopyObject cannot copy. */
export const DEFAULT_MULTIPART_THRESHOLD = MAX_COPY_SIZE;
/** Parts of a multipart copy: a 6 GiB object in 24 calls (grown to stay within 10,000 parts). */
export const DEFAULT_COPY_PART_SIZE = 256 << 20;
// Parts of one object copied at once: S3 does the work, the client only waits.
const COPY_PART_JOBS = 8;

export interface CopyOptions {
  /** The copy's storage class; S3 gives STANDARD when none is said. */
  storageClass?: string;
  /** Objects larger than this are copied in parts; at most 5 GiB (the default). */
  multipartThreshold?: number;
  /** Bytes per part of a multipart copy, 5 MiB to 5 GiB. */
  partSize?: number;
  /** What the source object must be (from the input record): checked before anything is copied. */
  expect?: { size?: number; sha256?: string };
  /** Copy this version of the source (as a listing of versions names it), not the current object. */
  versionId?: string;
}

export interface CopyResult {
  /** Bytes copied. */
  size: number;
  /** The copy's ETag. */
  etag: string;
  /** base64 SHA-256 of the object, when the source kept one (and the copy now keeps it too). */
  sha256?: string;
  versionId?: string;
  /** How it was copied: one CopyObject, or the number of UploadPartCopy calls. */
  parts: number;
}

/** Whether S3 can copy between these stores itself: both on S3, with one client. */
export function canCopyServerSide(from: ObjectStore, to: ObjectStore): boolean {
  return from instanceof S3Store && to instanceof S3Store && from.client === to.client;
}

/**
 * Copies `key` of `from` to the same key of `to`, server-side (canCopyServerSide must hold). A
 * source replaced while its parts are copied (412 on the If-Match) is copied again, once, from
 * its new version; replaced again, the copy fails saying so, and nothing of it is left.
 */
export async function copyServerSide(from: S3Store, to: S3Store, key: string, opts: CopyOptions = {}): Promise<CopyResult> {
  if (from.client !== to.client) throw new Error(`${from.url} and ${to.url} do not share a client: copy through get and put`);
  const threshold = opts.multipartThreshold ?? DEFAULT_MULTIPART_THRESHOLD;
  const partSize = opts.partSize ?? DEFAULT_COPY_PART_SIZE;
  if (!(threshold >= 0 && threshold <= MAX_COPY_SIZE)) throw new RangeError(`multipart threshold must be at most ${MAX_COPY_SIZE} bytes, got ${threshold}`);
  if (!(partSize >= MIN_PART_SIZE && partSize <= MAX_COPY_SIZE)) throw new RangeError(`part size must be ${MIN_PART_SIZE} to ${MAX_COPY_SIZE} bytes, got ${partSize}`);
  const src = from.target(key);
  const dst = to.target(key);
  const settings = { ...opts, multipartThreshold: threshold, partSize };
  try {
    return await copyOnce(from, src, dst, key, settings);
  } catch (err) {
    if (statusOf(err) !== 412) throw err;
    return copyOnce(from, src, dst, key, settings).catch((again: unknown) => {
      if (statusOf(again) !== 412) throw again;
      // The 412 is the reply to a call on the destination: say what it means, of the source.
      const message = `${from.url}: object ${JSON.stringify(key)}: replaced while being copied, and again during a second try; nothing was copied (${(again as Error).message})`;
      throw Object.assign(new StoreError(message, (again as StoreError).kind, key), { cause: again });
    });
  }
}

type Settings = CopyOptions & { multipartThreshold: number; partSize: number };

async function copyOnce(from: S3Store, src: Target, dst: Target, key: string, opts: Settings): Promise<CopyResult> {
  const version = opts.versionId;
  const head = await withRetries(src.policy, src.where(version === undefined ? 'HeadObject' : `HeadObject (version ${version})`), () =>
    src.client.send(new HeadObjectCommand({ Bucket: src.bucket, Key: src.fullKey, VersionId: version }), { abortSignal: src.policy.signal }),
  );
  const size = head.ContentLength ?? 0;
  const etag = head.ETag;
  const sha256 = head.Metadata?.[SHA256_META];
  const where = `${from.url}: object ${JSON.stringify(key)}${version === undefined ? '' : ` version ${version}`}`;
  if (opts.expect?.size !== undefined && opts.expect.size !== size) {
    throw new IntegrityError(`${where}: the object has ${size} bytes, the record says ${opts.expect.size}; nothing was copied`);
  }
  if (opts.expect?.sha256 !== undefined && sha256 !== undefined && opts.expect.sha256 !== sha256) {
    throw new IntegrityError(`${where}: the object's ${SHA256_META} is ${sha256}, the record says ${opts.expect.sha256}; nothing was copied`);
  }
  if (restoreStateOf(head.StorageClass, head.Restore) !== 'readable') {
    throw new StoreError(`${where}: the object is archived (${head.StorageClass}) and must be restored first (s3-restore)`, 'archived', key);
  }
  if (etag === undefined) throw new StoreError(`${where}: HeadObject gave no ETag`, 'permanent', key);
  const result = { size, sha256, parts: 1 };
  // The same object, and nothing to change: S3 refuses to copy an object onto itself as it is.
  // (An older version copied onto its key is a change: it becomes the current object again.)
  if (src.bucket === dst.bucket && src.fullKey === dst.fullKey && opts.storageClass === undefined && version === undefined) {
    return { ...result, etag, versionId: versionOf(head.VersionId), parts: 0 };
  }
  if (size <= opts.multipartThreshold) {
    const res = await withRetries(dst.policy, dst.where('CopyObject'), () =>
      dst.client.send(
        new CopyObjectCommand({
          Bucket: dst.bucket,
          Key: dst.fullKey,
          CopySource: copySource(src, version),
          CopySourceIfMatch: etag,
          // The user metadata (the SHA-256 among it) and the content headers, as the source has them.
          MetadataDirective: 'COPY',
          StorageClass: opts.storageClass as StorageClass | undefined,
        }),
        { abortSignal: dst.policy.signal },
      ),
    );
    return { ...result, etag: res.CopyObjectResult?.ETag ?? etag, versionId: versionOf(res.VersionId) };
  }
  const done = await copyParts(src, dst, head, etag, size, opts);
  return { ...result, ...done };
}

/** A multipart copy of the source's `size` bytes, each part a range of the version `etag`. */
async function copyParts(src: Target, dst: Target, head: HeadObjectCommandOutput, etag: string, size: number, opts: Settings): Promise<{ etag: string; versionId?: string; parts: number }> {
  const version = opts.versionId;
  const partSize = partSizeFor(size, opts.partSize);
  const created = await withRetries(dst.policy, dst.where('CreateMultipartUpload'), () =>
    dst.client.send(
      new CreateMultipartUploadCommand({
        Bucket: dst.bucket,
        Key: dst.fullKey,
        StorageClass: opts.storageClass as StorageClass | undefined,
        // A multipart upload takes no metadata directive: what CopyObject would carry, said here.
        Metadata: head.Metadata,
        ContentType: head.ContentType,
        ContentEncoding: head.ContentEncoding,
        ContentDisposition: head.ContentDisposition,
        ContentLanguage: head.ContentLanguage,
        CacheControl: head.CacheControl,
      }),
      { abortSignal: dst.policy.signal },
    ),
  );
  const uploadId = created.UploadId!;
  try {
    const count = Math.ceil(size / partSize);
    const parts: CompletedPart[] = new Array(count);
    const numbers = Array.from({ length: count }, (_, i) => i + 1);
    await eachUntilFailure(numbers, COPY_PART_JOBS, async (n) => {
      const start = (n - 1) * partSize;
      const end = Math.min(n * partSize, size) - 1;
      const res = await withRetries(dst.policy, dst.where(`UploadPartCopy ${n}`), () =>
        dst.client.send(
          new UploadPartCopyCommand({
            Bucket: dst.bucket,
            Key: dst.fullKey,
            UploadId: uploadId,
            PartNumber: n,
            CopySource: copySource(src, version),
            CopySourceIfMatch: etag,
            CopySourceRange: `bytes=${start}-${end}`,
          }),
          { abortSignal: dst.policy.signal },
        ),
      );
      parts[n - 1] = { PartNumber: n, ETag: res.CopyPartResult?.ETag };
    });
    const done = await withRetries(dst.policy, dst.where('CompleteMultipartUpload'), () =>
      dst.client.send(new CompleteMultipartUploadCommand({ Bucket: dst.bucket, Key: dst.fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: dst.policy.signal }),
    );
    return { etag: done.ETag!, versionId: versionOf(done.VersionId), parts: count };
  } catch (err) {
    // Best effort, and not under the command's signal: an interrupted copy is cleaned up too.
    await dst.client.send(new AbortMultipartUploadCommand({ Bucket: dst.bucket, Key: dst.fullKey, UploadId: uploadId })).catch(() => {});
    throw err;
  }
}

/**
 * Calls `work` on the items, `jobs` at a time; after a failure starts no more, waits for those
 * under way (so that no part lands after the upload is aborted), and rejects with the first.
 */
async function eachUntilFailure<T>(items: T[], jobs: number, work: (item: T) => Promise<void>): Promise<void> {
  let failure: { err: unknown } | undefined;
  let next = 0;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, worker));
  if (failure) throw failure.err;
}

/** x-amz-copy-source: bucket/key, the key URL-encoded (every character a key may hold), and the version. */
function copySource(t: Target, versionId: string | undefined): string {
  const source = `${t.bucket}/${t.fullKey.split('/').map(encodeURIComponent).join('/')}`;
  return versionId === undefined ? source : `${source}?versionId=${encodeURIComponent(versionId)}`;
}

/** The HTTP status of the S3 reply behind a StoreError. */
function statusOf(err: unknown): number | undefined {
  const cause = (err as { cause?: { $metadata?: { httpStatusCode?: number } } }).cause;
  return err instanceof StoreError ? cause?.$metadata?.httpStatusCode : undefined;
}

/** A version id, or undefined for the "null" version of a bucket without versioning. */
function versionOf(id: string | undefined): string | undefined {
  return id === undefined || id === 'null' ? undefined : id;
}
