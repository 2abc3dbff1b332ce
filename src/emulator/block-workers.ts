// Block data work off the event loop: synthetic blocks are generated and hashed, and put bodies
// hashed, on worker threads (block-worker.ts), so that one process serves GetSnapshotBlock and
// PutSnapshotBlock on every core while its event loop only parses, routes and writes sockets.
// Block buffers are pooled and move to a thread and back rather than being copied.
import path from 'node:path';
import { WorkerPool } from '../core/worker-pool';
import { BLOCK_WORKER_ROLE, BlockAnswer, DigestJob, Recipe, SynthesizeJob } from './block-worker';
import { BLOCK_SIZE } from './limits';

/** Pooled buffers kept for reuse beyond this many are left to the garbage collector. */
const POOL_MAX = 256;

export class BlockWorkers {
  private readonly pool: WorkerPool;
  private readonly free: ArrayBuffer[] = [];

  constructor(threads: number) {
    this.pool = new WorkerPool({ script: path.join(__dirname, 'block-worker.js'), workerData: { role: BLOCK_WORKER_ROLE }, threads, name: 'ebs-emulator block' });
  }

  /** A block-sized buffer that owns its memory (so it can move to a thread); give() it back when no write holds it any more. */
  take(): Buffer {
    return Buffer.from(this.free.pop() ?? new ArrayBuffer(BLOCK_SIZE));
  }

  give(buf: Buffer): void {
    if (this.free.length < POOL_MAX && buf.byteLength === BLOCK_SIZE && buf.buffer.byteLength === BLOCK_SIZE) this.free.push(buf.buffer as ArrayBuffer);
  }

  /** Block `index` made by `recipe` into a pooled buffer, with its base64 SHA-256 when `hash`. */
  async synthesize(recipe: Recipe, index: number, hash: boolean): Promise<{ data: Buffer; checksum?: string }> {
    const buf = this.take().buffer as ArrayBuffer;
    const job: SynthesizeJob = { op: 'synthesize', recipe, index, buf, hash };
    const answer = await this.pool.run<BlockAnswer>(job, [buf]);
    return { data: Buffer.from(answer.buf), checksum: answer.checksum };
  }

  /**
   * The base64 SHA-256 of the first `length` bytes of a pooled buffer. The buffer moves to a
   * thread and back: use the `data` answered, which holds the same bytes, never `buf` again.
   */
  async digest(buf: Buffer, length: number): Promise<{ data: Buffer; checksum: string }> {
    const job: DigestJob = { op: 'digest', buf: buf.buffer as ArrayBuffer, length };
    const answer = await this.pool.run<BlockAnswer>(job, [job.buf]);
    return { data: Buffer.from(answer.buf), checksum: answer.checksum! };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
