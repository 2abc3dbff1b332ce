// A block stream laid out on file targets: each block checked (length, SHA-256) and written at
// index x 524288 on every target, a new file sized to the volume, absent blocks zeroed on
// request, and nothing committed until the caller calls finish() after a valid trailer.
import type { Context } from './command';
import { sha256b64 } from './digest';
import { IntegrityError, InvalidInputError, SluiceError } from './errors';
import type { FileTarget } from './file-target';
import { BLOCK_SIZE, isBlock, isVolume, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type Rec, type VolumeRec } from './records';
import { badRecord, integrityError, type Batches } from './stage';

export interface VolumeWriterOptions {
  /** In place: write zeros where the stream lists no block (a full restore). */
  zeroAbsent: boolean;
  /** Writes in flight per target. */
  jobs: number;
}

const ZEROS = Buffer.alloc(BLOCK_SIZE);

export class VolumeWriter {
  private header: VolumeRec | undefined;
  private size: number | undefined;
  private lastIndex = -1;
  private listed = 0;
  // While the size is unknown (a stream read from stdin), the latest block waits: only once the
  // size is known can a last partial block be cut to it, so no byte past the volume is written.
  private held: { index: number; data: Buffer | null } | undefined;

  constructor(
    private readonly ctx: Context,
    private readonly targets: FileTarget[],
    private readonly opts: VolumeWriterOptions,
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

  /** Once the input's trailer has been checked: writes what is left and commits every target. */
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

  /** With zeroAbsent, writes zeros over the blocks from `first` up to `end` in place. */
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
      if (data) t.write(data.subarray(0, length), position, `block ${index}`);
      else if (t.kind !== 'new') t.write(ZEROS.subarray(0, length), position, `block ${index}`);
    }
  }

  private lengthOf(index: number): number {
    return Math.min(BLOCK_SIZE, this.size! - index * BLOCK_SIZE);
  }

  private integrity(rec: Rec, what: string): IntegrityError {
    return integrityError(this.ctx, rec, `block ${String(rec.index)}: ${what}`);
  }
}

function blocksIn(size: number): number {
  return Math.ceil(size / BLOCK_SIZE);
}
