// The mechanics of zstd-chunk: block records gathered into chunks of up to 64 consecutive
// blocks, compressed on worker threads and written out in input order as "object" records
// (named by chunk-records.ts), with the memory they hold bounded.
import type { Context } from './command';
import type { Encoder } from './encode';
import { IntegrityError } from './errors';
import { CHUNK_BLOCKS, startsChunk, type LayoutName } from './layout';
import { OrderedOutput } from './ordered';
import { BLOCK_SIZE, isBlock, isVolume, LINE, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type Rec, type VolumeRec } from './records';
import { BufferPool } from './buffer-pool';
import { ChunkRecords, type Gathering } from './chunk-records';
import type { DoneSet } from './journal';
import { badRecord } from './stage';
import { VolumeHeader } from './volume-header';
import { chunkBuffer, frameBound } from './zstd';
import { ZstdPool, type CompressResult } from './zstd-pool';

const CHUNK_BYTES = CHUNK_BLOCKS * BLOCK_SIZE;
// Far above a pipe's high-water mark (16 KiB): see Chunker.send().
const COPY_FRAMES_BELOW = 1 << 20;

export interface ChunkOptions {
  layout: LayoutName;
  level: number;
  jobs: number;
  snapshotId?: string;
  fullCopy: boolean;
  verify: boolean;
}

export class Chunker {
  readonly pool: ZstdPool;
  private readonly output: OrderedOutput;
  private readonly header = new VolumeHeader();
  private readonly records: ChunkRecords;
  private readonly free: Buffer[] = [];
  private buffers = 0;
  private current: Gathering | undefined;
  private last: number | undefined; // last listed block taken into a chunk
  private lastIndex = -1;
  private readonly zeroChunks = new Map<number, Promise<CompressResult>>();
  private readonly frames: BufferPool;

  constructor(
    private readonly ctx: Context,
    private readonly opts: ChunkOptions,
  ) {
    this.records = new ChunkRecords(ctx, opts, this.header);
    this.pool = new ZstdPool(opts.jobs);
    // Chunks finish out of order (a random chunk compresses ten times faster than a text one):
    // room for finished chunks behind a slow one keeps the other workers busy; their frames
    // are what bounds it, one chunk's worth beyond the jobs.
    this.output = new OrderedOutput(2 * opts.jobs + 2, (opts.jobs + 1) * CHUNK_BYTES);
    this.frames = new BufferPool(frameBound(CHUNK_BYTES), opts.jobs + 2);
  }

  async *run(batches: AsyncIterable<Rec[]>, out: Encoder): AsyncGenerator<Buffer[]> {
    for await (const batch of batches) {
      for (const rec of batch) {
        if (isBlock(rec)) {
          await this.block(rec, out);
        } else {
          if (isVolume(rec)) this.volume(rec);
          this.output.records(rec);
        }
      }
      await this.output.flush(out);
      yield* this.send(out);
    }
    this.close();
    await this.output.flush(out, true);
    if (this.opts.layout === 'default') out.push(this.records.volumeObject());
    yield* this.send(out);
  }

  /**
   * Hands out what is ready. The stage resumes this generator only once its consumer has
   * written what was yielded (a write larger than the stream's high-water mark waits for the
   * stream to drain; a file is written synchronously), so frame buffers are free again then.
   */
  private *send(out: Encoder): Generator<Buffer[]> {
    const taken = out.take();
    yield taken;
    this.frames.returned(taken);
  }

  /** The frame to write; small ones are copied out and their buffer kept at once (see send()). */
  private lendFrame(frame: Buffer): Buffer {
    if (frame.length >= COPY_FRAMES_BELOW) {
      this.frames.lend(frame, 1);
      return frame;
    }
    const copy = Buffer.from(frame);
    this.frames.lend(frame, 0);
    return copy;
  }
  /** Counts the chunks an earlier run stored (its journal) into volume.json's totals. */
  countStored(done: DoneSet): void {
    this.records.countStored(done);
  }

  private volume(rec: Rec): void {
    if (rec.blockSize !== BLOCK_SIZE) throw badRecord(this.ctx, rec, `blockSize ${JSON.stringify(rec.blockSize)} is not ${BLOCK_SIZE}`);
    if (this.header.take(rec as VolumeRec) && this.header.volumes > 1) {
      throw badRecord(this.ctx, rec, 'a second volume in one stream: zstd-chunk takes one volume at a time');
    }
  }

