import { randomBytes } from 'node:crypto';
import { constants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { command, EXIT_STATUS_TEXT, intFlag, type Context } from '../core/command';
import { deviceSize } from '../core/device';
import { sha256b64 } from '../core/digest';
import { errorCode, IntegrityError, InvalidInputError, SluiceError, UsageError } from '../core/errors';
import { BLOCK_SIZE, isBlock, isVolume, LINE, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type Rec, type VolumeRec } from '../core/records';
import { badRecord, sink, type Batches } from '../core/stage';

const USAGE = `Usage: file-write [options] PATH...

Writes a block stream (a "volume" header and "block" records with their data, as file-blocks
and zstd-unchunk produce) to one or more files or block devices, each block at byte offset
index x 524288. Every PATH receives the same data; they are written in parallel.

A new file is written under a temporary name in its directory (.NAME.sluice-XXXXXXXX), sized
to the volume's size (a last partial block is cut back to it), flushed to disk, and renamed to
PATH only after the input's end trailer has been read and checked. If the input stops early,
is not a valid stream, fails a checksum, or the command is interrupted, the temporary file is
removed and PATH is left as it was. Zero blocks and absent blocks are not written: the new
file is sparse there. An existing PATH is refused unless --force is given.

The data of every block is checked before it is written: it must be 524288 bytes long and its
SHA-256 must match the record's "sha256". A block without data must be marked "zero": true
(a manifest cannot be written: attach the data first).

With --in-place, blocks go straight into an existing file or block device, as when applying a
delta: "zero" blocks are written as zeros, absent blocks are left as they are. A file smaller
than the volume is extended to the volume's size; a larger one keeps its size and the data
past the volume's end, unless --truncate is given. A block device is always written in place
and must be at least as large as the volume. In-place writes cannot be undone: an input that
stops early leaves the blocks written so far in place (exit 3); run the same pipeline again.
To put a whole volume onto a used device or file, give --zero-absent: blocks the stream does
not list (the holes of a sparse file, the unwritten blocks of a snapshot) are then written as
zeros too. Without it, a note on stderr counts the absent blocks left as they were, unless the
header names a "parent" (a delta, where absent means unchanged).

Writes are positional and run concurrently, a few per PATH; memory stays a few MiB whatever
the size of the volume. Nothing is printed on stdout.

Options:
  --in-place     write into existing files or block devices (see above)
  --truncate     with --in-place: cut a file larger than the volume down to the volume's size
  --zero-absent  in place: write zeros where the stream lists no block (a full restore)
  -f, --force    replace an existing file (the new one is renamed over it at the end)
  -j, --jobs N   writes in flight per PATH, 1 to 64 (default 4)
  -h, --help     show this text

Examples:
  file-blocks disk.img | file-write copy.img
  file-blocks /dev/nvme1n1 | file-write copy-1.img copy-2.img
  s3-list /backups/vol-1 | s3-get | zstd-unchunk | file-write restored.img
  s3-list /backups/vol-1 | s3-get | zstd-unchunk | file-write --zero-absent /dev/nvme2n1

${EXIT_STATUS_TEXT}
`;

const ZEROS = Buffer.alloc(BLOCK_SIZE);

export const main = command({
  name: 'file-write',
  usage: USAGE,
  flags: { string: ['jobs'], boolean: ['in-place', 'truncate', 'force', 'zero-absent'], alias: { f: 'force', j: 'jobs' } },
  positionals: { min: 1, max: Infinity },
  async run(args, ctx) {
    const opts: Options = {
      inPlace: Boolean(args['in-place']),
      truncate: Boolean(args.truncate),
      force: Boolean(args.force),
      zeroAbsent: Boolean(args['zero-absent']),
      jobs: intFlag(args, 'jobs', 4, 1, 64),
    };
    if (opts.truncate && !opts.inPlace) throw new UsageError('--truncate goes with --in-place');
    if (opts.force && opts.inPlace) throw new UsageError('--force replaces a file, --in-place writes into it: give one of them');
    for (const p of args._) if (p === '-' || p === '') throw new UsageError(`${JSON.stringify(p)} is not a file name: file-write writes to files and devices`);
    const targets: Target[] = [];
    try {
      for (const p of args._) targets.push(await openTarget(p, opts, targets));
      const volume = new VolumeWriter(ctx, targets, opts);
      await sink(ctx, {}, (batches) => volume.consume(batches));
      await volume.finish();
    } catch (err) {
      await Promise.all(targets.map((t) => t.discard()));
      throw err;
    }
  },
});

interface Options {
  inPlace: boolean;
  truncate: boolean;
  force: boolean;
  zeroAbsent: boolean;
  jobs: number;
}

/** One PATH: a new file (written to a temporary name), an existing file, or a block device. */
class Target {
  private readonly inflight = new Set<Promise<void>>();
  private error: Error | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    readonly kind: 'new' | 'in-place' | 'device',
    private readonly handle: fsp.FileHandle,
    /** The size before writing (in place), or the device's size. */
    readonly oldSize: number,
    readonly truncate: boolean,
    readonly temp?: string,
  ) {}

  /** Waits until fewer than `jobs` writes are in flight. */
  async ready(jobs: number): Promise<void> {
    while (this.inflight.size >= jobs && !this.error) await Promise.race(this.inflight);
    if (this.error) throw this.error;
  }

  write(data: Buffer, position: number, index: number): void {
    const done: Promise<void> = writeAll(this.handle, data, position)
      .catch((err) => {
        this.error ??= new SluiceError(`${this.path}: writing block ${index}: ${(err as Error).message}`);
      })
      .finally(() => this.inflight.delete(done));
    this.inflight.add(done);
  }

  async drain(): Promise<void> {
    while (this.inflight.size) await Promise.all(this.inflight);
    if (this.error) throw this.error;
  }

  /** Sizes, flushes and closes the target; a new file is then renamed into place. */
  async commit(size: number): Promise<void> {
    await this.drain();
    if (this.kind === 'new') await this.handle.truncate(size);
    if (this.kind === 'in-place') {
      await this.handle.truncate(this.truncate ? size : Math.max(size, this.oldSize));
    }
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
    await Promise.allSettled([...this.inflight]);
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => {});
    }
    if (this.temp) await fsp.unlink(this.temp).catch(() => {});
  }

  async resize(size: number): Promise<void> {
    await this.handle.truncate(size);
  }
}

