import type { Encoder } from './encode';

/**
 * Large output buffers (frames, decompressed chunks) used again once what was made in them has
 * been written, instead of left to the garbage collector: V8 frees external memory only after
 * some 64 MiB more of it was allocated, so 32 MiB buffers left behind would hold that much
 * more memory. A buffer is lent with the number of views of it that go out; it comes back when
 * every one of them has passed through returned().
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly lent = new Map<ArrayBuffer, number>();

  constructor(
    readonly size: number,
    private readonly keep: number,
  ) {}

  /** A buffer of `size` bytes to fill, when one is free; undefined asks for a new one. */
  take(): Buffer | undefined {
    return this.free.pop();
  }

  /**
   * For a read of `bytes` into a buffer of the pool (a free one, or a new one), when they fill
   * at least a quarter of it; undefined otherwise (a small read in a pool buffer would hold up
   * to four times its memory, a larger one does not fit).
   */
  readonly takeFor = (bytes: number): Buffer | undefined => {
    if (bytes > this.size || bytes < this.size / 4) return undefined;
    return this.take() ?? Buffer.allocUnsafeSlow(this.size);
  };

  /**
   * Gives `out`'s buffers to be written. The stage resumes this generator only once stdout took
   * them (a pool buffer is larger than a pipe's high-water mark, so a write of one waits for the
   * stream to drain): the pool's buffers among them are free again.
   */
  *written(out: Encoder): Generator<Buffer[]> {
    const taken = out.take();
    yield taken;
    this.returned(taken);
  }

  /** `views` views of this pool-sized buffer go out: it comes back once they all returned. */
  lend(buf: Buffer, views: number): void {
    const ab = buf.buffer;
    if (!(ab instanceof ArrayBuffer) || ab.byteLength !== this.size) return;
    if (views > 0) this.lent.set(ab, views);
    else this.keepFree(ab);
  }

  /** Buffers that were written out (`yield`ed and resumed after): those of the pool come back. */
  returned(written: Buffer[]): void {
    if (!this.lent.size) return;
    for (const b of written) {
      const ab = b.buffer as ArrayBuffer;
      const left = this.lent.get(ab);
      if (left === undefined) continue;
      if (left > 1) {
        this.lent.set(ab, left - 1);
      } else {
        this.lent.delete(ab);
        this.keepFree(ab);
      }
    }
  }

  private keepFree(ab: ArrayBuffer): void {
    if (this.free.length < this.keep) this.free.push(Buffer.from(ab));
  }
}
