// SHA-256 of objects whose bytes arrive in pieces (object-pieces.ts), on one thread of their own:
// the running hash of each object lives there, the pieces move to it and back in the order they
// are added (one thread, one queue: that order is kept), and the main thread, which reads the
// sockets, does not spend about 0.7 s per GiB on them.
import path from 'node:path';
import { movable } from './sha-pool';
import { WORKER_ROLE } from './sha-worker';
import { WorkerPool } from './worker-pool';

export class SerialSha {
  private readonly thread = new WorkerPool({ script: path.join(__dirname, 'sha-worker.js'), workerData: { role: WORKER_ROLE }, threads: 1, name: 'sha256 (pieces)' });
  private streams = 0;

  /** A new running hash: its id. */
  open(): number {
    return this.streams++;
  }

  /** Adds `data` to the running hash `id`; gives the same bytes back (moved there and back when they can move, copied otherwise). */
  async update(id: number, data: Buffer): Promise<Buffer> {
    const length = data.length;
    if (!movable(data, false)) {
      // A view of a larger buffer: a copy of its bytes goes instead.
      const copy = data.buffer.slice(data.byteOffset, data.byteOffset + length) as ArrayBuffer;
      await this.thread.run({ stream: id, data: copy, length }, [copy]);
      return data;
    }
    const ab = data.buffer as ArrayBuffer;
    const r = await this.thread.run<{ data: ArrayBuffer }>({ stream: id, data: ab, length }, [ab]);
    return Buffer.from(r.data, 0, length);
  }

  /** The digest (base64) of everything added to `id`, which ends it. */
  async digest(id: number): Promise<string> {
    return (await this.thread.run<{ digest: string }>({ stream: id, end: true })).digest;
  }

  close(): Promise<void> {
    return this.thread.close();
  }
}
