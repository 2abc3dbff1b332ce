// SHA-256 of large buffers on worker threads, so that a command moving hundreds of MiB/s keeps
// its event loop for I/O. A buffer in shared memory (a SharedArrayBuffer: payload-pool.ts) is
// read by the thread where it is. Any other moves to a thread and back (no copy); it must own
// its ArrayBuffer (Buffer.allocUnsafeSlow makes such buffers), or, when the caller says so
// (`sole`), be the only view in use of an ArrayBuffer it starts (a reused buffer partly filled).
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { sha256b64 } from './digest';
import { WORKER_ROLE } from './sha-worker';
import { WorkerPool } from './worker-pool';

export interface Hashed {
  /** The same bytes, in the buffer that came back from the thread. */
  data: Buffer;
  /** base64 SHA-256. */
  sha256: string;
}

/** Which digest of the bytes to make: SHA-256 (base64), or MD5 (hex: an S3 ETag's form). */
export type Digest = 'sha256' | 'md5';

export class ShaPool {
  private readonly pool: WorkerPool;

  constructor(threads = defaultThreads()) {
    this.pool = new WorkerPool({ script: path.join(__dirname, 'sha-worker.js'), workerData: { role: WORKER_ROLE }, threads, name: 'sha256' });
  }

  /** Hashes `data`, which is detached here until the result hands it back. */
  async hash(data: Buffer): Promise<Hashed> {
    const r = await this.digest(data, 'sha256');
    return { data: r.data, sha256: r.digest };
  }

  /**
   * The `kind` digest of `data`, which is detached here until the result hands it back. With
   * `sole`, `data` may be shorter than its ArrayBuffer, which all moves (see movable()).
   */
  async digest(data: Buffer, kind: Digest, sole = false): Promise<{ data: Buffer; digest: string }> {
    if (data.buffer instanceof SharedArrayBuffer) {
      // Nothing moves: the thread reads the bytes where they are, and `data` stays usable (the
      // caller does not change it meanwhile).
      const r = await this.pool.run<{ digest: string }>({ shared: data.buffer, offset: data.byteOffset, length: data.length, kind });
      return { data, digest: r.digest };
    }
    if (!movable(data, sole)) {
      throw new Error('a buffer hashed on a thread must own its ArrayBuffer (make it with Buffer.allocUnsafeSlow)');
    }
    const ab = data.buffer as ArrayBuffer;
    // Read before the transfer detaches it.
    const length = data.length;
    const r = await this.pool.run<{ data: ArrayBuffer; digest: string }>({ data: ab, length, kind }, [ab]);
    return { data: Buffer.from(r.data, 0, length), digest: r.digest };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

// A thread hashes about 1.2 GB/s with SHA-NI: two cover what one EBS snapshot can serve.
function defaultThreads(): number {
  return Math.max(1, Math.min(2, availableParallelism() - 1));
}

// Smaller buffers are hashed at once: moving them to a thread costs more than it saves.
export const THREAD_HASH_BYTES = 1 << 20;

/**
 * Whether `data` can go to a thread: it is in shared memory (it stays where it is), it owns its
 * ArrayBuffer, or, with `sole` (the caller
 * vouches that no other view of that ArrayBuffer is in use), starts it. Never assumed: a view at
 * offset 0 of a larger buffer (a decoded input chunk, Node's pool of small buffers) would take
 * the bytes of other views with it.
 */
export function movable(data: Buffer, sole: boolean): boolean {
  const ab = data.buffer;
  if (ab instanceof SharedArrayBuffer) return true;
  return ab instanceof ArrayBuffer && data.byteOffset === 0 && (data.length === ab.byteLength || (sole && data.length <= ab.byteLength));
}

/**
 * The `kind` digest of `data`: on `pool`'s threads when there is a pool and the buffer is large
 * and can move (it is detached meanwhile, and the bytes come back in `data`), on this thread
 * otherwise. `sole` as for ShaPool.digest(). Use the `data` it gives, never the buffer passed in.
 */
export async function digestOf(data: Buffer, kind: Digest, pool: ShaPool | undefined, sole = false): Promise<{ data: Buffer; digest: string }> {
  if (pool && data.length >= THREAD_HASH_BYTES && movable(data, sole)) return pool.digest(data, kind, sole);
  return { data, digest: kind === 'sha256' ? sha256b64(data) : createHash('md5').update(data).digest('hex') };
}
