// The body of a hashing thread (see sha-pool.ts): the SHA-256 (or MD5) of the buffer it is
// given, which it hands back with the digest (or leaves where it is, in shared memory); or the
// running SHA-256 of a stream of buffers.
import { createHash, hash, type Hash } from 'node:crypto';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

/** Marks the threads the pool starts, so that loading this module elsewhere runs nothing. */
export const WORKER_ROLE = 'sluice-sha-worker';

/**
 * One buffer's digest; or, with `stream`, the next bytes of a SHA-256 kept here between
 * messages (serial-sha.ts), and its digest with `end`.
 */
interface Message {
  data?: ArrayBuffer;
  /** Or bytes in shared memory, read where they are: `length` of them from `offset`. */
  shared?: SharedArrayBuffer;
  offset?: number;
  length?: number;
  kind?: 'sha256' | 'md5';
  stream?: number;
  end?: boolean;
}

/** SHA-256 in base64, MD5 in hex (an S3 ETag's form). */
function digestOf(kind: 'sha256' | 'md5', bytes: Uint8Array): string {
  return hash(kind, bytes, kind === 'md5' ? 'hex' : 'base64');
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) {
  const port = parentPort!;
  const streams = new Map<number, Hash>();
  port.on('message', (msg: Message) => {
    try {
      if (msg.shared) {
        port.postMessage({ digest: digestOf(msg.kind!, new Uint8Array(msg.shared, msg.offset, msg.length)) });
        return;
      }
      const bytes = msg.data && new Uint8Array(msg.data, 0, msg.length);
      const transfer = msg.data ? [msg.data] : [];
      if (msg.stream === undefined) {
        port.postMessage({ data: msg.data, digest: digestOf(msg.kind!, bytes!) }, transfer);
        return;
      }
      let running = streams.get(msg.stream);
      if (!running) streams.set(msg.stream, (running = createHash('sha256')));
      if (bytes) running.update(bytes);
      let digest: string | undefined;
      if (msg.end) {
        digest = running.digest('base64');
        streams.delete(msg.stream);
      }
      port.postMessage({ data: msg.data, digest }, transfer);
    } catch (err) {
      port.postMessage({ error: (err as Error).message });
    }
  });
}
