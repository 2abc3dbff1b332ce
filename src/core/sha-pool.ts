// SHA-256 of large buffers on worker threads, so that a command moving hundreds of MiB/s keeps
// its event loop for I/O. A buffer moves to a thread and back (no copy); it must own its
// ArrayBuffer (Buffer.allocUnsafeSlow makes such buffers).
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

  /** The `kind` digest of `data`, which is detached here until the result hands it back. */
  async digest(data: Buffer, kind: Digest): Promise<{ data: Buffer; digest: string }> {
    const ab = data.buffer;
    if (!(ab instanceof ArrayBuffer) || data.byteOffset !== 0 || data.length !== ab.byteLength) {
      throw new Error('a buffer hashed on a thread must own its ArrayBuffer (make it with Buffer.allocUnsafeSlow)');
    }
    const r = await this.pool.run<{ data: ArrayBuffer; digest: string }>({ data: ab, length: data.length, kind }, [ab]);
    return { data: Buffer.from(r.data), digest: r.digest };
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
 * The `kind` digest of `data`: on `pool`'s threads when there is a pool and the buffer is large
 * and owns its ArrayBuffer (it is detached meanwhile, and the bytes come back in `data`), on
 * this thread otherwise. Use the `data` it gives, never the buffer passed in.
 */
export async function digestOf(data: Buffer, kind: Digest, pool: ShaPool | undefined): Promise<{ data: Buffer; digest: string }> {
  const ab = data.buffer;
  const movable = ab instanceof ArrayBuffer && data.byteOffset === 0 && data.length === ab.byteLength && data.length >= THREAD_HASH_BYTES;
  if (pool && movable) return pool.digest(data, kind);
  return { data, digest: kind === 'sha256' ? sha256b64(data) : createHash('md5').update(data).digest('hex') };
}
