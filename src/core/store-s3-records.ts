// S3's descriptions of objects (a listing's entries, HEAD and GET replies) as ObjectInfo, and the
// user metadata an S3 object can keep exactly.
import type { _Object, HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import type { ObjectInfo } from './store';

/** The user metadata key (x-amz-meta-sluice-sha256) holding the whole object's base64 SHA-256. */
export const SHA256_META = 'sluice-sha256';

/** The headers of a HEAD or of a GET reply, for an object of `size` bytes. */
type ObjectHeaders = Pick<HeadObjectCommandOutput, 'LastModified' | 'ETag' | 'StorageClass' | 'Metadata' | 'VersionId'>;

export function describeObject(key: string, head: ObjectHeaders, size: number): ObjectInfo {
  const { [SHA256_META]: sha256, ...metadata } = head.Metadata ?? {};
  const info: ObjectInfo = {
    key,
    size,
    mtime: head.LastModified ?? new Date(0),
    etag: head.ETag,
    // S3 sends the header only for classes other than STANDARD.
    storageClass: head.StorageClass ?? 'STANDARD',
    metadata,
  };
  if (sha256 !== undefined) info.sha256 = sha256;
  if (head.VersionId !== undefined && head.VersionId !== 'null') info.versionId = head.VersionId;
  return info;
}

/** A key of a listing asked for with EncodingType url. */
export function decodeListedKey(encoded: string): string {
  // S3 writes a space as "+" in this encoding (and "+" as %2B); other servers write %20.
  return decodeURIComponent(encoded.replace(/\+/g, ' '));
}

/** A ListObjectsV2 entry (listed with EncodingType url), its key made relative to `prefix`. */
export function listedObject(o: _Object, prefix: string, encoded: boolean): ObjectInfo {
  // A server that ignored the encoding asked for sends keys as they are.
  const full = encoded ? decodeListedKey(o.Key ?? '') : o.Key ?? '';
  const info: ObjectInfo = { key: full.slice(prefix.length), size: o.Size ?? 0, mtime: o.LastModified ?? new Date(0) };
  if (o.ETag !== undefined) info.etag = o.ETag;
  if (o.StorageClass !== undefined) info.storageClass = o.StorageClass;
  return info;
}

/**
 * What keeps user metadata from coming back as given, or undefined. S3 sends it as HTTP
 * headers: names come back lower case, and values must be printable ASCII.
 */
export function metadataProblem(metadata: Record<string, string> | undefined): string | undefined {
  for (const [name, value] of Object.entries(metadata ?? {})) {
    if (name === SHA256_META) return `metadata ${JSON.stringify(name)} is this store's own (the object's SHA-256)`;
    if (!/^[a-z0-9!#$&'*+.^_`|~-]+$/.test(name)) return `metadata name ${JSON.stringify(name)} cannot be kept by S3: use lower-case letters, digits and - _ .`;
    if (typeof value !== 'string' || !/^([\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?)?$/.test(value)) return `metadata ${JSON.stringify(name)}: the value ${JSON.stringify(value)} cannot be kept by S3: use printable ASCII without spaces at either end`;
  }
  return undefined;
}
