// The body of a hashing thread (see sha-pool.ts): SHA-256 of the buffer it is given, which it
// hands back with the digest.
import { hash } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/** Marks the threads the pool starts, so that loading this module elsewhere runs nothing. */
export const WORKER_ROLE = 'sluice-sha-worker';

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) {
  const port = parentPort!;
  port.on('message', (msg: { data: ArrayBuffer; length: number }) => {
    try {
      const sha256 = hash('sha256', new Uint8Array(msg.data, 0, msg.length), 'base64');
      port.postMessage({ data: msg.data, sha256 }, [msg.data]);
    } catch (err) {
      port.postMessage({ error: (err as Error).message });
    }
  });
}
