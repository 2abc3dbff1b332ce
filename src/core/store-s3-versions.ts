// Versions on S3: ListObjectVersions pages as the contract's VersionInfo, and reads of one
// version of an object.
import type { DeleteMarkerEntry, ListObjectVersionsCommandOutput, ObjectVersion, S3Client } from '@aws-sdk/client-s3';
import { s3Sdk } from './store-s3-client';
import { describeError, withRetries, type RetryPolicy } from './store-s3-errors';
import type { Target } from './store-s3-transfer';
import { compareKeys, NotFoundError, NULL_VERSION, pageSizeOf, type DeleteMarker, type ListOptions, type StoredVersion, type VersionInfo } from './store';

/** Where a listing of versions goes: the store's bucket, its key prefix and its calls' settings. */
export interface VersionSource {
  client: S3Client;
  bucket: string;
  /** The store's prefix: empty, or ending in "/". */
  prefix: string;
  url: string;
  policy: RetryPolicy;
}

/** ListObjectVersions, page by page; `prefix` and `opts` as in ObjectStore.listVersions. */
export async function* listVersions(s: VersionSource, prefix: string, opts: ListOptions = {}): AsyncGenerator<VersionInfo[]> {
  const pageSize = pageSizeOf(opts);
  let keyMarker = opts.startAfter === undefined ? undefined : s.prefix + opts.startAfter;
  let versionIdMarker: string | undefined;
  for (;;) {
    const res = await withRetries(s.policy, { url: s.url, op: 'ListObjectVersions' }, () =>
      s.client.send(
        new (s3Sdk().ListObjectVersionsCommand)({
          Bucket: s.bucket,
          Prefix: s.prefix + prefix,
          MaxKeys: pageSize,
          KeyMarker: keyMarker,
          VersionIdMarker: versionIdMarker,
          // XML cannot carry every character a key may hold: keys come URL-encoded.
          EncodingType: 'url',
        }),
        { abortSignal: s.policy.signal },
      ),
    );
    // S3 starts after every version of a KeyMarker given alone; some servers (moto) give the
    // marker key's older versions all the same.
    const page = pageOf(res, s.prefix).filter((v) => opts.startAfter === undefined || compareKeys(v.key, opts.startAfter) > 0);
    if (page.length) yield page;
    if (!res.IsTruncated) return;
    keyMarker = keyIn(res, res.NextKeyMarker);
    versionIdMarker = res.NextVersionIdMarker;
  }
}

/**
 * One reply's versions and delete markers in one list. The SDK gives them as two lists, each
 * in S3's order (key order, newest first), but not how they interleave: they are merged by
 * key, the latest first, then by time. S3's times are whole seconds, so a version and a delete
 * marker of one key made within the same second may come in either order.
 */
function pageOf(res: ListObjectVersionsCommandOutput, prefix: string): VersionInfo[] {
  const entries: VersionInfo[] = [];
  for (const v of res.Versions ?? []) entries.push(storedVersion(v, keyIn(res, v.Key)!.slice(prefix.length)));
  for (const m of res.DeleteMarkers ?? []) entries.push(deleteMarker(m, keyIn(res, m.Key)!.slice(prefix.length)));
  return entries.sort((a, b) => compareKeys(a.key, b.key) || Number(b.latest) - Number(a.latest) || b.mtime.getTime() - a.mtime.getTime());
}

function storedVersion(v: ObjectVersion, key: string): StoredVersion {
  const info: StoredVersion = { key, size: v.Size ?? 0, mtime: v.LastModified ?? new Date(0), versionId: v.VersionId ?? NULL_VERSION, latest: v.IsLatest === true };
  if (v.ETag !== undefined) info.etag = v.ETag;
  if (v.StorageClass !== undefined) info.storageClass = v.StorageClass;
  return info;
}

function deleteMarker(m: DeleteMarkerEntry, key: string): DeleteMarker {
  return { key, mtime: m.LastModified ?? new Date(0), versionId: m.VersionId ?? NULL_VERSION, latest: m.IsLatest === true, deleteMarker: true };
}

/** A key as the reply gives it: URL-encoded when the reply says so (S3 writes a space as "+"). */
function keyIn(res: ListObjectVersionsCommandOutput, key: string | undefined): string | undefined {
  if (key === undefined || res.EncodingType !== 'url') return key;
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

/**
 * The target of one version of an object: its GETs and HEADs carry VersionId, so the ranged and
 * checked reads made for the current object read that version instead. A version never
 * changes, so the If-Match of later ranges always holds.
 */
export function versionTarget(t: Target, versionId: string): Target {
  const send = t.client.send.bind(t.client) as (command: unknown, options?: unknown) => Promise<unknown>;
  const { url, key } = t.where('GetObject');
  const { GetObjectCommand, HeadObjectCommand } = s3Sdk();
  const client = new Proxy(t.client, {
    get(target, property, receiver) {
      if (property !== 'send') return Reflect.get(target, property, receiver);
      return (command: unknown, options?: unknown) => {
        if (!(command instanceof GetObjectCommand || command instanceof HeadObjectCommand)) return send(command, options);
        command.input.VersionId = versionId;
        // The object may well be there: say which version is not, as a directory store does.
        return send(command, options).catch((err: unknown) => {
          if ((err as Error | undefined)?.name !== 'NoSuchVersion') throw err;
          throw Object.assign(new NotFoundError(`${url}: object ${JSON.stringify(key)} has no version ${JSON.stringify(versionId)} (${describeError(err)})`, key), { cause: err });
        });
      };
    },
  });
  return { ...t, client, versionId, where: (op) => t.where(`${op} (version ${versionId})`) };
}
