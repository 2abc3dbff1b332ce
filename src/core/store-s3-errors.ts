// How an S3 store's calls fail: each AWS error becomes a StoreError of the contract's kinds, and
// what may succeed later (500s, 503 SlowDown, throttling, cut connections, timeouts) is tried
// again with jittered exponential backoff. What cannot (NoSuchBucket, AccessDenied, a bad
// request) fails at once. Every message names the store URL, the call and the key.
import { setTimeout as sleep } from 'node:timers/promises';
import { IntegrityError } from './errors';
import { NotFoundError, StoreError, type StoreErrorKind } from './store';

/** A reply cut short or longer than announced: read again, as a cut connection is. */
export class ShortReply extends Error {}

/** An error S3 reports inside a successful reply (DeleteObjects' per-key errors). */
export class S3ReplyError extends Error {
  constructor(code: string, message: string) {
    super(message);
    this.name = code;
  }
}

interface AwsError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_STREAM_PREMATURE_CLOSE']);
// 400s that S3 documents as worth retrying.
const RETRYABLE_NAMES = new Set(['SlowDown', 'RequestTimeout', 'RequestTimeTooSkewed', 'InternalError', 'ServiceUnavailable', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded', 'TimeoutError']);
const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket']);

export function classify(err: unknown): StoreErrorKind {
  if (err instanceof ShortReply) return 'transient';
  const e = (err ?? {}) as AwsError;
  const name = e.name ?? e.Code ?? '';
  const status = e.$metadata?.httpStatusCode;
  if (NOT_FOUND_NAMES.has(name) || (status === 404 && name !== 'NoSuchUpload')) return 'not-found';
  // GetObject of a GLACIER or DEEP_ARCHIVE object that was not restored.
  if (name === 'InvalidObjectState') return 'archived';
  if (RETRYABLE_NAMES.has(name) || status === 429 || (status !== undefined && status >= 500)) return 'transient';
  if (status !== undefined) return 'permanent';
  if (name === 'CredentialsProviderError' || /region is missing/i.test(e.message ?? '')) return 'permanent';
  if (NETWORK_CODES.has(e.code ?? '') || /socket hang up|aborted|ECONNRESET/i.test(e.message ?? '')) return 'transient';
  // A reply cut off mid-body fails to parse: the SDK leaves $metadata on it.
  if (e.$metadata) return 'transient';
  return 'permanent';
}

/** The one-line account of an AWS error: `NoSuchBucket: The specified bucket does not exist`. */
export function describeError(err: unknown): string {
  const e = (err ?? {}) as AwsError;
  const name = e.name && e.name !== 'Error' ? e.name : e.Code ?? e.code ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const message = e.message && e.message !== 'UnknownError' && e.message !== name ? e.message : status !== undefined ? `HTTP ${status}` : '';
  return message ? `${name}: ${message}` : name;
}

export interface RetryPolicy {
  /** Tries of one call before a transient failure is final. */
  maxTries: number;
  signal?: AbortSignal;
}

// With the backoff below, 10 tries wait about 40 s in all: enough to ride out a burst of 503
// SlowDown or a restarting endpoint.
export const DEFAULT_MAX_TRIES = 10;
const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 10_000;

/** What a call was doing, for messages: the store URL, the call's name and the key. */
export interface Where {
  url: string;
  op: string;
  key?: string;
}

function at(where: Where): string {
  return `${where.url}: ${where.op}${where.key === undefined ? '' : ` ${JSON.stringify(where.key)}`}`;
}

/** The StoreError (or IntegrityError) that a final failure is reported as; `cause` is the AWS error. */
export function storeErrorOf(where: Where, err: unknown, tries = 1): Error {
  if (err instanceof StoreError || err instanceof IntegrityError) return err;
  return Object.assign(storeErrorFor(where, err, tries), { cause: err });
}

function storeErrorFor(where: Where, err: unknown, tries: number): StoreError {
  const kind = classify(err);
  const name = ((err ?? {}) as AwsError).name;
  if (kind === 'not-found') {
    if (name === 'NoSuchBucket') return new NotFoundError(`${at(where)}: no such bucket (${describeError(err)})`, where.key);
    if (where.key !== undefined) return new NotFoundError(`${where.url}: no object ${JSON.stringify(where.key)}`, where.key);
  }
  if (kind === 'archived') {
    return new StoreError(`${at(where)}: the object is archived (GLACIER or DEEP_ARCHIVE) and must be restored first: ${describeError(err)}`, kind, where.key);
  }
  const gaveUp = tries > 1 ? ` (gave up after ${tries} tries)` : '';
  return new StoreError(`${at(where)}: ${describeError(err)}${gaveUp}`, kind, where.key);
}

/** Runs one call, trying again while it fails transiently; rejects with a StoreError. */
export async function withRetries<T>(policy: RetryPolicy, where: Where, attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    if (policy.signal?.aborted) throw policy.signal.reason;
    try {
      return await attempt();
    } catch (err) {
      if (policy.signal?.aborted) throw policy.signal.reason;
      if (classify(err) !== 'transient' || err instanceof StoreError || tries >= policy.maxTries) throw storeErrorOf(where, err, tries);
    }
    await sleep(backoff(tries), undefined, { signal: policy.signal });
  }
}

/** Full jitter: a random wait up to the exponential bound, so retries of many calls spread out. */
function backoff(failures: number): number {
  const bound = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (failures - 1));
  return bound / 2 + Math.random() * (bound / 2);
}
