// The mechanics of zstd-unchunk: "object" records of compressed chunks checked against their
// keys and the volume's header (volume.json, a "volume" record, or an FSP folder), FSP chunks
// put back in block order, and each chunk's frame turned into block records (chunk-frames.ts).
import type { Context } from './command';
import type { Encoder } from './encode';
import { IntegrityError, InvalidInputError } from './errors';
import { parseDefaultKey, parseFspKey, parseVolumeDocument, type ChunkKey, type LayoutName, type VolumeTotals } from './layout';
import { OrderedOutput } from './ordered';
import { BLOCK_SIZE, isVolume, LINE, PAYLOAD, type ObjectRec, type Rec, type VolumeRec } from './records';
import { OrderError, Reorder } from './reorder';
import { badRecord } from './stage';
import { VolumeHeader } from './volume-header';
import { BufferPool } from './buffer-pool';
import { chunkBlocks, type Chunk } from './chunk-frames';
import { fspHeader } from './fsp-header';
import { isPiece, pieceRefusal } from './object-pieces';
import { ZstdPool } from './zstd-pool';

// A chunk's blocks at most: the size of the buffers chunks are decompressed into.
const MAX_CHUNK_BYTES = 64 * BLOCK_SIZE;

export interface UnchunkOptions {
  layout: LayoutName;
  jobs: number;
  partial: boolean;
  skipUnknown: boolean;
  size?: number;
  snapshotId?: string;
}

export class Unchunker {
  readonly pool: ZstdPool;
  readonly reorder = new Reorder<Chunk>();
  private readonly output: OrderedOutput;
  private readonly volume = new VolumeHeader();
  private doc: { header: VolumeRec; totals: VolumeTotals } | undefined;
  private prefix: string | undefined;
  private fspFolder: string | undefined;
  private next = 0;
  private chunks = 0;
  private readonly chunkBuffers: BufferPool;
  skipped = 0;

  constructor(
    private readonly ctx: Context,
    private readonly opts: UnchunkOptions,
  ) {
    this.pool = new ZstdPool(opts.jobs);
    this.output = new OrderedOutput(opts.jobs + 1);
    this.chunkBuffers = new BufferPool(MAX_CHUNK_BYTES, opts.jobs + 2);
  }

  /**
   * Hands out what is ready; the stage resumes this generator only once its consumer has
   * written what was yielded (blocks are larger than a pipe's high-water mark, so each write
   * waits for the stream to drain), so the chunk buffers under those blocks are free again.
   */
  private *send(out: Encoder): Generator<Buffer[]> {
    const taken = out.take();
    yield taken;
    this.chunkBuffers.returned(taken);
  }

  async *run(batches: AsyncIterable<Rec[]>, out: Encoder): AsyncGenerator<Buffer[]> {
    for await (const batch of batches) {
      for (const rec of batch) {
        if (isVolume(rec)) this.takeVolume(rec);
        else if (rec.type === 'object') for await (const c of this.object(rec as ObjectRec)) yield* this.submit(c, out);
        else this.output.records(rec);
      }
      await this.output.flush(out);
      yield* this.send(out);
    }
    for await (const c of this.reordered(this.reorder.finish())) yield* this.submit(c, out);
    await this.output.flush(out, true);
    this.finish();
    yield* this.send(out);
  }

  private takeVolume(rec: VolumeRec): void {
    if (this.volume.take(rec) && this.volume.volumes > 1) throw badRecord(this.ctx, rec, 'a second volume in one stream: zstd-unchunk takes one volume at a time');
    if (this.doc) this.agree(rec, this.doc.header, 'volume.json');
    this.output.records(rec);
  }

