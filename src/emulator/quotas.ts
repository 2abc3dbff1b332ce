// Request-rate quotas as token buckets with the service's default limits, and the
// pending-snapshot count.
import { performance } from 'node:perf_hooks';
import { ApiError, accountThrottled, snapshotThrottled } from './errors';

export const QUOTA_DEFAULTS = {
  'get-snapshot': 1000,
  'get-account': 1000,
  'put-snapshot': 1000,
  'put-account': 1000,
  'list-blocks': 50,
  'list-changed': 50,
  start: 10,
  complete: 10,
  pending: 100,
};
export type QuotaName = keyof typeof QUOTA_DEFAULTS;
export const QUOTA_NAMES = Object.keys(QUOTA_DEFAULTS) as QuotaName[];

/**
 * A bucket holding a tenth of a second's worth of requests (at least 5, or half the rate): a
 * flood is accepted at the quota, with at most that burst on top, and a client whose requests
 * arrive unevenly (a few quick Starts, two Lists in a row) is not refused below the rate.
 */
class Bucket {
  private tokens: number;
  private last = performance.now();
  constructor(private rate: number) {
    this.tokens = this.capacity();
  }
  private capacity(): number {
    return Math.max(1, this.rate / 10, Math.min(this.rate / 2, 5));
  }
  setRate(rate: number): void {
    this.rate = rate;
  }
  private fill(now: number): void {
    this.tokens = Math.min(this.capacity(), this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }
  has(now: number): boolean {
    this.fill(now);
    return this.tokens >= 1;
  }
  take(): void {
    this.tokens -= 1;
  }
}

export class Quotas {
  enabled = true;
  readonly limits: Record<QuotaName, number | null> = { ...QUOTA_DEFAULTS };
  private readonly buckets = new Map<string, Bucket>();

  set(name: QuotaName, value: number | null): void {
    this.limits[name] = value;
    for (const [key, bucket] of this.buckets) if (key === name || key.startsWith(`${name} `)) bucket.setRate(value ?? 0);
  }

  private bucket(name: QuotaName, key: string): Bucket | undefined {
    const rate = this.limits[name];
    if (!this.enabled || rate === null) return undefined;
    let b = this.buckets.get(key);
    if (!b) this.buckets.set(key, (b = new Bucket(rate)));
    return b;
  }

  /** GetSnapshotBlock / PutSnapshotBlock: the snapshot's own budget, then the account's. */
  blockRequest(kind: 'get' | 'put', snapshotId: string, op: string): ApiError | undefined {
    const now = performance.now();
    const snap = this.bucket(`${kind}-snapshot`, `${kind}-snapshot ${snapshotId}`);
    const account = this.bucket(`${kind}-account`, `${kind}-account`);
    if (snap && !snap.has(now)) return snapshotThrottled(snapshotId);
    if (account && !account.has(now)) return accountThrottled(op);
    snap?.take();
    account?.take();
    return undefined;
  }

  /** List, Start and Complete: one account-wide budget each. */
  accountRequest(name: QuotaName, op: string): ApiError | undefined {
    const b = this.bucket(name, name);
    if (!b) return undefined;
    if (!b.has(performance.now())) return accountThrottled(op);
    b.take();
    return undefined;
  }

  /** The pending-snapshot limit, or undefined when there is none. */
  pendingLimit(): number | undefined {
    const n = this.limits.pending;
    return this.enabled && n !== null ? n : undefined;
  }
}

/** Parses `NAME=N` of --quota. */
export function parseQuota(text: string): [QuotaName, number] {
  const m = /^([a-z-]+)=([0-9]+)$/.exec(text);
  if (!m || !(QUOTA_NAMES as string[]).includes(m[1])) throw new Error(`expected NAME=N with NAME one of ${QUOTA_NAMES.join(', ')}, got ${JSON.stringify(text)}`);
  return [m[1] as QuotaName, Number(m[2])];
}
