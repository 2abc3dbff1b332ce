// A multipart upload of one object: parts go up several at once, each retried on its own. With
// an uploads journal it can be continued: a rerun for the same object (same size, part size,
// SHA-256, storage class and metadata) finds the upload id in the journal, asks the server which
// parts it holds (ListParts), keeps a part only when the server's size and ETag are those the
// journal recorded and the SHA-256 of the bytes it would send now is the one sent then, and
// sends the rest. Without a journal, an upload that cannot complete is aborted (no orphan parts
// left to bill); with one it is kept for the rerun, and `s3-put --abort-stale` removes it.
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
  type CompletedPart,
  type Part,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { sha256b64 } from './digest';
import { eachLimited } from './each-limited';
import { decodeListedKey } from './store-s3-records';
import { PART_JOBS, partSizeFor, type Target } from './store-s3-transfer';
import { withRetries } from './store-s3-errors';
import type { UnfinishedWrite } from './store';
import type { UnfinishedUpload, UploadIdentity, UploadJournal } from './upload-journal';

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
  const { journal } = opts;
  const kept = journal ? await partsToKeep(t, data, identity, journal) : undefined;
  const uploadId = kept?.uploadId ?? (await createUpload(t, identity));
  if (!kept && journal) {
    await journal.started(uploadId, identity).catch(async (err: unknown) => {
      // An upload the journal does not name is one no rerun continues: abort it now rather than
      // leave its parts billed until --abort-stale.
      journal.log(`${url}: object ${JSON.stringify(key)}: multipart upload ${uploadId} could not be journaled: aborting it`);
      await abortUpload(t, uploadId);
      throw err;
    });
  }
  try {
    const count = Math.max(1, Math.ceil(data.length / identity.partSize));
    const parts: CompletedPart[] = new Array(count);
    const missing: number[] = [];
    for (let n = 1; n <= count; n++) {
      const part = kept?.parts.get(n);
      if (part) parts[n - 1] = part;
      else missing.push(n);
    }
    await eachLimited(missing, PART_JOBS, async (n) => {
      const body = data.subarray((n - 1) * identity.partSize, Math.min(n * identity.partSize, data.length));
      // The SDK sends the part's CRC32, which S3 checks on arrival.
      const res = await withRetries(t.policy, t.where(`UploadPart ${n}`), () =>
        t.client.send(new UploadPartCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, PartNumber: n, Body: body, ChecksumAlgorithm: 'CRC32' }), { abortSignal: t.policy.signal }),
      );
      parts[n - 1] = { PartNumber: n, ETag: res.ETag, ChecksumCRC32: res.ChecksumCRC32 };
      await journal?.partDone(url, key!, uploadId, { part: n, size: body.length, etag: res.ETag!, crc32: res.ChecksumCRC32, sha256: sha256b64(body) });
    });
    const done = await withRetries(t.policy, t.where('CompleteMultipartUpload'), () =>
      t.client.send(new CompleteMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }), { abortSignal: t.policy.signal }),
    );
    await journal?.ended(url, key!, uploadId, 'completed');
    return { etag: done.ETag!, versionId: done.VersionId, resumed: count - missing.length };
  } catch (err) {
    if (journal) {
      journal.log(`${url}: object ${JSON.stringify(key)}: multipart upload ${uploadId} kept in ${journal.path}: a rerun with the same --uploads continues it`);
    } else {
      await abortUpload(t, uploadId);
    }
    throw err;
  }
}

/** Ends an upload and frees its parts; best effort, and not under the command's signal. */
export async function abortUpload(t: Target, uploadId: string): Promise<void> {
  await t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId })).catch(() => {});
}

/** Begins a multipart upload (parts sent with their CRC32); gives its id. */
export async function createUpload(t: Target, id: Pick<UploadIdentity, 'storageClass' | 'metadata'>): Promise<string> {
  const created = await withRetries(t.policy, t.where('CreateMultipartUpload'), () =>
    t.client.send(
      new CreateMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, StorageClass: id.storageClass as StorageClass | undefined, Metadata: id.metadata, ChecksumAlgorithm: 'CRC32' }),
      { abortSignal: t.policy.signal },
    ),
  );
  return created.UploadId!;
}

/**
 * The upload to continue and the parts of it to keep, or undefined to start a new one: when the
 * journal has none for this key, when it was for other content (then it is aborted), or when
 * the server no longer has it (completed, aborted, or expired by a lifecycle rule).
 */
async function partsToKeep(t: Target, data: Uint8Array, id: UploadIdentity, journal: UploadJournal): Promise<{ uploadId: string; parts: Map<number, CompletedPart> } | undefined> {
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
  const parts = new Map<number, CompletedPart>();
  for (const p of listed) {
    const n = p.PartNumber!;
    const sent = upload.parts.get(n);
    if (!sent || sent.size !== p.Size || sent.etag !== p.ETag) continue;
    const body = data.subarray((n - 1) * id.partSize, Math.min(n * id.partSize, data.length));
    if (body.length !== sent.size || sha256b64(body) !== sent.sha256) continue;
    parts.set(n, { PartNumber: n, ETag: p.ETag, ChecksumCRC32: p.ChecksumCRC32 ?? sent.crc32 });
  }
  journal.log(`${where}: continuing, ${parts.size} of ${Math.max(1, Math.ceil(id.size / id.partSize))} parts already sent`);
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
      t.client.send(new ListPartsCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal: t.policy.signal }),
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
export async function* listUploads(t: Omit<Target, 'fullKey'>, prefix: string, storePrefix: string): AsyncGenerator<UnfinishedWrite[]> {
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  do {
    const res = await withRetries(t.policy, t.where('ListMultipartUploads'), () =>
      t.client.send(new ListMultipartUploadsCommand({ Bucket: t.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker, EncodingType: 'url' }), { abortSignal: t.policy.signal }),
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
      t.client.send(new AbortMultipartUploadCommand({ Bucket: t.bucket, Key: t.fullKey, UploadId: uploadId }), { abortSignal: t.policy.signal }),
    );
  } catch (err) {
    if ((err as { cause?: { name?: string } }).cause?.name !== 'NoSuchUpload') throw err;
  }
}