  /** Takes an object record; yields the chunks ready to decompress (the reorder may release many). */
  private async *object(rec: ObjectRec): AsyncGenerator<Chunk & { frame: Buffer }> {
    const key = typeof rec.key === 'string' ? rec.key : '';
    if (!key) throw badRecord(this.ctx, rec, 'an object record without a "key"');
    if (isPiece(rec)) throw badRecord(this.ctx, rec, pieceRefusal(rec));
    if (this.opts.layout === 'fsp') return yield* this.fspObject(rec, key);
    const parsed = parseDefaultKey(key);
    if (!parsed) return this.unknown(rec, key, parseFspKey(key) ? ' (it looks like the fsp layout: give --layout fsp)' : '');
    if (this.prefix === undefined) this.prefix = parsed.prefix;
    else if (parsed.prefix !== this.prefix) throw badRecord(this.ctx, rec, `key ${JSON.stringify(key)} is not under ${JSON.stringify(this.prefix)} like the keys before it: one volume at a time`);
    const data = this.payload(rec, key);
    if (parsed.kind === 'volume') return this.volumeDocument(rec, key, data);
    if (!this.volume.current) {
      throw badRecord(this.ctx, rec, `chunk ${JSON.stringify(key)} comes without a header: no volume.json before it (an upload that never completed?) and no "volume" record`);
    }
    const total = this.volume.totalBlocks;
    if (total !== undefined && parsed.firstBlock + parsed.blockCount > total) {
      throw badRecord(this.ctx, rec, `chunk ${JSON.stringify(key)} ends at block ${parsed.firstBlock + parsed.blockCount - 1}, past the volume's ${total} blocks`);
    }
    if (parsed.firstBlock < this.next) {
      throw badRecord(this.ctx, rec, `chunk ${JSON.stringify(key)} starts at block ${parsed.firstBlock}, before the end of the chunk before it (block ${this.next}): chunks overlap or are out of order`);
    }
    this.next = parsed.firstBlock + parsed.blockCount;
    yield { ...this.checked(rec, key, parsed), frame: data };
  }

  private async *fspObject(rec: ObjectRec, key: string): AsyncGenerator<Chunk & { frame: Buffer }> {
    const parsed = parseFspKey(key);
    if (!parsed) return this.unknown(rec, key, parseDefaultKey(key) ? ' (it looks like the default layout: leave out --layout fsp)' : '');
    const data = this.payload(rec, key);
    const folder = parsed.folder || (typeof rec.store === 'string' ? rec.store : '');
    if (this.fspFolder === undefined) {
      this.fspFolder = folder;
      const header = fspHeader(this.ctx, this.opts, this.volume.current, rec, key, folder);
      if (header) {
        this.volume.take(header);
        this.output.records(header);
      }
    } else if (folder !== this.fspFolder) {
      throw badRecord(this.ctx, rec, `key ${JSON.stringify(key)} is not in ${JSON.stringify(this.fspFolder)} like the keys before it: one snapshot at a time`);
    }
    const total = this.volume.totalBlocks!;
    if (parsed.firstBlock + parsed.blockCount > total) {
      throw badRecord(this.ctx, rec, `chunk ${JSON.stringify(key)} ends at block ${parsed.firstBlock + parsed.blockCount - 1}, past the volume's ${total} blocks`);
    }
    const chunk = this.checked(rec, key, parsed);
    const released = this.reorder.add({ first: chunk.firstBlock, count: chunk.blockCount, text: parsed.firstText, meta: chunk }, data);
    yield* this.reordered(released);
  }

  private async *reordered(released: AsyncIterable<{ meta: Chunk; frame: Buffer }>): AsyncGenerator<Chunk & { frame: Buffer }> {
    try {
      for await (const r of released) yield { ...r.meta, frame: r.frame };
    } catch (err) {
      if (err instanceof OrderError) throw new InvalidInputError(`zstd-unchunk: ${this.ctx.input}: ${err.message}`);
      throw err;
    }
  }


  private volumeDocument(rec: ObjectRec, key: string, data: Buffer): void {
    let doc;
    try {
      doc = parseVolumeDocument(data);
    } catch (err) {
      throw badRecord(this.ctx, rec, `${JSON.stringify(key)}: ${(err as Error).message}`);
    }
    if (this.doc) {
      if (JSON.stringify(this.doc) !== JSON.stringify(doc)) throw badRecord(this.ctx, rec, `${JSON.stringify(key)} differs from the volume.json before it`);
      return;
    }
    this.doc = doc;
    if (this.volume.current) {
      this.agree(this.volume.current, doc.header, JSON.stringify(key));
      return;
    }
    this.volume.take(doc.header);
    this.output.records(doc.header);
  }

