// A multipart upload of one object: parts go up several at once, each retried on its own. With
// an uploads journal it can be continued: a rerun for the same object (same size, part size,
// SHA-256, storage class and metadata) finds the upload id in the journal, asks the server which
// parts it holds (ListParts), keeps a part only when the server's size and ETag are those the
// journal recorded and the SHA-256 of the bytes it would send now is the one sent then, and
// sends the rest. Without a journal, an upload that cannot complete is aborted (no orphan parts
// left to bill); with one it is kept for the rerun, and `s3-put --abort-stale` removes it.
import type { CompletedPart, Part, StorageClass } from '@aws-sdk/client-s3';
import { s3Sdk } from './store-s3-client';
import { sha256b64 } from './digest';
import { eachLimited } from './each-limited';
import { decodeListedKey } from './store-s3-records';
import { PART_JOBS, partSizeFor, type Target } from './store-s3-transfer';
import { withRetries } from './store-s3-errors';
import type { UnfinishedWrite } from './store';
import type { JournaledPart, UnfinishedUpload, UploadIdentity, UploadJournal } from './upload-journal';

export interface UploadOptions {
  storageClass?: string;
  /** User metadata, the whole object's SHA-256 included. */
  metadata: Record<string, string>;
  partSize: number;
  /** base64 SHA-256 of the whole object. */
  sha256: string;
  journal?: UploadJournal;
}

/** Uploads `data` in parts; resolves to the object's ETag and version. */
export async function uploadParts(t: Target, data: Uint8Array, opts: UploadOptions): Promise<{ etag: string; versionId?: string; resumed: number }> {
  const { url, key } = t.where('');
  const identity: UploadIdentity = { store: url, key: key!, size: data.length, partSize: partSizeFor(data.length, opts.partSize), sha256: opts.sha256, storageClass: opts.storageClass, metadata: opts.metadata };
  const upload = await beginUpload(t, identity, opts.journal);
  try {
    const count = Math.max(1, Math.ceil(data.length / identity.partSize));
    const parts: CompletedPart[] = new Array(count);
    const missing: number[] = [];
    for (let n = 1; n <= count; n++) {
      const body = data.subarray((n - 1) * identity.partSize, Math.min(n * identity.partSize, data.length));
      const part = upload.keep(n, body);
      if (part) parts[n - 1] = part;
      else missing.push(n);
    }
    if (upload.continued) upload.log(`continuing, ${count - missing.length} of ${count} parts already sent`);
    await eachLimited(missing, PART_JOBS, async (n) => {
      parts[n - 1] = await upload.send(n, data.subarray((n - 1) * identity.partSize, Math.min(n * identity.partSize, data.length)));
    });
    const done = await upload.complete(parts);
    return { etag: done.etag, versionId: done.versionId, resumed: count - missing.length };
  } catch (err) {
    await upload.keepOrAbort();
    throw err;
  }
}

/**
 * A multipart upload begun or continued: parts are sent (and journaled) one by one, a part the
 * server already holds from an interrupted run is kept when its bytes are those sent then, and
 * the upload is completed, or on failure kept for a rerun (with a journal) or aborted.
 */
export interface MultipartUpload {
  readonly uploadId: string;
  /** Whether it continues an upload a journal recorded. */
  readonly continued: boolean;
  /** The server's part `n`, if it holds one from before whose bytes are `body`. */
  keep(n: number, body: Uint8Array): CompletedPart | undefined;
  send(n: number, body: Uint8Array): Promise<CompletedPart>;
  complete(parts: CompletedPart[]): Promise<{ etag: string; versionId?: string }>;
  /** After a failure: kept when journaled (a rerun continues it), aborted otherwise. */
  keepOrAbort(): Promise<void>;
  /** Aborts it whatever the journal (its content was wrong). */
  abort(): Promise<void>;
  log(message: string): void;
}

