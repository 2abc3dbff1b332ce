// Buffers for the payloads a sink reads from its input (decode.ts), used again once the sink
// is done with them. A fresh 8 MiB buffer per object kept V8 busy: s3-put spent about 2 s of
// CPU per GiB on garbage collection (its marking threads and its main thread), as the buffers
// lived long enough (an upload) to need a full collection to be freed, and each hash on a
// thread made a new ArrayBuffer of the one that came back. These buffers are in shared memory
// (SharedArrayBuffer): a hashing thread reads them where they are (sha-pool.ts), so they stay
// the same buffers from the input to the store and back here.

export class PayloadPool {
  private readonly free: SharedArrayBuffer[] = [];

  constructor(
    /** The size of every buffer; a payload larger, or smaller than a quarter of it, is not pooled. */
    readonly size: number,
    /** Free buffers kept at most (those in use are not counted). */
    private readonly keep: number,
  ) {}

  /** A buffer for a payload of `length` bytes, or undefined when it is not pooled. */
  readonly take = (length: number): Buffer | undefined => {
    if (length > this.size || length < this.size / 4) return undefined;
    return Buffer.from(this.free.pop() ?? new SharedArrayBuffer(this.size), 0, length);
  };

  /**
   * Takes back a payload the command is done with: nothing may read or write it afterwards.
   * Payloads that are not the pool's are left to the garbage collector.
   */
  give(payload: Buffer | undefined): void {
    const sab = payload?.buffer;
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength !== this.size || payload!.byteOffset !== 0) return;
    if (this.free.length < this.keep && !this.free.includes(sab)) this.free.push(sab);
  }
}