  /** A volume record and volume.json must describe the same volume. */
  private agree(rec: VolumeRec, doc: VolumeRec, what: string): void {
    for (const field of ['size', 'snapshotId', 'parent'] as const) {
      if (rec[field] !== undefined && doc[field] !== undefined && rec[field] !== doc[field]) {
        throw badRecord(this.ctx, rec, `the volume's ${field} ${JSON.stringify(rec[field])} differs from ${JSON.stringify(doc[field])} in ${what}`);
      }
    }
  }

  private unknown(rec: ObjectRec, key: string, hint: string): void {
    if (!this.opts.skipUnknown) throw badRecord(this.ctx, rec, `key ${JSON.stringify(key)} is not of the ${this.opts.layout} layout${hint}`);
    this.skipped++;
  }

  private payload(rec: ObjectRec, key: string): Buffer {
    const data = rec[PAYLOAD];
    if (!data) throw badRecord(this.ctx, rec, `object ${JSON.stringify(key)} has no data (a listing: fetch the objects with s3-get first)`);
    // The record stays for messages; the data goes its own way (a chunk held back for the
    // reorder waits on disk, not in memory).
    delete rec[PAYLOAD];
    return data;
  }

  /** The key names the chunk; the record's own fields, when it has them, must agree. */
  private checked(rec: ObjectRec, key: string, named: ChunkKey): Chunk {
    for (const field of ['firstBlock', 'blockCount'] as const) {
      if (rec[field] !== undefined && rec[field] !== named[field]) {
        throw badRecord(this.ctx, rec, `object ${JSON.stringify(key)}: its ${field} ${JSON.stringify(rec[field])} is not the one in its key (${named[field]})`);
      }
    }
    const field = this.checksumField;
    if (rec[field] !== undefined && rec[field] !== named.checksum) {
      throw new IntegrityError(`${this.where(rec)}: object ${JSON.stringify(key)}: its ${field} ${JSON.stringify(rec[field])} is not the one in its key (${named.checksum})`);
    }
    return { rec, firstBlock: named.firstBlock, blockCount: named.blockCount, checksum: named.checksum };
  }

  private get checksumField(): 'rawSha256' | 'blocksSha256' {
    return this.opts.layout === 'fsp' ? 'rawSha256' : 'blocksSha256';
  }

  /** Queues a chunk's decompression, first writing out what is ready while the queue is full. */
  private async *submit(c: Chunk & { frame: Buffer }, out: Encoder): AsyncGenerator<Buffer[]> {
    this.chunks++;
    while (this.output.full) {
      await this.output.flush(out);
      yield* this.send(out);
    }
    this.output.job(chunkBlocks(this.pool, this.chunkBuffers, c, c.frame, this.opts.layout === 'fsp', this.where(c.rec)));
  }

  private finish(): void {
    if (this.opts.layout !== 'default' || this.opts.partial) return;
    const where = `zstd-unchunk: ${this.ctx.input}`;
    if (!this.doc) {
      throw new InvalidInputError(`${where}: no volume.json in the input: the upload never completed, or this is part of a listing (give --partial to restore what is there)`);
    }
    if (this.chunks !== this.doc.totals.chunks) {
      throw new IntegrityError(
        `${where}: ${this.chunks} chunk${this.chunks === 1 ? '' : 's'} read, volume.json lists ${this.doc.totals.chunks}: ` +
          (this.chunks < this.doc.totals.chunks
            ? 'chunks are missing'
            : 'the store holds chunks volume.json does not count (of another backup written to the same place, or of a resumed upload whose zstd-chunk was not given the earlier journals with --journal)') +
          '; give --partial to restore what is there',
      );
    }
  }

  private where(rec: Rec): string {
    return `zstd-unchunk: ${this.ctx.input}:${rec[LINE] ?? '?'}`;
  }
}
