import type { Encoder } from './encode';
import type { Rec } from './records';

interface Entry {
  promise: Promise<Rec[]>;
  done: boolean;
  job: boolean;
}

/**
 * Output kept in input order while jobs run in parallel: records and the promised results of
 * jobs are queued as they arrive and written once everything before them is ready. At most
 * `limit` jobs wait in the queue, which is what bounds memory.
 */
export class OrderedOutput {
  private readonly queue: Entry[] = [];
  private jobs = 0;

  constructor(private readonly limit: number) {}

  /** Queues records that are ready now. */
  records(...recs: Rec[]) {
    if (!this.queue.length) {
      this.ready.push(...recs);
      return;
    }
    this.queue.push({ promise: Promise.resolve(recs), done: true, job: false });
  }

  /** Queues the records a job will produce. */
  job(promise: Promise<Rec[]>) {
    const entry: Entry = { promise, done: false, job: true };
    // Settled early or late, a failure is reported in order by the await in flush().
    promise.then(
      () => (entry.done = true),
      () => (entry.done = true),
    );
    this.queue.push(entry);
    this.jobs++;
  }

  private ready: Rec[] = [];

  /** Whether another job may be queued without waiting. */
  get full() {
    return this.jobs >= this.limit;
  }

  /**
   * Moves finished records to `out`, in order; waits for the oldest job while the queue is
   * full, or for all of them with `all`.
   */
  async flush(out: Encoder, all = false) {
    for (const rec of this.ready) out.push(rec);
    this.ready = [];
    while (this.queue.length && (this.queue[0].done || all || this.full)) {
      const entry = this.queue.shift()!;
      if (entry.job) this.jobs--;
      for (const rec of await entry.promise) out.push(rec);
    }
  }

  /** Writes the oldest entry, waiting for it if need be; false when the queue is empty. */
  async one(out: Encoder): Promise<boolean> {
    for (const rec of this.ready) out.push(rec);
    this.ready = [];
    const entry = this.queue.shift();
    if (!entry) return false;
    if (entry.job) this.jobs--;
    for (const rec of await entry.promise) out.push(rec);
    return true;
  }

  get empty() {
    return this.queue.length === 0 && this.ready.length === 0;
  }
}
