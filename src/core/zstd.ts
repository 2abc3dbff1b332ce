// zstd compression and decompression of block chunks on worker threads, with the checksums of
// the same bytes computed there too, so the main thread only parses and routes records.
//
// The binding is zstd-napi (libzstd built at install). Its calls are synchronous, so they run on
// worker threads; @mongodb-js/zstd 1.x has an asynchronous API but writes frames without the
// content size, which the FSP layout requires (docs/BENCHMARKS.md, "zstd binding").
import { hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import * as zstd from 'zstd-napi/binding';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256 } from './records';

const ROLE = 'sluice-zstd-worker';

export const DEFAULT_LEVEL = 1;
export const MAX_LEVEL = 19;

export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

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

/** A frame the worker could not decompress: its message is libzstd's or ours. */
export class FrameError extends Error {}

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
    const worker = new Worker(__filename, { workerData: { role: ROLE } });
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

/** A buffer that owns all of its memory, as a worker transfer needs. */
export function chunkBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/** The most a frame of `rawSize` bytes can take (incompressible data, in zstd's raw blocks). */
export function frameBound(rawSize: number): number {
  return zstd.compressBound(rawSize);
}

/**
 * Large output buffers (frames, decompressed chunks) used again once what was made in them has
 * been written, instead of left to the garbage collector: V8 frees external memory only after
 * some 64 MiB more of it was allocated, so 32 MiB buffers left behind would hold that much
 * more memory. A buffer is lent with the number of views of it that go out; it comes back when
 * every one of them has passed through returned().
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly lent = new Map<ArrayBuffer, number>();

  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `size` bytes to fill, when one is free; undefined asks for a new one. */
  take(): Buffer | undefined {
    return this.free.pop();
  }

  /** `views` views of this pool-sized buffer go out: it comes back once they all returned. */
  lend(buf: Buffer, views: number): void {
    const ab = buf.buffer;
    if (!(ab instanceof ArrayBuffer) || ab.byteLength !== this.size) return;
    if (views > 0) this.lent.set(ab, views);
    else this.keepFree(ab);
  }

  /** Buffers that were written out (`yield`ed and resumed after): those of the pool come back. */
  returned(written: Buffer[]): void {
    if (!this.lent.size) return;
    for (const b of written) {
      const ab = b.buffer as ArrayBuffer;
      const left = this.lent.get(ab);
      if (left === undefined) continue;
      if (left > 1) {
        this.lent.set(ab, left - 1);
      } else {
        this.lent.delete(ab);
        this.keepFree(ab);
      }
    }
  }

  private keepFree(ab: ArrayBuffer): void {
    if (this.free.length < this.keep) this.free.push(Buffer.from(ab));
  }
}

function ownArrayBuffer(buf: Buffer): ArrayBuffer {
  const ab = buf.buffer;
  if (!(ab instanceof ArrayBuffer) || buf.byteOffset !== 0 || buf.length !== ab.byteLength) {
    throw new Error('chunk buffer must own its ArrayBuffer (make it with chunkBuffer())');
  }
  return ab;
}

/** The buffer given to write into, if it is large enough, else a new one. */
function outputBuffer(given: ArrayBuffer | undefined, size: number): Buffer {
  return given && given.byteLength >= size ? Buffer.from(given) : Buffer.allocUnsafeSlow(size);
}

function copyToOwn(buf: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(buf.length);
  new Uint8Array(ab).set(buf);
  return ab;
}

/** What the header of a zstd frame says, for checks and messages. */
export function frameInfo(frame: Uint8Array): { contentSize: number | null; checksum: boolean } | null {
  if (frame.length < 6 || frame[0] !== 0x28 || frame[1] !== 0xb5 || frame[2] !== 0x2f || frame[3] !== 0xfd) return null;
  const descriptor = frame[4];
  let contentSize: number | null = null;
  try {
    contentSize = zstd.getFrameContentSize(frame);
  } catch {
    contentSize = null;
  }
  return { contentSize, checksum: (descriptor & 0x04) !== 0 };
}

/** Compresses on the calling thread (small things: a test, a cached zero chunk). */
export function compressSync(raw: Uint8Array, level = DEFAULT_LEVEL): Buffer {
  const cctx = newCCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, level);
  const dst = Buffer.allocUnsafe(zstd.compressBound(raw.length));
  return dst.subarray(0, cctx.compress2(dst, raw));
}

function newCCtx(): zstd.CCtx {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.contentSizeFlag, 1);
  cctx.setParameter(zstd.CParameter.checksumFlag, 0);
  return cctx;
}

