// Where a sink writes bytes at offsets: a new file, built under a temporary name beside its
// final one and renamed into place only on commit; an existing file written in place; or a
// block device. Writes are positional and run a few at a time, so memory stays bounded
// whatever the size of what is written.
import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { deviceSize } from './device';
import { errorCode, SluiceError, UsageError } from './errors';
import { FlushBehind } from './flush-behind';
import { writeAll } from './write-all';

export type TargetKind = 'new' | 'in-place' | 'device';


export interface TargetOptions {
  /** Write into an existing file (a device is always written in place). */
  inPlace: boolean;
  /** In place: on commit, cut a file larger than the committed size down to it. */
  truncate: boolean;
  /** Replace an existing file (the new one is renamed over it on commit). */
  force: boolean;
}

export class FileTarget {
  private readonly inflight = new Set<Promise<void>>();
  private error: Error | undefined;
  private closed = false;
  private readonly flush: FlushBehind;

  constructor(
    readonly path: string,
    readonly kind: TargetKind,
    private readonly handle: fsp.FileHandle,
    /** The size before writing (in place), or the device's size. */
    readonly oldSize: number,
    private readonly truncate: boolean,
    /** A new file's temporary name, renamed to `path` on commit. */
    private readonly temp?: string,
  ) {
    this.flush = new FlushBehind(handle, (err) => (this.error ??= new SluiceError(`${this.path}: flushing: ${err.message}`)));
  }

  /** Waits until fewer than `jobs` writes are in flight; throws the first failed write's error. */
  async ready(jobs: number): Promise<void> {
    while (this.inflight.size >= jobs && !this.error) await Promise.race(this.inflight);
    if (this.error) throw this.error;
  }

  /** Starts writing `data` at `position`; `what` names it in an error ("block 12"). */
  write(data: Buffer, position: number, what: string): void {
    const done: Promise<void> = writeAll(this.handle, data, position)
      .catch((err) => {
        this.error ??= new SluiceError(`${this.path}: writing ${what}: ${(err as Error).message}`);
      })
      .finally(() => this.inflight.delete(done));
    this.inflight.add(done);
    this.flush.wrote(data.length);
  }

  async drain(): Promise<void> {
    while (this.inflight.size) await Promise.all(this.inflight);
    await this.flush.idle();
    if (this.error) throw this.error;
  }

  async resize(size: number): Promise<void> {
    await this.handle.truncate(size);
  }

  /** Sizes, flushes and closes the target; a new file is then renamed into place, durably. */
  async commit(size: number): Promise<void> {
    await this.drain();
    if (this.kind === 'new') await this.handle.truncate(size);
    if (this.kind === 'in-place') await this.handle.truncate(this.truncate ? size : Math.max(size, this.oldSize));
    await this.handle.sync();
    this.closed = true;
    await this.handle.close();
    if (this.temp) {
      await fsp.rename(this.temp, this.path);
      await syncDirectory(path.dirname(this.path));
    }
  }

  /** After a failure: lets the writes in flight end, closes, and removes the temporary file. */
  async discard(): Promise<void> {
    await Promise.allSettled([...this.inflight, this.flush.idle()]);
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => {});
    }
    if (this.temp) await fsp.unlink(this.temp).catch(() => {});
  }
}

/**
 * Opens `file` as a target: a block device in place, an existing file in place with
 * `inPlace`, otherwise a new file under a temporary name (refused if `file` exists, unless
 * `force`). `earlier` are the targets already open, so one path is not given twice.
 */
export async function openFileTarget(file: string, opts: TargetOptions, earlier: FileTarget[] = []): Promise<FileTarget> {
  const resolved = path.resolve(file);
  if (earlier.some((t) => path.resolve(t.path) === resolved)) throw new UsageError(`${file} is given twice`);
  const stat = await fsp.stat(file).catch((err) => {
    if (errorCode(err) === 'ENOENT') return null;
    throw new SluiceError(`${file}: ${(err as Error).message}`);
  });
  const open = (flags: number) =>
    fsp.open(file, flags).catch((err) => {
      throw new SluiceError(`cannot open ${file}: ${(err as Error).message}`);
    });
  if (stat?.isBlockDevice()) {
    return new FileTarget(file, 'device', await open(constants.O_WRONLY), await deviceSize(file, stat.rdev), false);
  }
  if (stat && !stat.isFile()) throw new SluiceError(`${file} is not a regular file or a block device`);
  if (opts.inPlace) {
    if (!stat) throw new SluiceError(`${file} does not exist (--in-place writes into an existing file)`);
    return new FileTarget(file, 'in-place', await open(constants.O_WRONLY), stat.size, opts.truncate);
  }
  if (stat && !opts.force) throw new SluiceError(`${file} exists: give --force to replace it, or --in-place to write into it`);
  const { temp, handle } = await createTempBeside(file);
  return new FileTarget(file, 'new', handle, 0, false, temp);
}

/**
 * A new, empty file in the directory of `file`, named `.NAME.sluice-XXXXXXXX`: on the same
 * file system, so the rename that commits it is atomic.
 */
export async function createTempBeside(file: string): Promise<{ temp: string; handle: fsp.FileHandle }> {
  const base = path.basename(file).slice(0, 200); // room for the suffix within NAME_MAX
  const temp = path.join(path.dirname(file), `.${base}.sluice-${randomBytes(4).toString('hex')}`);
  const handle = await fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666).catch((err) => {
    throw new SluiceError(`cannot create a file beside ${file}: ${(err as Error).message}`);
  });
  return { temp, handle };
}

/** Makes a rename durable: the directory entry is flushed too. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
