// Restores on S3, of the current object or of one version: the state HeadObject's
// x-amz-restore header gives, and RestoreObject.
import type { HeadObjectCommandOutput, Tier } from '@aws-sdk/client-s3';
import { s3Sdk } from './store-s3-client';
import { withRetries } from './store-s3-errors';
import type { Target } from './store-s3-transfer';
import { versionTarget } from './store-s3-versions';
import { NotFoundError, NULL_VERSION, type RestoreOptions, type RestoreState } from './store';

/** Classes whose objects GetObject refuses until they are restored. */
const ARCHIVED_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

/**
 * From HeadObject's storage class and x-amz-restore header (`ongoing-request="true"`, or
 * `ongoing-request="false", expiry-date="..."` once a restored copy is readable).
 */
export function restoreStateOf(storageClass: string | undefined, restore: string | undefined): RestoreState {
  if (!ARCHIVED_CLASSES.has(storageClass ?? 'STANDARD')) return 'readable';
  if (restore === undefined) return 'archived';
  if (/ongoing-request="true"/.test(restore)) return 'restoring';
  if (/ongoing-request="false"/.test(restore)) return 'readable';
  return 'archived';
}

interface Found {
  state: RestoreState;
  /** The VersionId that names the object in its calls; undefined: the current object. */
  versionId?: string;
}

/**
 * The restore state of the object `t` names, or of its version `versionId`. Version "null" is
 * asked for by name only when it is not the current object: a bucket that never had versioning
 * has no other, and some servers (moto) refuse a VersionId there.
 */
export async function restoreStateAt(t: Target, versionId: string | undefined): Promise<Found> {
  let sent = versionId === NULL_VERSION ? undefined : versionId;
  let head: HeadObjectCommandOutput;
  try {
    head = await headOf(t, versionId, sent);
  } catch (err) {
    // The key reads as deleted: a delete marker is current, and the "null" version may be
    // behind it, as versioning was turned on after it was written.
    if (versionId !== NULL_VERSION || !(err instanceof NotFoundError)) throw err;
    head = await headOf(t, versionId, (sent = NULL_VERSION));
  }
  // Versioning was turned on after the "null" version was written, and a newer one is current.
  if (versionId === NULL_VERSION && sent === undefined && head.VersionId !== undefined && head.VersionId !== NULL_VERSION) head = await headOf(t, versionId, (sent = NULL_VERSION));
  return { state: restoreStateOf(head.StorageClass, head.Restore), versionId: sent };
}

/** ObjectStore.restore on S3: RestoreObject of the object or version, unless it is not archived. */
export async function restoreAt(t: Target, opts: RestoreOptions): Promise<RestoreState> {
  const { state, versionId } = await restoreStateAt(t, opts.versionId);
  if (state !== 'archived') return state;
  const where = versionId === undefined ? t.where('RestoreObject') : versionTarget(t, versionId).where('RestoreObject');
  try {
    await withRetries(t.policy, where, () =>
      t.client.send(
        new (s3Sdk().RestoreObjectCommand)({ Bucket: t.bucket, Key: t.fullKey, VersionId: versionId, RestoreRequest: { Days: opts.days, GlacierJobParameters: { Tier: opts.tier as Tier } } }),
        { abortSignal: t.policy.signal },
      ),
    );
  } catch (err) {
    // Asked for by someone else since our HEAD: it is under way all the same.
    if ((err as { cause?: { name?: string } }).cause?.name === 'RestoreAlreadyInProgress') return 'restoring';
    throw err;
  }
  // S3 answers 200 when a restored copy was there already, 202 when it starts one: the HEAD
  // tells which, as it also does on servers that restore at once.
  return (await restoreStateAt(t, opts.versionId)).state;
}

/** HeadObject with `sent` as its VersionId, for the version `versionId` asked about. */
async function headOf(t: Target, versionId: string | undefined, sent: string | undefined): Promise<HeadObjectCommandOutput> {
  const v = sent === undefined ? t : versionTarget(t, sent);
  try {
    return await withRetries(t.policy, v.where('HeadObject'), () => v.client.send(new (s3Sdk().HeadObjectCommand)({ Bucket: t.bucket, Key: t.fullKey }), { abortSignal: t.policy.signal }));
  } catch (err) {
    // A HEAD's 404 has no body that could tell a missing version from a missing object: the
    // message names the version that was asked for.
    if (versionId === undefined || !(err instanceof NotFoundError)) throw err;
    const { url, key } = t.where('HeadObject');
    throw Object.assign(new NotFoundError(`${url}: object ${JSON.stringify(key)} has no version ${JSON.stringify(versionId)}`, key), { cause: err });
  }
}
