// A pool of worker threads that compress and decompress chunks with zstd (zstd-worker.ts is
// their body), hashing the same bytes there too, so the main thread only parses and routes
// records. Buffers move to a worker and back rather than being copied.
import path from 'node:path';
import { WorkerPool } from './worker-pool';
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

/**
 * Worker threads, each with its own zstd contexts (the lane mechanics are core/worker-pool.ts).
 * Results come back as promises; callers keep their own order.
 */
export class ZstdPool {
  private readonly pool: WorkerPool;

  constructor(readonly threads: number) {
    this.pool = new WorkerPool({
      script: path.join(__dirname, 'zstd-worker.js'),
      workerData: { role: WORKER_ROLE },
      threads,
      name: 'zstd',
      failure: (msg) => (msg.frameError ? new FrameError(msg.error) : new Error(msg.error)),
    });
  }

  private run<T>(message: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> {
    return this.pool.run<T>(message, transfer);
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

  close(): Promise<void> {
    return this.pool.close();
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