async function openTarget(file: string, opts: Options, earlier: Target[]): Promise<Target> {
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
    return new Target(file, 'device', await open(constants.O_WRONLY), await deviceSize(file, stat.rdev), false);
  }
  if (stat && !stat.isFile()) throw new SluiceError(`${file} is not a regular file or a block device`);
  if (opts.inPlace) {
    if (!stat) throw new SluiceError(`${file} does not exist (--in-place writes into an existing file)`);
    return new Target(file, 'in-place', await open(constants.O_WRONLY), stat.size, opts.truncate);
  }
  if (stat && !opts.force) throw new SluiceError(`${file} exists: give --force to replace it, or --in-place to write into it`);
  const base = path.basename(file).slice(0, 200);
  const temp = path.join(path.dirname(file), `.${base}.sluice-${randomBytes(4).toString('hex')}`);
  const handle = await fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666).catch((err) => {
    throw new SluiceError(`cannot create a file beside ${file}: ${(err as Error).message}`);
  });
  return new Target(file, 'new', handle, 0, false, temp);
}

/** Feeds the blocks of one stream to every target, checking them on the way. */
class VolumeWriter {
  private header: VolumeRec | undefined;
  private size: number | undefined;
  private lastIndex = -1;
  private listed = 0;
  // While the size is unknown (a stream read from stdin), the latest block waits: only once the
  // size is known can a last partial block be cut to it, so no byte past the volume is written.
  private held: { index: number; data: Buffer | null } | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly targets: Target[],
    private readonly opts: Options,
  ) {}

  async consume(batches: Batches): Promise<void> {
    for await (const batch of batches) {
      for (const rec of batch) {
        if (isVolume(rec)) await this.volume(rec);
        else if (isBlock(rec)) await this.block(rec);
        else if (rec.type === 'object') throw badRecord(this.ctx, rec, 'expected block records, got an object record (decompress chunks with zstd-unchunk first)');
        // Other record types are not for this sink.
      }
    }
  }

  async finish(): Promise<void> {
    if (!this.header) throw new InvalidInputError(`${this.ctx.command}: ${this.ctx.input}: no "volume" record: the input is not a block stream`);
    if (this.size === undefined) throw new InvalidInputError(`${this.ctx.command}: ${this.ctx.input}: the stream never gave the volume's size`);
    const blocks = blocksIn(this.size);
    await this.fillAbsent(this.lastIndex + 1, blocks);
    await Promise.all(this.targets.map((t) => t.drain()));
    const absent = blocks - this.listed;
    if (absent && !this.opts.zeroAbsent && this.header.parent === undefined) {
      for (const t of this.targets) {
        if (t.kind !== 'new') this.ctx.log(`${t.path}: ${absent} absent block${absent === 1 ? '' : 's'} left as they were (give --zero-absent to write zeros there)`);
      }
    }
    // A signal during the final flush must still stop the commit.
    if (this.ctx.signal.aborted) throw this.ctx.signal.reason;
    for (const t of this.targets) await t.commit(this.size);
  }

  private async volume(rec: VolumeRec): Promise<void> {
    if (rec.blockSize !== BLOCK_SIZE) throw badRecord(this.ctx, rec, `blockSize ${JSON.stringify(rec.blockSize)} is not ${BLOCK_SIZE}`);
    if (rec.size !== undefined && !(Number.isSafeInteger(rec.size) && rec.size >= 0)) {
      throw badRecord(this.ctx, rec, `"size" must be a non-negative integer, got ${JSON.stringify(rec.size)}`);
    }
    this.header ??= rec;
    if (rec.size === undefined) return;
    if (this.size !== undefined) {
      if (rec.size !== this.size) throw badRecord(this.ctx, rec, `volume size ${rec.size} differs from the size ${this.size} given before`);
      return;
    }
    this.size = rec.size;
    if (this.lastIndex >= blocksIn(this.size)) {
      throw badRecord(this.ctx, rec, `volume size ${this.size} leaves out block ${this.lastIndex}, which was already given`);
    }
    for (const t of this.targets) {
      if (t.kind === 'device' && this.size > t.oldSize) {
        throw new SluiceError(`${t.path}: the device holds ${t.oldSize} bytes, the volume ${this.size}: it does not fit`);
      }
      // Sized at once, a new file takes its blocks into its holes.
      if (t.kind === 'new') await t.resize(this.size);
    }
    if (this.held) {
      const held = this.held;
      this.held = undefined;
      await this.put(held.index, held.data);
    }
  }

  private async block(rec: BlockRec): Promise<void> {
    if (!this.header) throw badRecord(this.ctx, rec, 'a block record before the "volume" header');
    const index = rec.index;
    if (!Number.isSafeInteger(index) || index < 0) throw badRecord(this.ctx, rec, `"index" must be a non-negative integer, got ${JSON.stringify(index)}`);
    if (index <= this.lastIndex) throw badRecord(this.ctx, rec, `block ${index} follows block ${this.lastIndex}: blocks must come in ascending order, each once`);
    if (this.size !== undefined && index >= blocksIn(this.size)) {
      throw badRecord(this.ctx, rec, `block ${index} lies past the volume's size of ${this.size} bytes`);
    }
    const data = this.verified(rec);
    const held = this.held;
    this.held = undefined;
    if (held) await this.put(held.index, held.data, BLOCK_SIZE);
    await this.fillAbsent(this.lastIndex + 1, index);
    this.lastIndex = index;
    this.listed++;
    if (this.size !== undefined) return this.put(index, data);
    this.held = { index, data };
  }

  /** The block's data once checked, or null for a zero block. */
  private verified(rec: BlockRec): Buffer | null {
    const data = rec[PAYLOAD];
    if (!data) {
      if (rec.zero !== true) throw badRecord(this.ctx, rec, `block ${rec.index} has no data and is not marked "zero": true`);
      if (rec.sha256 !== undefined && rec.sha256 !== ZERO_BLOCK_SHA256) {
        throw this.integrity(rec, `marked zero, but its sha256 ${JSON.stringify(rec.sha256)} is not that of a zero block`);
      }
      return null;
    }
    if (data.length !== BLOCK_SIZE) throw this.integrity(rec, `${data.length} bytes of data, expected ${BLOCK_SIZE}`);
    if (typeof rec.sha256 !== 'string') throw badRecord(this.ctx, rec, `block ${rec.index} has data but no "sha256" to check it against`);
    const actual = sha256b64(data);
    if (actual !== rec.sha256) throw this.integrity(rec, `SHA-256 of the data is ${actual}, the record says ${rec.sha256}`);
    return actual === ZERO_BLOCK_SHA256 ? null : data;
  }

  /** With --zero-absent, writes zeros over the blocks from `first` up to `end` in place. */
  private async fillAbsent(first: number, end: number): Promise<void> {
    if (!this.opts.zeroAbsent || this.targets.every((t) => t.kind === 'new')) return;
    for (let index = first; index < end; index++) await this.put(index, null, this.size === undefined ? BLOCK_SIZE : this.lengthOf(index));
  }

  /** Starts the block's write on every target, once each has room for one more. */
  private async put(index: number, data: Buffer | null, length = this.lengthOf(index)): Promise<void> {
    for (const t of this.targets) await t.ready(this.opts.jobs);
    // The command may have been stopped while waiting: nothing new may start then.
    if (this.ctx.signal.aborted) throw this.ctx.signal.reason;
    const position = index * BLOCK_SIZE;
    for (const t of this.targets) {
      if (t.kind === 'device' && position + length > t.oldSize) {
        throw new SluiceError(`${t.path}: block ${index} lies past the end of the device (${t.oldSize} bytes)`);
      }
    }
    for (const t of this.targets) {
      // A new file reads as zeros where nothing is written; a file written in place must not
      // keep its old data where the volume has zeros.
      if (data) t.write(data.subarray(0, length), position, index);
      else if (t.kind !== 'new') t.write(ZEROS.subarray(0, length), position, index);
    }
  }

  private lengthOf(index: number): number {
    return Math.min(BLOCK_SIZE, this.size! - index * BLOCK_SIZE);
  }

  private integrity(rec: Rec, what: string): IntegrityError {
    return new IntegrityError(`${this.ctx.command}: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}: block ${String(rec.index)}: ${what}`);
  }
}

function blocksIn(size: number): number {
  return Math.ceil(size / BLOCK_SIZE);
}

async function writeAll(handle: fsp.FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Makes a rename durable: the directory entry is flushed too. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
