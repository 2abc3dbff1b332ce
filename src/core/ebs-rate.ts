// A request rate that stays just under a quota it cannot see: a token bucket whose rate grows
// a little with every accepted request and shrinks by a fraction when one is throttled
// (additive increase, multiplicative decrease, as TCP does with its window). EBS allows 1,000
// GetSnapshotBlock and 1,000 PutSnapshotBlock per second per snapshot, shared with every other
// client of that snapshot and bounded by the account's own budget, so the real ceiling is
// found by probing, not assumed.
import { setTimeout as sleep } from 'node:timers/promises';

/** The fixed per-snapshot quota of block reads and of block writes, per second. */
export const SNAPSHOT_QUOTA = 1000;
// Never below this: a stalled rate would turn a brief throttle into a crawl.
const MIN_RATE = 5;
// Growth per accepted request: from 700/s back to 1,000/s takes about 600 requests.
const INCREASE = 0.5;
const DECREASE = 0.7;
// Throttles answered within this window of the last cut are one event: requests already in
// flight when the rate was cut must not cut it again.
const CUT_WINDOW_MS = 250;
// The bucket holds at most this share of a second of requests: a short burst, not a second's.
const BURST_SECONDS = 0.05;

export class AdaptiveRate {
  rate: number;
  private tokens = 1;
  private last = performance.now();
  private lastCut = -Infinity;
  private queue: Promise<void> = Promise.resolve();
  throttles = 0;

  constructor(
    private readonly ceiling = SNAPSHOT_QUOTA,
    initial = ceiling,
  ) {
    this.rate = initial;
  }

  /** Resolves when the next request may go; requests go in the order they asked. */
  acquire(signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.take(signal));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const now = performance.now();
      const burst = Math.max(1, this.rate * BURST_SECONDS);
      this.tokens = Math.min(burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.max(1, ((1 - this.tokens) / this.rate) * 1000), undefined, { signal });
    }
  }

  accepted(): void {
    this.rate = Math.min(this.ceiling, this.rate + INCREASE);
  }

  throttled(): void {
    this.throttles++;
    const now = performance.now();
    if (now - this.lastCut < CUT_WINDOW_MS) return;
    this.lastCut = now;
    this.rate = Math.max(MIN_RATE, this.rate * DECREASE);
  }
}