  private async block(rec: BlockRec, out: Encoder): Promise<void> {
    if (!this.header.current) throw badRecord(this.ctx, rec, 'a block record before the "volume" header');
    const index = rec.index;
    if (!Number.isSafeInteger(index) || index < 0) throw badRecord(this.ctx, rec, `"index" must be a non-negative integer, got ${JSON.stringify(index)}`);
    if (index <= this.lastIndex) throw badRecord(this.ctx, rec, `block ${index} follows block ${this.lastIndex}: blocks must come in ascending order, each once`);
    const total = this.header.totalBlocks;
    if (total !== undefined && index >= total) throw badRecord(this.ctx, rec, `block ${index} lies past the volume's ${total} blocks`);
    this.lastIndex = index;
    const data = rec[PAYLOAD];
    let zero = false;
    if (!data) {
      if (rec.zero !== true) throw badRecord(this.ctx, rec, `block ${index} has no data and is not marked "zero": true`);
      if (rec.sha256 !== undefined && rec.sha256 !== ZERO_BLOCK_SHA256) {
        throw new IntegrityError(`${this.where(rec)}: block ${index} is marked zero, but its sha256 ${JSON.stringify(rec.sha256)} is not that of a zero block`);
      }
      zero = true;
    } else if (data.length !== BLOCK_SIZE) {
      throw new IntegrityError(`${this.where(rec)}: block ${index} has ${data.length} bytes of data, expected ${BLOCK_SIZE}`);
    }
    const sha = typeof rec.sha256 === 'string' ? rec.sha256 : null;
    // FSP leaves zero blocks out as gaps, recognising them by their checksum as it does.
    if (this.opts.layout === 'fsp' && !this.opts.fullCopy && (zero || sha === ZERO_BLOCK_SHA256)) return;

    if (this.current && startsChunk(index, this.last)) this.close();
    this.last = index;
    if (!this.current) {
      while (this.output.full) await this.output.flush(out);
      this.current = { first: index, raw: await this.buffer(out), zero: [], claims: [], lines: [], zeros: 0 };
    }
    const c = this.current;
    const at = (index - c.first) * BLOCK_SIZE;
    if (data) data.copy(c.raw, at);
    c.zero.push(!data); // its zeros are written at close(), if the chunk is compressed at all

    c.claims.push(sha);
    c.lines.push(rec[LINE] ?? 0);
    if (zero) c.zeros++;
  }

  /** A chunk buffer from the free list, waiting for one to come back when all are in use. */
  private async buffer(out: Encoder): Promise<Buffer> {
    for (;;) {
      const buf = this.free.pop();
      if (buf) return buf;
      // One buffer per worker, and one being filled.
      if (this.buffers < this.opts.jobs + 1) {
        this.buffers++;
        return chunkBuffer(CHUNK_BYTES);
      }
      // Every buffer is in a job: the oldest job gives its buffer back when it is done.
      if (!(await this.output.one(out))) throw new Error('no chunk buffer is free and no job is running');
    }
  }

  private close(): void {
    const c = this.current;
    if (!c) return;
    this.current = undefined;
    const count = c.zero.length;
    let result: Promise<CompressResult>;
    if (c.zeros === count) {
      // All zeros: the frame depends only on the length, so it is made once per length.
      this.free.push(c.raw);
      result = this.zeroChunk(count);
    } else {
      c.zero.forEach((zero, i) => zero && c.raw.fill(0, i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE));
      const request = { raw: c.raw, length: count * BLOCK_SIZE, level: this.opts.level, zero: c.zero, claims: c.claims, verify: this.opts.verify, rawSha256: this.opts.layout === 'fsp', into: this.frames.take() };
      result = this.pool.compress(request).then((r) => {
        this.free.push(r.raw);
        return { ...r, frame: this.lendFrame(r.frame) };
      });
    }
    // A chunk of zeros holds no buffer: its frame is the cached one.
    this.output.job(
      result.then((r) => [this.records.chunkRecord(c, count, r)]),
      c.zeros === count ? 0 : count * BLOCK_SIZE,
    );
  }

  private zeroChunk(count: number): Promise<CompressResult> {
    let cached = this.zeroChunks.get(count);
    if (!cached) {
      const raw = chunkBuffer(count * BLOCK_SIZE);
      const zero = new Array<boolean>(count).fill(true);
      const claims = new Array<null>(count).fill(null);
      cached = this.pool
        .compress({ raw, length: raw.length, level: this.opts.level, zero, claims, verify: false, rawSha256: this.opts.layout === 'fsp' })
        // The zeros are not needed again; the frame, written for every such chunk, gets a buffer
        // of its own size.
        .then((r) => ({ ...r, raw: Buffer.alloc(0), frame: Buffer.from(r.frame) }));
      this.zeroChunks.set(count, cached);
    }
    return cached;
  }

  private where(rec: Rec): string {
    return `zstd-chunk: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}`;
  }
}
