// zstd compression and decompression of block chunks on worker threads, with the checksums of
// the same bytes computed there too, so the main thread only parses and routes records.
//
// The binding is zstd-napi (libzstd built at install). Its calls are synchronous, so they run on
// worker threads; @mongodb-js/zstd 1.x has an asynchronous API but writes frames without the
// content size, which the FSP layout requires (docs/BENCHMARKS.md, "zstd binding").
//
// The pieces: the worker-thread pool (zstd-pool.ts), the worker's body (zstd-worker.ts), the
// reuse of large output buffers (buffer-pool.ts); here what both sides of the pool share.
import { availableParallelism } from 'node:os';
import * as zstd from 'zstd-napi/binding';

export const DEFAULT_LEVEL = 1;
export const MAX_LEVEL = 19;

export function defaultJobs(): number {
  return Math.max(1, availableParallelism());
}

/** A frame the worker could not decompress: its message is libzstd's or ours. */
export class FrameError extends Error {}

/** A buffer that owns all of its memory, as a worker transfer needs. */
export function chunkBuffer(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/** The most a frame of `rawSize` bytes can take (incompressible data, in zstd's raw blocks). */
export function frameBound(rawSize: number): number {
  return zstd.compressBound(rawSize);
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

/** A compression context that writes frames as the layouts need: content size, no checksum. */
export function newCCtx(): zstd.CCtx {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.contentSizeFlag, 1);
  cctx.setParameter(zstd.CParameter.checksumFlag, 0);
  return cctx;
}
