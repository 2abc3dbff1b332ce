// An object written into a directory in pieces: every piece goes to its place in one temporary
// file, which is flushed and renamed into place (with its sidecar) only on commit, after the
// caller's SHA-256 of the whole object was checked. Aborted, the file is removed.
import { promises as fsp } from 'node:fs';
import { IntegrityError } from './errors';
import type { PieceWrite, PutOptions, PutResult } from './store';
import { etagOf } from './store-local-sidecar';
import { FlushBehind } from './flush-behind';
import { writeAll } from './write-all';

export interface OpenedTemp {
  temp: string;
  handle: fsp.FileHandle;
}

export interface Installer {
  /** Whether closeTemp() flushes (s3-put --no-fsync: no): the file is then flushed as it grows. */
  flushes: boolean;
  /** Flushes and closes the temporary file. */
  closeTemp(handle: fsp.FileHandle): Promise<void>;
  /** Renames the flushed temporary file into place as the object, whose SHA-256 is given. */
  install(sha256: string): Promise<void>;
}

export class LocalPieceWrite implements PieceWrite {
  private written = 0;
  private ended = false;
  private readonly flush: FlushBehind | undefined;
  private flushFailure: Error | undefined;

  constructor(
    private readonly root: string,
    private readonly key: string,
    private readonly size: number,
    private readonly pieceSize: number,
    private readonly opts: PutOptions,
    private readonly file: OpenedTemp,
    private readonly installer: Installer,
  ) {
    if (installer.flushes) this.flush = new FlushBehind(file.handle, (err) => (this.flushFailure ??= new Error(`${root}: object ${JSON.stringify(key)}: flushing: ${err.message}; nothing was stored`)));
  }

  async write(index: number, data: Uint8Array): Promise<void> {
    const start = index * this.pieceSize;
    const expected = Math.min(this.pieceSize, this.size - start);
    if (this.ended) throw new Error(`object ${JSON.stringify(this.key)}: piece ${index} written after the write ended`);
    if (!(Number.isSafeInteger(index) && index >= 0 && expected > 0) || data.length !== expected) {
      throw new RangeError(`object ${JSON.stringify(this.key)}: piece ${index} of ${data.length} bytes does not fit ${this.size} bytes in pieces of ${this.pieceSize}`);
    }
    await writeAll(this.file.handle, data, start);
    this.written += data.length;
    this.flush?.wrote(data.length);
  }

  async commit(sha256: string): Promise<PutResult> {
    if (this.written !== this.size) {
      await this.abort();
      throw new Error(`object ${JSON.stringify(this.key)}: ${this.written} of ${this.size} bytes were written; nothing was stored`);
    }
    if (this.opts.sha256 !== undefined && this.opts.sha256 !== sha256) {
      await this.abort();
      throw new IntegrityError(`${this.root}: object ${JSON.stringify(this.key)}: the data's SHA-256 is ${sha256}, expected ${this.opts.sha256}; nothing was stored`);
    }
    this.ended = true;
    try {
      await this.flush?.idle();
      if (this.flushFailure) throw this.flushFailure;
      await this.installer.closeTemp(this.file.handle);
    } catch (err) {
      await this.file.handle.close().catch(() => {});
      await fsp.unlink(this.file.temp).catch(() => {});
      throw err;
    }
    await this.installer.install(sha256);
    return { etag: etagOf(sha256), sha256 };
  }

  async abort(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.flush?.idle();
    await this.file.handle.close().catch(() => {});
    await fsp.unlink(this.file.temp).catch(() => {});
  }
}