// ---- worker side ----

function runWorker(): void {
  const port = parentPort!;
  const cctx = newCCtx();
  const dctx = new zstd.DCtx();
  let level = -Infinity;
  const zeros = new Uint8Array(BLOCK_SIZE);
  const zeroDigest = Buffer.from(ZERO_BLOCK_SHA256, 'base64');
  const digest = (data: Uint8Array) => hash('sha256', data, 'buffer') as unknown as Buffer;

  function compress(msg: { [k: string]: unknown }) {
    const raw = new Uint8Array(msg.raw as ArrayBuffer, 0, msg.length as number);
    const zero = msg.zero as boolean[];
    const claims = msg.claims as (string | null)[];
    const digests: Buffer[] = [];
    for (let i = 0; i < zero.length; i++) {
      const claim = claims[i];
      if (zero[i]) {
        digests.push(zeroDigest);
      } else if (claim !== null && !msg.verify) {
        digests.push(Buffer.from(claim, 'base64'));
      } else {
        const d = digest(raw.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
        if (claim !== null && d.toString('base64') !== claim) {
          const frame = (msg.into as ArrayBuffer | undefined) ?? new ArrayBuffer(0);
          return { result: { badBlock: i, badBlockSha256: d.toString('base64'), raw: msg.raw, frame, frameLength: 0 }, transfer: [msg.raw as ArrayBuffer, frame] };
        }
        digests.push(d);
      }
    }
    if (msg.level !== level) {
      level = msg.level as number;
      cctx.setParameter(zstd.CParameter.compressionLevel, level);
    }
    // Compressed straight into a buffer of the worst-case size that then travels as the frame:
    // no copy, and the pages past the frame's end are never touched, so never resident.
    const dst = outputBuffer(msg.into as ArrayBuffer | undefined, zstd.compressBound(raw.length));
    const n = cctx.compress2(dst, raw);
    const frame = dst.subarray(0, n);
    const result = {
      frame: dst.buffer,
      frameLength: n,
      raw: msg.raw,
      sha256: digest(frame).toString('base64'),
      blocksSha256: digest(Buffer.concat(digests)).toString('base64'),
      rawSha256: msg.rawSha256 ? digest(raw).toString('base64') : undefined,
      badBlock: -1,
    };
    return { result, transfer: [dst.buffer, msg.raw as ArrayBuffer] };
  }

  function decompress(msg: { [k: string]: unknown }) {
    const frame = new Uint8Array(msg.frame as ArrayBuffer, 0, msg.length as number);
    const rawSize = msg.rawSize as number;
    const frameSize = zstd.findFrameCompressedSize(frame);
    if (frameSize !== frame.length) throw new FrameError(`${frame.length - frameSize} bytes follow the zstd frame (expected one frame)`);
    const declared = zstd.getFrameContentSize(frame);
    if (declared !== null && declared !== rawSize) throw new FrameError(`the frame holds ${declared} bytes, expected ${rawSize}`);
    const out = outputBuffer(msg.into as ArrayBuffer | undefined, rawSize).subarray(0, rawSize);
    const n = dctx.decompress(out, frame);
    if (n !== rawSize) throw new FrameError(`the frame decompressed to ${n} bytes, expected ${rawSize}`);
    const blockSha256: (string | null)[] = [];
    const digests: Buffer[] = [];
    for (let o = 0; o < rawSize; o += BLOCK_SIZE) {
      const block = out.subarray(o, o + BLOCK_SIZE);
      if (block.equals(zeros)) {
        blockSha256.push(null);
        digests.push(zeroDigest);
      } else {
        const d = digest(block);
        blockSha256.push(d.toString('base64'));
        digests.push(d);
      }
    }
    const result = {
      raw: out.buffer,
      blockSha256,
      blocksSha256: digest(Buffer.concat(digests)).toString('base64'),
      rawSha256: msg.rawSha256 ? digest(out).toString('base64') : undefined,
    };
    return { result, transfer: [out.buffer] };
  }

  port.on('message', (msg: { op: string; [k: string]: unknown }) => {
    try {
      const { result, transfer } = msg.op === 'compress' ? compress(msg) : decompress(msg);
      port.postMessage(result, transfer as ArrayBuffer[]);
    } catch (err) {
      const e = err as Error;
      // Anything libzstd throws while decompressing is a property of the frame.
      port.postMessage({ error: e.message, frameError: e instanceof FrameError || msg.op === 'decompress' });
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) runWorker();
