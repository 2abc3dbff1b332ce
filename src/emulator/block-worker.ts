// The body of a block worker thread (see block-workers.ts): computes synthetic block data and
// SHA-256 digests, the two costs that would otherwise hold the server's one event loop.
import { hash } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BLOCK_SIZE } from './limits';
import { Pattern, randomKey, writePatternBlock, writeRandomBlock } from './synthetic';

/** Marks the threads the pool starts, so that loading this module elsewhere runs nothing. */
export const BLOCK_WORKER_ROLE = 'ebs-emulator-block-worker';

/** How a synthetic block is made: a pattern, or random bytes keyed by a string. */
export type Recipe = { pattern: Exclude<Pattern, 'random' | 'zeros'> } | { randomKey: string };

export interface SynthesizeJob {
  op: 'synthesize';
  recipe: Recipe;
  index: number;
  buf: ArrayBuffer;
  /** Also hash it (false when the checksum is cached). */
  hash: boolean;
}

export interface DigestJob {
  op: 'digest';
  buf: ArrayBuffer;
  length: number;
}

export interface BlockAnswer {
  buf: ArrayBuffer;
  /** Base64 SHA-256 of the data, when asked for (a string: a cloned Buffer would bring its whole pool slab). */
  checksum?: string;
}

function runWorker(): void {
  const port = parentPort!;
  const keys = new Map<string, Buffer>();
  const keyOf = (material: string) => {
    let key = keys.get(material);
    if (!key) {
      if (keys.size > 1024) keys.clear();
      keys.set(material, (key = randomKey(material)));
    }
    return key;
  };
  port.on('message', (job: SynthesizeJob | DigestJob) => {
    try {
      const buf = Buffer.from(job.buf);
      let checksum: string | undefined;
      if (job.op === 'synthesize') {
        const r = job.recipe;
        if ('pattern' in r) writePatternBlock(r.pattern, job.index, buf);
        else writeRandomBlock(keyOf(r.randomKey), job.index, buf);
        if (job.hash) checksum = hash('sha256', buf.subarray(0, BLOCK_SIZE), 'base64');
      } else {
        checksum = hash('sha256', buf.subarray(0, job.length), 'base64');
      }
      const answer: BlockAnswer = { buf: job.buf, checksum };
      port.postMessage(answer, [job.buf]);
    } catch (err) {
      port.postMessage({ error: (err as Error).message });
    }
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === BLOCK_WORKER_ROLE) runWorker();
