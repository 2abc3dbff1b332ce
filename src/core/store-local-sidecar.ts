// The checksums of a local store's object, kept in a small JSON sidecar beside its file.
//
// A put computes the SHA-256 of the data and keeps it here, so a listing has checksums without
// reading data, and a get can prove that the bytes are still those written (a recomputed
// checksum would only describe whatever the file now holds). The ETag is the SHA-256 in hex: an
// MD5 as well would be a second pass over every object (about twice the SHA-256's cost with
// SHA-NI), and ETags are opaque (store.ts). Sidecars written with an MD5 ETag by earlier
// versions stay valid. A missing sidecar (a crash mid-put, a file copied in by hand) means
// "checksums unknown", never a wrong checksum.
import { readFile, type Stats } from 'node:fs';
import path from 'node:path';
import { sha256b64 } from './digest';
import { META } from './store-local-keys';
import type { ObjectInfo } from './store';

export interface Meta {
  size: number;
  etag: string;
  sha256: string;
  storageClass?: string;
  metadata?: Record<string, string>;
}

/** The sidecar of the object in `file`. */
export function sidecarOf(file: string): string {
  return path.join(path.dirname(file), META + path.basename(file));
}

/** The sidecar's checksums, or undefined if it is missing or damaged. */
export async function readMeta(file: string): Promise<Meta | undefined> {
  // The callback form: in a listing, fs.promises' per-call overhead (measured) was most of the
  // time spent per object.
  const text = await new Promise<string | undefined>((resolve) => readFile(sidecarOf(file), 'utf8', (err, data) => resolve(err ? undefined : data)));
  if (text === undefined) return undefined;
  try {
    const meta = JSON.parse(text) as Meta;
    return typeof meta.sha256 === 'string' && typeof meta.etag === 'string' && Number.isSafeInteger(meta.size) ? meta : undefined;
  } catch {
    return undefined; // a damaged sidecar vouches for nothing
  }
}

export function describe(key: string, stat: Stats, meta: Meta | undefined, withMetadata: boolean): ObjectInfo {
  const info: ObjectInfo = { key, size: stat.size, mtime: stat.mtime };
  if (meta) {
    info.etag = meta.etag;
    info.sha256 = meta.sha256;
    if (meta.storageClass !== undefined) info.storageClass = meta.storageClass;
    if (withMetadata && meta.metadata !== undefined) info.metadata = meta.metadata;
  }
  return info;
}

/** Why `data` is not what the sidecar says was written, or undefined if it is. */
export function mismatch(data: Buffer, meta: Meta): string | undefined {
  if (data.length !== meta.size) return `${data.length} bytes stored, ${meta.size} were written`;
  const sha = sha256b64(data);
  if (sha !== meta.sha256) return `its SHA-256 is ${sha}, ${meta.sha256} was written`;
  return undefined;
}

/** The ETag of an object with this base64 SHA-256: the digest in hex, quoted as S3 quotes ETags. */
export function etagOf(sha256: string): string {
  return `"${Buffer.from(sha256, 'base64').toString('hex')}"`;
}
