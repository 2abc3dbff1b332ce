// The body of a hashing thread (see sha-pool.ts): the SHA-256 (or MD5) of the buffer it is
// given, which it hands back with the digest.
import { hash } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/** Marks the threads the pool starts, so that loading this module elsewhere runs nothing. */
export const WORKER_ROLE = 'sluice-sha-worker';

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) {
  const port = parentPort!;
  port.on('message', (msg: { data: ArrayBuffer; length: number; kind: 'sha256' | 'md5' }) => {
    try {
      const digest = hash(msg.kind, new Uint8Array(msg.data, 0, msg.length), msg.kind === 'md5' ? 'hex' : 'base64');
      port.postMessage({ data: msg.data, digest }, [msg.data]);
    } catch (err) {
      port.postMessage({ error: (err as Error).message });
    }
  });
}
