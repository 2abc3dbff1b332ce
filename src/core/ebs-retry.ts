// Retries of EBS calls, classified. What can succeed later is retried with jittered exponential
// backoff (500s, throttling, "Failed to read block data", cut connections, the short window in
// which a new snapshot is not found yet); what cannot (access denied, an unknown snapshot, a
// validation error) fails at once, with the snapshot id and block index in the message. An
// expired token is neither: the caller lists again and retries with a fresh one.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from './command';
import type { AdaptiveRate } from './ebs-rate';
import { IntegrityError, SluiceError } from './errors';

export type ErrorKind = 'throttled' | 'transient' | 'block-token' | 'page-token' | 'not-found' | 'corrupt' | 'permanent';

/** Where a call went, for messages: `snap-0123 block 17: GetSnapshotBlock`. */
export interface Where {
  op: string;
  snapshotId: string;
  index?: number;
}

/** A call that failed for good: its kind and the AWS error are kept for callers that recover. */
export class EbsCallError extends SluiceError {
  constructor(
    message: string,
    readonly kind: ErrorKind,
    override readonly cause: unknown,
  ) {
    super(message);
  }
}

/** A reply whose body did not match its own length or checksum: worth another try or two. */
export class CorruptReply extends Error {}

// Consecutive failures of one call before it gives up: 10 transient failures with the backoff
// below wait about 40 s in all, enough to ride out a restarting endpoint or a reset storm.
const MAX_TRANSIENT = 10;
const MAX_THROTTLED = 60;
const MAX_CORRUPT = 3;
const MAX_RECOVERIES = 3;
const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 10_000;
/** How long after StartSnapshot a "not found" is the service catching up (production uploaders wait about two minutes). */
export const NOT_FOUND_WINDOW_MS = 120_000;

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_STREAM_PREMATURE_CLOSE']);

interface AwsError {
  name?: string;
  code?: string;
  message?: string;
  Reason?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

export function classify(err: unknown): ErrorKind {
  if (err instanceof CorruptReply) return 'corrupt';
  const e = (err ?? {}) as AwsError;
  const status = e.$metadata?.httpStatusCode;
  const name = e.name ?? '';
  if (name === 'ThrottlingException' || name === 'RequestThrottledException' || name === 'SlowDown' || status === 429 || name === 'RequestLimitExceeded') return 'throttled';
  if (name === 'ConcurrentLimitExceededException') return 'transient';
  if (name === 'ValidationException') {
    if (/Failed to read block data/i.test(e.message ?? '')) return 'transient';
    if (e.Reason === 'INVALID_BLOCK_TOKEN') return 'block-token';
    if (e.Reason === 'INVALID_PAGE_TOKEN') return 'page-token';
    return 'permanent';
  }
  if (name === 'ResourceNotFoundException') return 'not-found';
  if (status !== undefined) return status >= 500 ? 'transient' : 'permanent';
  if (name === 'CredentialsProviderError' || /region is missing/i.test(e.message ?? '')) return 'permanent';
  if (NETWORK_CODES.has(e.code ?? '') || name === 'TimeoutError' || /socket hang up|aborted/i.test(e.message ?? '')) return 'transient';
  // A reply cut off mid-body fails to parse: the SDK leaves $metadata on it.
  if (e.$metadata) return 'transient';
  return 'permanent';
}

export function describeWhere(where: Where): string {
  return `${where.snapshotId}${where.index === undefined ? '' : ` block ${where.index}`}: ${where.op}`;
}

/** The one-line account of an AWS error. */
export function describeError(err: unknown): string {
  const e = (err ?? {}) as AwsError;
  const name = e.name && e.name !== 'Error' ? e.name : e.code ?? 'Error';
  return `${name}${e.Reason ? ` (${e.Reason})` : ''}: ${e.message ?? String(err)}`;
}

export interface RetryOptions {
  /** Block reads or writes: throttles slow it down, successes speed it up, each try waits for it. */
  rate?: AdaptiveRate;
  /** Called on an expired token; resolves true when the call can be tried again. */
  recover?: (kind: ErrorKind, err: unknown) => Promise<boolean>;
  /** Until this time (ms since the epoch) a ResourceNotFoundException is retried. */
  notFoundUntil?: number;
}

export class Retrier {
  /** Retries made, by kind: the summary a command prints when there were any. */
  readonly retries = new Map<string, number>();