/** Continues the upload the journal has for this object, or begins (and journals) a new one. */
export async function beginUpload(t: Target, id: UploadIdentity, journal: UploadJournal | undefined): Promise<MultipartUpload> {
  const { url, key } = t.where('');
  const found = journal ? await continuable(t, id, journal) : undefined;
  const uploadId = found?.uploadId ?? (await createUpload(t, id));
  const where = `${url}: object ${JSON.stringify(key)}: multipart upload ${uploadId}`;
  if (!found && journal) {
    await journal.started(uploadId, id).catch(async (err: unknown) => {
      // An upload the journal does not name is one no rerun continues: abort it now rather than
      // leave its parts billed until --abort-stale.
      journal.log(`${where} could not be journaled: aborting it`);
      await abortUpload(t, uploadId);
      throw err;
    });
  }
  let ended = false;
  return {
    uploadId,
    continued: found !== undefined,
    keep(n, body) {
      const held = found?.parts.get(n);
      if (!held || body.length !== held.sent.size || sha256b64(body) !== held.sent.sha256) return undefined;
      return held.part;
    },
    async send(n, body) {
      // The SDK sends the part's CRC32, which S3 checks on arrival.
      const res = await withRetries(t.policy, t.where(`UploadPart ${n}`), () =>
        t.client.send(new (s3Sdk().UploadPartCommand)({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, PartNumber: n, Body: body, ChecksumAlgorithm: 'CRC32' }), { abortSignal: t.policy.signal }),
      );
      await journal?.partDone(url, key!, uploadId, { part: n, size: body.length, etag: res.ETag!, crc32: res.ChecksumCRC32, sha256: sha256b64(body) });
      return { PartNumber: n, ETag: res.ETag, ChecksumCRC32: res.ChecksumCRC32 };
    },
    async complete(parts) {
      const done = await withRetries(t.policy, t.where('CompleteMultipartUpload'), () =>
        t.client.send(new (s3Sdk().CompleteMultipartUploadCommand)({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: t.policy.signal }),
      );
      ended = true;
      await journal?.ended(url, key!, uploadId, 'completed');
      return { etag: done.ETag!, versionId: done.VersionId };
    },
    async keepOrAbort() {
      if (ended) return;
      ended = true;
      if (journal) journal.log(`${where} kept in ${journal.path}: a rerun with the same --uploads continues it`);
      else await abortUpload(t, uploadId);
    },
    async abort() {
      if (ended) return;
      ended = true;
      await abortUpload(t, uploadId);
      await journal?.ended(url, key!, uploadId, 'aborted').catch(() => {});
    },
    log(message) {
      journal?.log(`${where}: ${message}`);
    },
  };
}

/** Ends an upload and frees its parts; best effort, and not under the command's signal. */
export async function abortUpload(t: Target, uploadId: string): Promise<void> {
  await t.client.send(new (s3Sdk().AbortMultipartUploadCommand)({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId })).catch(() => {});
}

/** Begins a multipart upload (parts sent with their CRC32); gives its id. */
export async function createUpload(t: Target, id: Pick<UploadIdentity, 'storageClass' | 'metadata'>): Promise<string> {
  const created = await withRetries(t.policy, t.where('CreateMultipartUpload'), () =>
    t.client.send(
      new (s3Sdk().CreateMultipartUploadCommand)({ Bucket: t.bucket, Key: t.fullKey, StorageClass: id.storageClass as StorageClass | undefined, Metadata: id.metadata, ChecksumAlgorithm: 'CRC32' }),
      { abortSignal: t.policy.signal },
    ),
  );
  return created.UploadId!;
}

/**
 * The upload to continue, with the parts the server holds as the journal recorded them (size
 * and ETag), or undefined to start a new one: when the journal has none for this key, when it
 * was for other content (then it is aborted), or when the server no longer has it (completed,
 * aborted, or expired by a lifecycle rule). Whether a part's bytes are those sent is for the
 * caller to check, with the SHA-256 recorded for it.
 */
async function continuable(t: Target, id: UploadIdentity, journal: UploadJournal): Promise<{ uploadId: string; parts: Map<number, { part: CompletedPart; sent: JournaledPart }> } | undefined> {
  const upload = journal.unfinished(id.store, id.key);
  if (!upload) return undefined;
  const where = `${id.store}: object ${JSON.stringify(id.key)}: multipart upload ${upload.uploadId}`;
  if (!sameContent(upload, id)) {
    journal.log(`${where} was for other content (journal ${journal.path}): aborting it and starting again`);
    await abortUpload(t, upload.uploadId);
    await journal.ended(id.store, id.key, upload.uploadId, 'aborted');
    return undefined;
  }
  let listed: Part[];
  try {
    listed = await listParts(t, upload.uploadId);
  } catch (err) {
    if ((err as { cause?: { name?: string } }).cause?.name !== 'NoSuchUpload') throw err;
    journal.log(`${where} is no longer on the server: starting again`);
    await journal.ended(id.store, id.key, upload.uploadId, 'aborted');
    return undefined;
  }
  const parts = new Map<number, { part: CompletedPart; sent: JournaledPart }>();
  for (const p of listed) {
    const n = p.PartNumber!;
    const sent = upload.parts.get(n);
    if (!sent || sent.size !== p.Size || sent.etag !== p.ETag) continue;
    parts.set(n, { part: { PartNumber: n, ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32 ?? sent.crc32 }, sent });
  }
  return { uploadId: upload.uploadId, parts };
}

function sameContent(upload: UnfinishedUpload, id: UploadIdentity): boolean {
  return (
    upload.size === id.size &&
    upload.partSize === id.partSize &&
    upload.sha256 === id.sha256 &&
    upload.storageClass === id.storageClass &&
    JSON.stringify(sortedEntries(upload.metadata)) === JSON.stringify(sortedEntries(id.metadata))
  );
}

function sortedEntries(metadata: Record<string, string>): [string, string][] {
  return Object.entries(metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

async function listParts(t: Target, uploadId: string): Promise<Part[]> {
  const parts: Part[] = [];
  let marker: string | undefined;
  do {
    const res = await withRetries(t.policy, t.where('ListParts'), () =>
      t.client.send(new (s3Sdk().ListPartsCommand)({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal: t.policy.signal }),
    );
    parts.push(...(res.Parts ?? []));
    marker = res.IsTruncated ? res.NextPartNumberMarker : undefined;
  } while (marker);
  return parts;
}

/**
 * The multipart uploads under `prefix` (keys made relative to `storePrefix`) begun and never completed or aborted, in key order (and
 * by start time for one key), page by page.
 */
export async function* listUploads(t: Omit<Target, 'fullKey' | 'raw'>, prefix: string, storePrefix: string): AsyncGenerator<UnfinishedWrite[]> {
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    const res = await withRetries(t.policy, t.where('ListMultipartUploads'), () =>
      t.client.send(new (s3Sdk().ListMultipartUploadsCommand)({ Bucket: t.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker, EncodingType: 'url' }), { abortSignal: t.policy.signal }),
    );
    const page = (res.Uploads ?? []).map((u) => ({ key: decodeListedKey(u.Key!).slice(storePrefix.length), id: u.UploadId!, started: u.Initiated ?? new Date(0) }));
    if (page.length) yield page;
    const more = res.IsTruncated === true;
    keyMarker = more ? res.NextKeyMarker && decodeListedKey(res.NextKeyMarker) : undefined;
    uploadIdMarker = more ? res.NextUploadIdMarker : undefined;
  } while (keyMarker !== undefined);
}

/** Aborts an upload of the key `t` names; one that is gone already is not an error. */
export async function abortNamedUpload(t: Target, uploadId: string): Promise<void> {
  try {
    await withRetries(t.policy, t.where('AbortMultipartUpload'), () =>
      t.client.send(new (s3Sdk().AbortMultipartUploadCommand)({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId }), { abortSignal: t.policy.signal }),
    );
  } catch (err) {
    if ((err as { cause?: { name?: string } }).cause?.name !== 'NoSuchUpload') throw err;
  }
}
