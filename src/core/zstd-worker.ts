// The body of a zstd worker thread (see zstd-pool.ts): each has its own zstd contexts and
// answers one message at a time, compressing or decompressing a chunk and hashing its blocks.
import { hash } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as zstd from 'zstd-napi/binding';
import { BLOCK_SIZE, ZERO_BLOCK_SHA256 } from './records';
import { FrameError, newCCtx } from './zstd';

/** Marks the threads the pool starts, so that loading this module elsewhere runs nothing. */
export const WORKER_ROLE = 'sluice-zstd-worker';

/** The buffer given to write into, if it is large enough, else a new one. */
function outputBuffer(given: ArrayBuffer | undefined, size: number): Buffer {
  return given && given.byteLength >= size ? Buffer.from(given) : Buffer.allocUnsafeSlow(size);
}

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


if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) runWorker();
