// A pool of worker threads that compress and decompress chunks with zstd (zstd-worker.ts is
// their body), hashing the same bytes there too, so the main thread only parses and routes
// records. Buffers move to a worker and back rather than being copied.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { FrameError } from './zstd';
import { WORKER_ROLE } from './zstd-worker';

export interface CompressRequest {
  /** The chunk: its first `length` bytes. It must own its ArrayBuffer (see chunkBuffer()). */
  raw: Buffer;
  length: number;
  level: number;
  /** Per block: true for a zero block (zeros placed by the caller; its digest is known). */
  zero: boolean[];
  /** Per block: the base64 SHA-256 its record gives, or null when it gives none. */
  claims: (string | null)[];
  /** Hash the data of blocks that have a claim and compare (else trust the claim). */
  verify: boolean;
  /** Also hash the whole raw chunk (the FSP layout names chunks by it). */
  rawSha256: boolean;
  /** A buffer (from a BufferPool) to compress into; without it, or if too small, the worker makes one. */
  into?: Buffer;
}

export interface CompressResult {
  /** The zstd frame: content size in the header, no checksum. */
  frame: Buffer;
  /** base64 SHA-256 of the frame. */
  sha256: string;
  /** base64 SHA-256 of the concatenated 32-byte SHA-256 digests of the blocks, in order. */
  blocksSha256: string;
  /** base64 SHA-256 of the raw chunk, when asked for. */
  rawSha256?: string;
  /** The chunk buffer, handed back for reuse. */
  raw: Buffer;
  /** Position in the chunk of the first block whose SHA-256 did not match its claim, or -1. */
  badBlock: number;
  badBlockSha256?: string;
}

export interface DecompressResult {
  raw: Buffer;
  /** base64 SHA-256 of each block, null for an all-zero block. */
  blockSha256: (string | null)[];
  blocksSha256: string;
  rawSha256?: string;
}

interface Job {
  message: Record<string, unknown>;
  transfer: ArrayBuffer[];
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Lane {
  worker: Worker;
  job: Job | undefined;
}

/**
 * A fixed set of worker threads, each with its own zstd contexts, taking one job at a time
 * from a common queue (a lane never waits behind a slow chunk while another is idle). Results
 * come back as promises; callers keep their own order.
 */
export class ZstdPool {
  private readonly lanes: Lane[] = [];
  private readonly waiting: Job[] = [];
  private failure: Error | undefined;

  constructor(readonly threads: number) {}

  private dispatch(): void {
    while (this.waiting.length) {
      let lane = this.lanes.find((l) => !l.job);
      if (!lane && this.lanes.length < this.threads) lane = this.spawn();
      if (!lane) return;
      const job = this.waiting.shift()!;
      lane.job = job;
      lane.worker.postMessage(job.message, job.transfer);
    }
  }

  private spawn(): Lane {
    const worker = new Worker(path.join(__dirname, 'zstd-worker.js'), { workerData: { role: WORKER_ROLE } });
    const lane: Lane = { worker, job: undefined };
    worker.on('message', (msg: { error?: string; frameError?: boolean }) => {
      const job = lane.job;
      lane.job = undefined;
      if (job) {
        if (msg.error !== undefined) job.reject(msg.frameError ? new FrameError(msg.error) : new Error(msg.error));
        else job.resolve(msg);
      }
      this.dispatch();
    });
    const fail = (err: Error) => {
      this.failure ??= new Error(`zstd worker thread failed: ${err.message}`);
      for (const job of [...(lane.job ? [lane.job] : []), ...this.waiting.splice(0)]) job.reject(this.failure);
      lane.job = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (lane.job) fail(new Error(`exited with status ${code}`));
    });
    this.lanes.push(lane);
    return lane;
  }

  private run<T>(message: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ message, transfer, resolve: resolve as (v: unknown) => void, reject });
      this.dispatch();
    });
  }

  /** Compresses a chunk; the buffers are moved to the worker and handed back in the result. */
  async compress(req: CompressRequest): Promise<CompressResult> {
    const ab = ownArrayBuffer(req.raw);
    const into = req.into && ownArrayBuffer(req.into);
    const transfer = into ? [ab, into] : [ab];
    const r = await this.run<Omit<CompressResult, 'frame' | 'raw'> & { frame: ArrayBuffer; frameLength: number; raw: ArrayBuffer }>({ ...req, op: 'compress', raw: ab, into }, transfer);
    return { ...r, frame: Buffer.from(r.frame, 0, r.frameLength), raw: Buffer.from(r.raw) };
  }

  /**
   * Decompresses one frame that must hold exactly `rawSize` bytes, and hashes the result;
   * into `into` (from a BufferPool) when it is given and large enough.
   */
  async decompress(frame: Buffer, rawSize: number, rawSha256: boolean, into?: Buffer): Promise<DecompressResult> {
    const own = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength && frame.buffer instanceof ArrayBuffer;
    const ab = own ? (frame.buffer as ArrayBuffer) : copyToOwn(frame);
    const out = into && ownArrayBuffer(into);
    const r = await this.run<Omit<DecompressResult, 'raw'> & { raw: ArrayBuffer }>({ op: 'decompress', frame: ab, length: frame.length, rawSize, rawSha256, into: out }, out ? [ab, out] : [ab]);
    return { ...r, raw: Buffer.from(r.raw, 0, rawSize) };
  }

  async close(): Promise<void> {
    const lanes = this.lanes.splice(0);
    await Promise.all(lanes.map((l) => l.worker.terminate()));
  }
}

function ownArrayBuffer(buf: Buffer): ArrayBuffer {
  const ab = buf.buffer;
  if (!(ab instanceof ArrayBuffer) || buf.byteOffset !== 0 || buf.length !== ab.byteLength) {
    throw new Error('chunk buffer must own its ArrayBuffer (make it with chunkBuffer())');
  }
  return ab;
}

function copyToOwn(buf: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(buf.length);
  new Uint8Array(ab).set(buf);
  return ab;
}
