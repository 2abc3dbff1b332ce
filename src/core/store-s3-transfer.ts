// Moving bytes of one S3 object: a GET of a byte range copied straight into its place in the
// object's buffer, and the part sizes of multipart uploads (store-s3-multipart.ts).
import type { S3Client } from '@aws-sdk/client-s3';
import { s3Sdk } from './store-s3-client';
import { ShortReply, withRetries, type RetryPolicy, type Where } from './store-s3-errors';
import { rawGetObject, type GetHead } from './store-s3-raw-get';
import type { SignedRequests } from './signed-requests';
import type { GetOptions } from './store';
import type { BodySegments } from './raw-http';

import { MAX_PARTS, MIN_PART_SIZE } from './store-s3-limits';

export { MAX_PARTS, MIN_PART_SIZE };
// Parts or ranges of one object in flight: with s3-put's 8 objects at once, 32 requests.
export const PART_JOBS = 4;

/** The part size for `size` bytes: `preferred`, grown (in whole MiB) to stay within 10,000 parts. */
export function partSizeFor(size: number, preferred: number): number {
  const least = Math.ceil(size / MAX_PARTS / (1 << 20)) * (1 << 20);
  return Math.max(preferred, least, MIN_PART_SIZE);
}

export interface Target {
  /** The SDK's client (loaded when first asked for). */
  readonly client: S3Client;
  /** Requests without the SDK (store-s3-raw-get.ts), where the endpoint allows them. */
  raw: SignedRequests | undefined;
  bucket: string;
  /** The key in the bucket (store prefix included). */
  fullKey: string;
  policy: RetryPolicy;
  where: (op: string) => Where;
  /** Set when a given version is read (store-s3-versions.ts): such reads go through the SDK. */
  versionId?: string;
}

export interface RangeRead {
  /** The reply's headers (its body consumed). */
  head: GetHead;
  /** The object's size, from Content-Range (or Content-Length when the whole object came). */
  total: number;
  data: Buffer;
}

/**
 * GETs `length` bytes from `start` (to the object's end when `length` is undefined), into `into`
 * when given (a place in the object's buffer: no copy), else into a buffer `buffer` gives (see
 * GetOptions), with `ifMatch` (an ETag) so that the ranges of one read all come from one
 * version. A reply of another length than announced (a cut connection) is read again, into the
 * same place.
 */
export async function readRange(t: Target, start: number, length: number | undefined, opts: { into?: Buffer; ifMatch?: string; buffer?: GetOptions['buffer'] } = {}): Promise<RangeRead> {
  let given: Buffer | undefined;
  const raw = t.versionId === undefined ? t.raw : undefined;
  return withRetries(t.policy, t.where('GetObject'), async () => {
    const range = length !== undefined ? `bytes=${start}-${start + length - 1}` : start > 0 ? `bytes=${start}-` : undefined;
    // The buffer a reply of `expected` bytes is read into.
    const place = (expected: number): Buffer => {
      if (opts.into) {
        if (expected > opts.into.length) throw new ShortReply(`the reply holds more than the ${opts.into.length} bytes asked for`);
        return opts.into;
      }
      if (!(given && given.length >= expected)) given = opts.buffer?.(expected) ?? Buffer.allocUnsafeSlow(expected);
      return given;
    };
    if (raw) {
      const { head, body } = await rawGetObject(raw, { bucket: t.bucket, key: t.fullKey, range, ifMatch: opts.ifMatch, bodyBuffer: place, maxBody: length ?? Number.MAX_SAFE_INTEGER, signal: t.policy.signal });
      const total = totalOf(head);
      const expected = Math.min(length ?? total, Math.max(0, total - start));
      if (body.length !== expected) throw new ShortReply(`the reply holds ${body.length} bytes, ${expected} were asked for`);
      return { head, total, data: body };
    }
    const res = await t.client.send(new (s3Sdk().GetObjectCommand)({ Bucket: t.bucket, Key: t.fullKey, Range: range, IfMatch: opts.ifMatch }), { abortSignal: t.policy.signal });
    const { Body: body, ...head } = res;
    const total = totalOf(res);
    const expected = Math.min(length ?? total, Math.max(0, total - start));
    if (res.ContentLength !== undefined && res.ContentLength !== expected) throw new ShortReply(`the reply announces ${res.ContentLength} bytes, ${expected} were asked for`);
    const data = place(expected);
    let got = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (got + chunk.length > expected) throw new ShortReply(`the reply holds more than the ${expected} bytes asked for`);
      data.set(chunk, got);
      got += chunk.length;
    }
    if (got !== expected) throw new ShortReply(`the reply ended after ${got} of ${expected} bytes`);
    return { head, total, data: data.subarray(0, got) };
  });
}

/**
 * Bytes [start, end) of the object as one GET, streamed through the reader's buffers in
 * segments (raw-http.ts), on a plain-http endpoint; undefined elsewhere (https, or a version
 * read), where ranges are read instead. A transfer that breaks off is taken up again, as the
 * retry policy allows, from the first segment not yet whole (the buffer of the one cut off is
 * used again). Every request names the ETag (If-Match), so every byte is of one object.
 */
export async function readSegments(t: Target, start: number, end: number, reader: BodySegments, ifMatch: string): Promise<RangeRead | undefined> {
  const raw = t.versionId === undefined ? t.raw : undefined;
  if (!raw) return undefined;
  let done = 0;
  let attempts = 0;
  let current: Buffer | undefined;
  let spare: Buffer | undefined;
  const counted = (length: number, mine: number): BodySegments => ({
    size: reader.size,
    length,
    next() {
      if (spare) [current, spare] = [spare, undefined];
      else {
        const given = reader.next();
        // A buffer that comes after its attempt failed is kept for the next one.
        if (given instanceof Promise) return given.then((b) => (mine === attempts ? (current = b) : (spare ??= b)));
        current = given;
      }
      return current;
    },
    filled(segment) {
      current = undefined;
      done += segment.length;
      reader.filled(segment);
    },
  });
  const attempt = async (): Promise<RangeRead> => {
    attempts++;
    spare ??= current;
    current = undefined;
    const from = start + done;
    const range = `bytes=${from}-${end - 1}`;
    const { head } = await rawGetObject(raw, { bucket: t.bucket, key: t.fullKey, range, ifMatch, bodySegments: counted(end - from, attempts), maxBody: 0, signal: t.policy.signal });
    if (start + done !== end) throw new ShortReply(`the reply ended after ${done} of ${end - start} bytes`);
    return { head, total: totalOf(head), data: Buffer.alloc(0) };
  };
  // Tries that brought whole segments count afresh: a long read through a slow reader (its
  // socket paused meanwhile) may be cut more times in all than one call's tries allow.
  for (;;) {
    const before = done;
    try {
      return await withRetries(t.policy, t.where('GetObject'), attempt);
    } catch (err) {
      if (done === before || (err as { kind?: string }).kind !== 'transient' || t.policy.signal?.aborted) throw err;
    }
  }
}

function totalOf(res: GetHead): number {
  const m = /\/(\d+)$/.exec(res.ContentRange ?? '');
  return m ? Number(m[1]) : (res.ContentLength ?? 0);
}