  constructor(private readonly ctx: Context) {}

  async run<T>(where: Where, attempt: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
    const failures = { transient: 0, throttled: 0, corrupt: 0, recovered: 0 };
    for (;;) {
      if (this.ctx.signal.aborted) throw this.ctx.signal.reason;
      if (opts.rate) await opts.rate.acquire(this.ctx.signal);
      let err: unknown;
      try {
        const result = await attempt();
        opts.rate?.accepted();
        return result;
      } catch (caught) {
        err = caught;
      }
      if (this.ctx.signal.aborted) throw this.ctx.signal.reason;
      let kind = classify(err);
      if (kind === 'not-found' && opts.notFoundUntil !== undefined && Date.now() < opts.notFoundUntil) kind = 'transient';
      const detail = kind === 'transient' ? transientName(err) : kind;
      if (kind === 'throttled') {
        opts.rate?.throttled();
        if (++failures.throttled > MAX_THROTTLED) throw this.gaveUp(where, err, failures.throttled);
      } else if (kind === 'transient') {
        if (++failures.transient >= MAX_TRANSIENT) throw this.gaveUp(where, err, failures.transient);
      } else if (kind === 'corrupt') {
        if (++failures.corrupt >= MAX_CORRUPT) throw new IntegrityError(`${describeWhere(where)}: ${(err as Error).message} (${failures.corrupt} tries)`);
      } else if ((kind === 'block-token' || kind === 'page-token') && opts.recover && failures.recovered < MAX_RECOVERIES) {
        failures.recovered++;
        if (await opts.recover(kind, err)) {
          this.count(kind);
          continue;
        }
        throw this.permanent(where, err, kind);
      } else {
        throw this.permanent(where, err, kind);
      }
      this.count(detail);
      const n = kind === 'throttled' ? failures.throttled : kind === 'corrupt' ? failures.corrupt : failures.transient;
      await sleep(backoff(n), undefined, { signal: this.ctx.signal });
    }
  }

  /** `retried 12 times (throttled 10, InternalServerException 2)`, or undefined when none. */
  summary(): string | undefined {
    if (!this.retries.size) return undefined;
    const total = [...this.retries.values()].reduce((a, b) => a + b, 0);
    return `retried ${total} time${total === 1 ? '' : 's'} (${[...this.retries].map(([k, v]) => `${k} ${v}`).join(', ')})`;
  }

  private count(kind: string): void {
    this.retries.set(kind, (this.retries.get(kind) ?? 0) + 1);
  }

  private permanent(where: Where, err: unknown, kind: ErrorKind): EbsCallError {
    return new EbsCallError(`${describeWhere(where)}: ${describeError(err)}`, kind, err);
  }

  private gaveUp(where: Where, err: unknown, tries: number): EbsCallError {
    return new EbsCallError(`${describeWhere(where)}: ${describeError(err)} (gave up after ${tries} tries)`, classify(err), err);
  }
}

function transientName(err: unknown): string {
  const e = (err ?? {}) as AwsError;
  if (e.name === 'ValidationException') return 'read-block';
  if (e.name === 'ResourceNotFoundException') return 'not-found-yet';
  if (e.$metadata?.httpStatusCode !== undefined) return e.name ?? 'server';
  return e.code ?? (e.name === 'TimeoutError' ? 'timeout' : 'connection');
}

/** Full jitter: a random wait up to the exponential bound, so retries of many jobs spread out. */
function backoff(failures: number): number {
  const bound = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (failures - 1));
  return bound / 2 + Math.random() * (bound / 2);
}
