// Moving bytes of one S3 object: a GET of a byte range copied straight into its place in the
// object's buffer, and a multipart upload whose parts go up several at once, each retried on
// its own, with the upload aborted if it cannot complete (no orphan parts left to bill).
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type GetObjectCommandOutput,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { eachLimited } from './each-limited';
import { ShortReply, withRetries, type RetryPolicy, type Where } from './store-s3-errors';

/** S3's bounds on multipart uploads. */
export const MIN_PART_SIZE = 5 << 20;
export const MAX_PARTS = 10_000;
// Parts or ranges of one object in flight: with s3-put's 8 objects at once, 32 requests.
export const PART_JOBS = 4;

/** The part size for `size` bytes: `preferred`, grown (in whole MiB) to stay within 10,000 parts. */
export function partSizeFor(size: number, preferred: number): number {
  const least = Math.ceil(size / MAX_PARTS / (1 << 20)) * (1 << 20);
  return Math.max(preferred, least, MIN_PART_SIZE);
}

export interface Target {
  client: S3Client;
  bucket: string;
  /** The key in the bucket (store prefix included). */
  fullKey: string;
  policy: RetryPolicy;
  where: (op: string) => Where;
}

export interface RangeRead {
  /** The reply's headers (its body consumed). */
  head: Omit<GetObjectCommandOutput, 'Body'>;
  /** The object's size, from Content-Range (or Content-Length when the whole object came). */
  total: number;
  data: Buffer;
}

/**
 * GETs `length` bytes from `start` (to the object's end when `length` is undefined), into `into`
 * when given (a place in the object's buffer: no copy), with `ifMatch` (an ETag) so that the
 * ranges of one read all come from one version. A reply of another length than announced (a
 * cut connection) is read again.
 */
export async function readRange(t: Target, start: number, length: number | undefined, opts: { into?: Buffer; ifMatch?: string } = {}): Promise<RangeRead> {
  return withRetries(t.policy, t.where('GetObject'), async () => {
    const range = length !== undefined ? `bytes=${start}-${start + length - 1}` : start > 0 ? `bytes=${start}-` : undefined;
    const res = await t.client.send(new GetObjectCommand({ Bucket: t.bucket, Key: t.fullKey, Range: range, IfMatch: opts.ifMatch }), { abortSignal: t.policy.signal });
    const { Body: body, ...head } = res;
    const total = totalOf(res);
    const expected = Math.min(length ?? total, Math.max(0, total - start));
    if (res.ContentLength !== undefined && res.ContentLength !== expected) throw new ShortReply(`the reply announces ${res.ContentLength} bytes, ${expected} were asked for`);
    const data = opts.into ?? Buffer.allocUnsafe(expected);
    let got = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (got + chunk.length > expected) throw new ShortReply(`the reply holds more than the ${expected} bytes asked for`);
      data.set(chunk, got);
      got += chunk.length;
    }
    if (got !== expected) throw new ShortReply(`the reply ended after ${got} of ${expected} bytes`);
    return { head, total, data: data.subarray(0, got) };
  });
}

function totalOf(res: GetObjectCommandOutput): number {
  const m = /\/(\d+)$/.exec(res.ContentRange ?? '');
  return m ? Number(m[1]) : (res.ContentLength ?? 0);
}

export interface UploadOptions {
  storageClass?: string;
  metadata: Record<string, string>;
  partSize: number;
}

/** Uploads `data` in parts; resolves to the object's ETag and version. */
export async function uploadParts(t: Target, data: Uint8Array, opts: UploadOptions): Promise<{ etag: string; versionId?: string }> {
  const partSize = partSizeFor(data.length, opts.partSize);
  const created = await withRetries(t.policy, t.where('CreateMultipartUpload'), () =>
    t.client.send(
      new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, StorageClass: opts.storageClass as StorageClass | undefined, Metadata: opts.metadata, ChecksumAlgorithm: 'CRC32' }),
      { abortSignal: t.policy.signal },
    ),
  );
  const uploadId = created.UploadId!;
  try {
    const count = Math.ceil(data.length / partSize);
    const parts: CompletedPart[] = new Array(count);
    const numbers = Array.from({ length: count }, (_, i) => i + 1);
    await eachLimited(numbers, PART_JOBS, async (n) => {
      const body = data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length));
      // The SDK sends the part's CRC32, which S3 checks on arrival.
      const res = await withRetries(t.policy, t.where(`UploadPart ${n}`), () =>
        t.client.send(new UploadPartCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, PartNumber: n, Body: body, ChecksumAlgorithm: 'CRC32' }), { abortSignal: t.policy.signal }),
      );
      parts[n - 1] = { PartNumber: n, ETag: res.ETag, ChecksumCRC32: res.ChecksumCRC32 };
    });
    const done = await withRetries(t.policy, t.where('CompleteMultipartUpload'), () =>
      t.client.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: t.policy.signal }),
    );
    return { etag: done.ETag!, versionId: done.VersionId };
  } catch (err) {
    // Best effort, and not under the command's signal: an interrupted upload is cleaned up too.
    await t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId })).catch(() => {});
    throw err;
  }
}
