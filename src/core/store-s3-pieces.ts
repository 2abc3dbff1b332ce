// An object written to S3 in pieces: one multipart upload, piece n its part n + 1, completed only
// by commit() once every part is up and the caller's SHA-256 of the whole object is the one
// expected. The object's SHA-256 metadata must be set when the upload is created, so it is kept
// only when known beforehand (opts.sha256). With an uploads journal (opts.uploads) the upload is
// journaled as a whole object's is (store-s3-multipart.ts): a rerun continues it, and a piece
// whose part the server holds with the bytes journaled for it is not sent again. Without one, a
// write that fails or is aborted aborts the upload: no parts are left to bill.
import type { CompletedPart } from '@aws-sdk/client-s3';
import { IntegrityError } from './errors';
import { MAX_PARTS, MIN_PART_SIZE } from './store-s3-limits';
import { beginUpload, type MultipartUpload } from './store-s3-multipart';
import type { Target } from './store-s3-transfer';
import { StoreError, type PieceWrite, type PutOptions, type PutResult } from './store';

export async function startPieces(t: Target, url: string, key: string, size: number, pieceSize: number, opts: PutOptions & { metadata: Record<string, string> }): Promise<PieceWrite> {
  const count = Math.max(1, Math.ceil(size / pieceSize));
  if (count > MAX_PARTS) throw new StoreError(`${url}: object ${JSON.stringify(key)}: ${size} bytes in pieces of ${pieceSize} make ${count} parts, S3 takes at most ${MAX_PARTS}`, 'permanent', key);
  if (count > 1 && pieceSize < MIN_PART_SIZE) throw new StoreError(`${url}: object ${JSON.stringify(key)}: pieces of ${pieceSize} bytes are smaller than S3's least part (${MIN_PART_SIZE})`, 'permanent', key);
  const identity = { store: url, key, size, partSize: pieceSize, sha256: opts.sha256, storageClass: opts.storageClass, metadata: opts.metadata };
  const upload = await beginUpload(t, identity, opts.uploads);
  return new S3PieceWrite(url, key, size, pieceSize, count, upload, opts.sha256);
}

class S3PieceWrite implements PieceWrite {
  private readonly parts: CompletedPart[];
  private kept = 0;

  constructor(
    private readonly url: string,
    private readonly key: string,
    private readonly size: number,
    private readonly pieceSize: number,
    count: number,
    private readonly upload: MultipartUpload,
    private readonly expectedSha: string | undefined,
  ) {
    this.parts = new Array(count);
  }

  async write(index: number, data: Uint8Array): Promise<void> {
    const expected = Math.min(this.pieceSize, this.size - index * this.pieceSize);
    if (!(Number.isSafeInteger(index) && index >= 0 && index < this.parts.length) || data.length !== expected) {
      throw new RangeError(`object ${JSON.stringify(this.key)}: piece ${index} of ${data.length} bytes does not fit ${this.size} bytes in pieces of ${this.pieceSize}`);
    }
    const held = this.upload.keep(index + 1, data);
    if (held) this.kept++;
    this.parts[index] = held ?? (await this.upload.send(index + 1, data));
  }

  async commit(sha256: string): Promise<PutResult> {
    const missing = this.parts.findIndex((p) => p === undefined);
    if (missing >= 0) {
      await this.upload.keepOrAbort();
      throw new Error(`${this.url}: object ${JSON.stringify(this.key)}: piece ${missing} was never written; nothing was stored`);
    }
    if (this.expectedSha !== undefined && this.expectedSha !== sha256) {
      await this.upload.abort();
      throw new IntegrityError(`${this.url}: object ${JSON.stringify(this.key)}: the data's SHA-256 is ${sha256}, expected ${this.expectedSha}; nothing was stored`);
    }
    if (this.upload.continued) this.upload.log(`${this.kept} of ${this.parts.length} parts were already sent`);
    try {
      const done = await this.upload.complete(this.parts);
      return { etag: done.etag, sha256, versionId: done.versionId === 'null' ? undefined : done.versionId };
    } catch (err) {
      await this.upload.keepOrAbort();
      throw err;
    }
  }

  abort(): Promise<void> {
    return this.upload.keepOrAbort();
  }
}
