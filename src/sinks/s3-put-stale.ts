// `s3-put --abort-stale`: ends the writes that runs of s3-put began under a store URL and never
// finished. On S3 those are multipart uploads whose parts are stored, and billed, until they
// are completed or aborted; in a directory, temporary files that a killed put left.
import type { Context } from '../core/command';
import { source } from '../core/stage';
import type { ObjectStore } from '../core/store';

/** Uploads started within this long are left alone: another run may still be writing them. */
export const DEFAULT_STALE_AGE = 24 * 3600 * 1000;

/**
 * Discards every unfinished write under `store` begun more than `ageMs` ago, printing an
 * `upload` record for each once it is gone, then the trailer.
 */
export async function abortStale(ctx: Context, store: ObjectStore, ageMs: number): Promise<void> {
  // An age of 0 means every upload, whatever the server's clock says of when it began.
  const before = ageMs === 0 ? new Date(8.64e15) : new Date(Date.now() - ageMs);
  await source(ctx, {}, async function* (out) {
    for await (const page of store.unfinishedWrites('', before)) {
      for (const write of page) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        await store.discardWrite(write);
        out.push({ type: 'upload', key: write.key, uploadId: write.id, started: write.started.toISOString(), state: 'aborted', store: store.url });
      }
      yield out.take();
    }
  });
}
