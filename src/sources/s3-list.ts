import { MANIFEST_NAME } from '../core/stream-layout';
import { command, EXIT_STATUS_TEXT, stringFlag } from '../core/command';
import { UsageError } from '../core/errors';
import { VOLUME_KEY } from '../core/layout';
import type { ObjectRec } from '../core/records';
import { source } from '../core/stage';
import { keyProblem, openStore, type DeleteMarker, type ObjectInfo, type StoredVersion } from '../core/store';
import { s3Settings, storeFlags, STORE_OPTIONS_TEXT } from '../core/store-s3-flags';

const USAGE = `Usage: s3-list [options] URL

Lists the objects under a store URL, one "object" record each, in key order (UTF-8 byte
order, as S3 lists): key (relative to URL), size, mtime (ISO 8601), etag, storageClass and
sha256 when the store knows them, and store (the URL, so s3-get needs no argument). Records
are written page by page as the store returns them; the listing ends with the "end" trailer,
which is what marks it complete: a listing without it must never decide a delete.

A layout's commit marker (a key named volume.json, or stream-chunk's stream.json, at the top or
under any folder) is listed with "commit": true, so that a copy (s3-list | s3-get | s3-put) writes it only after every
other object was copied: an interrupted copy never leaves a marker that promises chunks the
copy does not hold.

With --versions, every version of every object is listed (S3's ListObjectVersions), in key
order and, within a key, newest first; each record has "versionId" and "latest" (true for
what the key reads as now). A delete marker is a record with "deleteMarker": true, its
versionId, latest and mtime, and no size, etag or data: s3-get refuses it. s3-get reads the
version a record names, so old data can be read back. A local directory keeps no history: it
lists each object as its one version, versionId "null", latest.

URL is a directory (/backups/disk, ./out, file:///backups/disk) or s3://bucket/prefix.

Options:
  --prefix P               only keys that begin with P (a key prefix, not a folder: "zstd/00")
  --start-after KEY        only keys after KEY in key order (to continue an interrupted listing)
  --versions               every version and delete marker, not only the current objects
${STORE_OPTIONS_TEXT}
  -h, --help               show this text

Examples:
  s3-list /backups/vol-1 > vol-1.manifest
  s3-list --prefix zstd/ /backups/vol-1 | s3-get | zstd-unchunk | file-write restored.img
  s3-list /backups/a | s3-get | s3-put /backups/b > copy.journal
  s3-list --versions s3://bkt/vols | jq -r 'select(.deleteMarker and .latest) | .key'

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 's3-list',
  usage: USAGE,
  flags: storeFlags({ string: ['prefix', 'start-after'], boolean: ['versions'] }),
  positionals: { min: 1, max: 1 },
  async run(args, ctx) {
    const store = openStore(args._[0], s3Settings(args, ctx.signal));
    const prefix = stringFlag(args, 'prefix') ?? '';
    const startAfter = stringFlag(args, 'start-after');
    if (startAfter !== undefined && keyProblem(startAfter)) throw new UsageError(`--start-after: ${keyProblem(startAfter)}`);
    const pages = args.versions ? store.listVersions(prefix, { startAfter }) : store.list(prefix, { startAfter });
    await source(ctx, {}, async function* (out) {
      for await (const page of pages) {
        for (const info of page) out.push('deleteMarker' in info && info.deleteMarker ? deleteMarkerRecord(info, store.url) : objectRecord(info, store.url));
        yield out.take();
      }
    });
  },
});

function objectRecord(info: ObjectInfo | StoredVersion, store: string): ObjectRec {
  const rec: ObjectRec = { type: 'object', key: info.key, size: info.size, mtime: info.mtime.toISOString() };
  if (info.etag !== undefined) rec.etag = info.etag;
  if (info.storageClass !== undefined) rec.storageClass = info.storageClass;
  if (info.sha256 !== undefined) rec.sha256 = info.sha256;
  if (info.versionId !== undefined) rec.versionId = info.versionId;
  if ('latest' in info) rec.latest = info.latest;
  if (isCommitMarker(info.key)) rec.commit = true;
  rec.store = store;
  return rec;
}

function deleteMarkerRecord(info: DeleteMarker, store: string): ObjectRec {
  return { type: 'object', key: info.key, versionId: info.versionId, latest: info.latest, deleteMarker: true, mtime: info.mtime.toISOString(), store };
}

/**
 * volume.json sorts before the chunks it counts, so a copy in key order must hold it back;
 * stream.json sorts after its parts, but a parallel copy may still finish it first.
 */
function isCommitMarker(key: string): boolean {
  return [VOLUME_KEY, MANIFEST_NAME].some((marker) => key === marker || key.endsWith(`/${marker}`));
}
