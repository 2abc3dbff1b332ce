// A fixed set of worker threads running one script, each taking one job at a time from a common
// queue (a thread never waits behind a slow job while another is idle). Threads start on first
// use. A job is a message plus the ArrayBuffers moved with it; its answer resolves a promise,
// or rejects it when the answer carries `error`. Callers keep their own order.
import { Worker } from 'node:worker_threads';

/** What a worker posts back when a job failed; anything else is a result. */
export interface WorkerFailure {
  error: string;
  [k: string]: unknown;
}

interface Job {
  message: unknown;
  transfer: ArrayBuffer[];
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Lane {
  worker: Worker;
  job: Job | undefined;
}

export interface WorkerPoolOptions {
  /** The compiled script each thread runs. */
  script: string;
  /** Given to each thread as workerData (a role marker, so the script runs only there). */
  workerData: unknown;
  threads: number;
  /** Names the pool in the error when a thread dies. */
  name: string;
  /** Turns a failure answer into the error the job rejects with (default: a plain Error). */
  failure?: (msg: WorkerFailure) => Error;
}

export class WorkerPool {
  private readonly lanes: Lane[] = [];
  private readonly waiting: Job[] = [];
  private broken: Error | undefined;
  private closed = false;

  constructor(private readonly opts: WorkerPoolOptions) {}

  get threads(): number {
    return this.opts.threads;
  }

  /** Queues a job; the buffers in `transfer` move to the thread (detached here). */
  run<T>(message: unknown, transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.broken) return Promise.reject(this.broken);
    // A job that comes in after close() (one still in flight when its command ended) must not
    // start a thread again: it would keep the process alive.
    if (this.closed) return Promise.reject(new Error(`${this.opts.name} worker threads are closed`));
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ message, transfer, resolve: resolve as (v: unknown) => void, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const gone = new Error(`${this.opts.name} worker threads are closed`);
    for (const job of this.waiting.splice(0)) job.reject(gone);
    const lanes = this.lanes.splice(0);
    await Promise.all(lanes.map((l) => l.worker.terminate()));
  }

  private dispatch(): void {
    while (this.waiting.length && !this.closed) {
      let lane = this.lanes.find((l) => !l.job);
      if (!lane && this.lanes.length < this.opts.threads) lane = this.spawn();
      if (!lane) return;
      const job = this.waiting.shift()!;
      lane.job = job;
      lane.worker.postMessage(job.message, job.transfer);
    }
  }

  private spawn(): Lane {
    const worker = new Worker(this.opts.script, { workerData: this.opts.workerData });
    const lane: Lane = { worker, job: undefined };
    worker.on('message', (msg: unknown) => {
      const job = lane.job;
      lane.job = undefined;
      if (job) {
        const failed = typeof msg === 'object' && msg !== null && typeof (msg as WorkerFailure).error === 'string';
        if (failed) job.reject(this.opts.failure ? this.opts.failure(msg as WorkerFailure) : new Error((msg as WorkerFailure).error));
        else job.resolve(msg);
      }
      this.dispatch();
    });
    const fail = (err: Error) => {
      this.broken ??= new Error(`${this.opts.name} worker thread failed: ${err.message}`);
      for (const job of [...(lane.job ? [lane.job] : []), ...this.waiting.splice(0)]) job.reject(this.broken);
      lane.job = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (lane.job) fail(new Error(`exited with status ${code}`));
    });
    this.lanes.push(lane);
    return lane;
  }
}
