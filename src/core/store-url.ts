// The store URL grammar: a local directory (a path or file:// URL) or s3://bucket/prefix.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors';

export type StoreLocation = { kind: 'local'; root: string } | { kind: 's3'; bucket: string; prefix: string };

/**
 * Store URLs: `s3://bucket` or `s3://bucket/prefix` (the prefix is a folder: keys go under
 * `prefix/`), `file:///absolute/dir`, or a plain path (`/backups/disk`, `./out`, `out`),
 * resolved against the working directory. Throws a UsageError for anything else.
 */
export function parseStoreUrl(url: string): StoreLocation {
  if (url === '' || url === '-') throw new UsageError(`${JSON.stringify(url)} is not a store URL: give a directory or s3://bucket/prefix`);
  const s3 = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(url);
  if (s3) {
    const [, bucket, rest] = s3;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new UsageError(`${url}: ${JSON.stringify(bucket)} is not an S3 bucket name`);
    return { kind: 's3', bucket, prefix: rest === '' || rest.endsWith('/') ? rest : rest + '/' };
  }
  if (/^file:/i.test(url)) {
    let root: string;
    try {
      root = fileURLToPath(url);
    } catch (err) {
      throw new UsageError(`${url}: not a local file URL (${(err as Error).message}); write file:///absolute/path`);
    }
    return { kind: 'local', root: path.resolve(root) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new UsageError(`${url}: unsupported store URL (use a directory, file:///dir or s3://bucket/prefix)`);
  return { kind: 'local', root: path.resolve(url) };
}
