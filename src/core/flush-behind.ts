// Flushing a file being written in the background, a few tens of MiB at a time.
import type * as fsp from 'node:fs/promises';

/**
 * Written bytes are flushed every this many, so the flush at commit has only the last few to
 * write: the kernel would otherwise keep up to a tenth of memory dirty before writing any of it
 * back, and the commit would then wait for all of it (a 2 GiB volume: 3.7 s after its last
 * block, on a disk that writes 555 MB/s).
 */
export const FLUSH_EVERY = 64 << 20;

export class FlushBehind {
  private unflushed = 0;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly handle: fsp.FileHandle,
    /** Told of a flush that failed (the file cannot be trusted to be on disk). */
    private readonly failed: (err: Error) => void,
  ) {}

  /** Counts bytes written to the file; past FLUSH_EVERY, starts a flush unless one runs. */
  wrote(bytes: number): void {
    this.unflushed += bytes;
    if (this.unflushed < FLUSH_EVERY || this.flushing) return;
    this.unflushed = 0;
    this.flushing = this.handle
      .datasync()
      .catch((err: Error) => this.failed(err))
      .finally(() => (this.flushing = undefined));
  }

  /** Settles once no flush runs (never rejects: failures went to `failed`). */
  async idle(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}
