// An object written to S3 in pieces: one multipart upload, piece n its part n + 1, completed only
// by commit() once every part is up and the caller's SHA-256 of the whole object is the one
// expected. The object's SHA-256 metadata must be set when the upload is created, so it is kept
// only when known beforehand (opts.sha256). Aborted, or failed, the upload is aborted too: no
// parts are left to bill.
import { CompleteMultipartUploadCommand, UploadPartCommand, type CompletedPart } from '@aws-sdk/client-s3';
import { IntegrityError } from './errors';
import { MAX_PARTS, MIN_PART_SIZE } from './store-s3-limits';
import { abortUpload, createUpload } from './store-s3-multipart';
import { withRetries } from './store-s3-errors';
import type { Target } from './store-s3-transfer';
import { StoreError, type PieceWrite, type PutOptions, type PutResult } from './store';

export async function startPieces(t: Target, url: string, key: string, size: number, pieceSize: number, opts: PutOptions & { metadata: Record<string, string> }): Promise<PieceWrite> {
  const count = Math.max(1, Math.ceil(size / pieceSize));
  if (count > MAX_PARTS) throw new StoreError(`${url}: object ${JSON.stringify(key)}: ${size} bytes in pieces of ${pieceSize} make ${count} parts, S3 takes at most ${MAX_PARTS}`, 'permanent', key);
  if (count > 1 && pieceSize < MIN_PART_SIZE) throw new StoreError(`${url}: object ${JSON.stringify(key)}: pieces of ${pieceSize} bytes are smaller than S3's least part (${MIN_PART_SIZE})`, 'permanent', key);
  const uploadId = await createUpload(t, opts);
  return new S3PieceWrite(t, url, key, size, pieceSize, count, uploadId, opts.sha256);
}

class S3PieceWrite implements PieceWrite {
  private readonly parts: CompletedPart[];
  private ended = false;

  constructor(
    private readonly t: Target,
    private readonly url: string,
    private readonly key: string,
    private readonly size: number,
    private readonly pieceSize: number,
    count: number,
    private readonly uploadId: string,
    private readonly expectedSha: string | undefined,
  ) {
    this.parts = new Array(count);
  }

  async write(index: number, data: Uint8Array): Promise<void> {
    const expected = Math.min(this.pieceSize, this.size - index * this.pieceSize);
    if (!(Number.isSafeInteger(index) && index >= 0 && index < this.parts.length) || data.length !== expected) {
      throw new RangeError(`object ${JSON.stringify(this.key)}: piece ${index} of ${data.length} bytes does not fit ${this.size} bytes in pieces of ${this.pieceSize}`);
    }
    if (this.ended) throw new Error(`object ${JSON.stringify(this.key)}: piece ${index} written after the upload ended`);
    const n = index + 1;
    const t = this.t;
    // The SDK sends the part's CRC32, which S3 checks on arrival.
    const res = await withRetries(t.policy, t.where(`UploadPart ${n}`), () =>
      t.client.send(new UploadPartCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: this.uploadId, PartNumber: n, Body: data, ChecksumAlgorithm: 'CRC32' }), { abortSignal: t.policy.signal }),
    );
    this.parts[index] = { PartNumber: n, ETag: res.ETag, ChecksumCRC32: res.ChecksumCRC32 };
  }

  async commit(sha256: string): Promise<PutResult> {
    const missing = this.parts.findIndex((p) => p === undefined);
    if (missing >= 0 || this.parts.length === 0) {
      await this.abort();
      throw new Error(`${this.url}: object ${JSON.stringify(this.key)}: piece ${missing} was never written; nothing was stored`);
    }
    if (this.expectedSha !== undefined && this.expectedSha !== sha256) {
      await this.abort();
      throw new IntegrityError(`${this.url}: object ${JSON.stringify(this.key)}: the data's SHA-256 is ${sha256}, expected ${this.expectedSha}; nothing was stored`);
    }
    const t = this.t;
    try {
      const done = await withRetries(t.policy, t.where('CompleteMultipartUpload'), () =>
        t.client.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }), { abortSignal: t.policy.signal }),
      );
      this.ended = true;
      return { etag: done.ETag!, sha256, versionId: done.VersionId === 'null' ? undefined : done.VersionId };
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await abortUpload(this.t, this.uploadId);
  }
}
