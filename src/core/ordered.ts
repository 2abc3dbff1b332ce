import type { Encoder } from './encode';
import type { Rec } from './records';

interface Entry {
  promise: Promise<Rec[]>;
  done: boolean;
  job: boolean;
  bytes: number;
}

/**
 * Output kept in input order while jobs run in parallel: records and the promised results of
 * jobs are queued as they arrive and written once everything before them is ready. At most
 * `limit` jobs wait in the queue, and, when jobs say how many bytes they hold, at most
 * `byteLimit` bytes plus one job's: that is what bounds memory.
 */
export class OrderedOutput {
  private readonly queue: Entry[] = [];
  private jobs = 0;
  private bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly byteLimit = Infinity,
  ) {}

  /** Queues records that are ready now. */
  records(...recs: Rec[]) {
    if (!this.queue.length) {
      this.ready.push(...recs);
      return;
    }
    this.queue.push({ promise: Promise.resolve(recs), done: true, job: false, bytes: 0 });
  }

  /** Queues the records a job will produce; `bytes` is the memory it holds until written. */
  job(promise: Promise<Rec[]>, bytes = 0) {
    const entry: Entry = { promise, done: false, job: true, bytes };
    // Settled early or late, a failure is reported in order by the await in flush().
    promise.then(
      () => (entry.done = true),
      () => (entry.done = true),
    );
    this.queue.push(entry);
    this.jobs++;
    this.bytes += bytes;
  }

  private ready: Rec[] = [];

  /** Whether another job may be queued without waiting. */
  get full() {
    return this.jobs >= this.limit || this.bytes >= this.byteLimit;
  }

  /**
   * Moves finished records to `out`, in order; waits for the oldest job while the queue is
   * full, or for all of them with `all`.
   */
  async flush(out: Encoder, all = false) {
    for (const rec of this.ready) out.push(rec);
    this.ready = [];
    while (this.queue.length && (this.queue[0].done || all || this.full)) {
      for (const rec of await this.shift().promise) out.push(rec);
    }
  }

  /**
   * After a failure: waits for every job still queued and writes the records of those that
   * succeeded, in order, leaving out the ones that failed (whose errors it returns).
   */
  async settle(out: Encoder): Promise<unknown[]> {
    for (const rec of this.ready) out.push(rec);
    this.ready = [];
    const failures: unknown[] = [];
    while (this.queue.length) {
      try {
        for (const rec of await this.shift().promise) out.push(rec);
      } catch (err) {
        failures.push(err);
      }
    }
    return failures;
  }

  private shift(): Entry {
    const entry = this.queue.shift()!;
    if (entry.job) this.jobs--;
    this.bytes -= entry.bytes;
    return entry;
  }

  /** Writes the oldest entry, waiting for it if need be; false when the queue is empty. */
  async one(out: Encoder): Promise<boolean> {
    for (const rec of this.ready) out.push(rec);
    this.ready = [];
    if (!this.queue.length) return false;
    for (const rec of await this.shift().promise) out.push(rec);
    return true;
  }

  get empty() {
    return this.queue.length === 0 && this.ready.length === 0;
  }
}
