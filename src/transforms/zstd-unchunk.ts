import { command, EXIT_STATUS_TEXT, intFlag, stringFlag, type Context } from '../core/command';
import type { Encoder } from '../core/encode';
import { IntegrityError, InvalidInputError, UsageError } from '../core/errors';
import {
  gibOf,
  layoutName,
  parseDefaultKey,
  parseFspFolder,
  parseFspKey,
  parseVolumeDocument,
  type ChunkKey,
  type LayoutName,
  type VolumeTotals,
} from '../core/layout';
import { OrderedOutput } from '../core/ordered';
import { BLOCK_SIZE, FORMAT_VERSION, isVolume, LINE, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type ObjectRec, type Rec, type VolumeRec } from '../core/records';
import { OrderError, Reorder } from '../core/reorder';
import { badRecord, transform } from '../core/stage';
import { VolumeHeader } from '../core/volume-header';
import { BufferPool } from '../core/buffer-pool';
import { defaultJobs, FrameError } from '../core/zstd';
import { ZstdPool } from '../core/zstd-pool';

const USAGE = `Usage: zstd-unchunk [options] [FILE|-]

Turns the "object" frames of compressed chunks (from s3-list URL | s3-get, or straight from
zstd-chunk) back into a block stream: a "volume" header, then "block" records in index order
with their data, all-zero blocks as "zero": true without data. Every chunk is decompressed
on a worker thread, its length checked (blockCount x 524288) and its SHA-256 checked against
the record's rawSha256 or, for a plain listing, the one in its key. Records of other types
pass through.

Layouts (docs/LAYOUTS.md):
  default  the header comes from volume.json (first in a listing), or from the "volume"
           record when piped straight from zstd-chunk; chunks without any header are
           refused. At the end the number of chunks must be the one volume.json gives.
  fsp      Flexible Snapshot Proxy (movetos3) objects: .../{snapshotId}.{GiB}/{firstBlock}.
           {sha256}.{blockCount}.zstd. The header comes from the folder name (or the "store"
           URL of the records): size = GiB x 2^30, as FSP keeps nothing finer. Give --size to
           restore a file's true size. FSP's block numbers do not sort in block order, so
           chunks that come early wait in a temporary file ($TMPDIR) until their turn;
           memory stays bounded, the disk holds at most the compressed volume.

Options:
  --layout NAME       default or fsp (default: default)
  -j, --jobs N        chunks decompressed at once, 1 to 64 (default: the number of CPUs)
  --partial           do not require volume.json or check the chunk count (a filtered
                      listing, or a shard); chunks still need a header
  --skip-unknown      drop objects whose keys are not of the layout (default: an error)
  --size BYTES        fsp: the volume's true size, at most GiB x 2^30 and more than (GiB-1) x 2^30
  --snapshot-id ID    fsp: the snapshot id, when keys carry no {snapshotId}.{GiB}/ folder
                      (then --size is needed too)
  -h, --help          show this text

Examples:
  s3-list /backups/disk | s3-get | zstd-unchunk | file-write disk.img
  s3-list s3://bkt/snap-0123456789abcdef0.8 | s3-get | zstd-unchunk --layout fsp | file-write disk.img
  file-blocks disk.img | zstd-chunk | zstd-unchunk | count

${EXIT_STATUS_TEXT}
`;

// A chunk's blocks at most: the size of the buffers chunks are decompressed into.
const MAX_CHUNK_BYTES = 64 * BLOCK_SIZE;

interface Options {
  layout: LayoutName;
  jobs: number;
  partial: boolean;
  skipUnknown: boolean;
  size?: number;
  snapshotId?: string;
}

export const main = command({
  name: 'zstd-unchunk',
  usage: USAGE,
  flags: { string: ['layout', 'jobs', 'size', 'snapshot-id'], boolean: ['partial', 'skip-unknown'], alias: { j: 'jobs' } },
  positionals: { max: 1 },
  async run(args, ctx) {
    let layout: LayoutName;
    try {
      layout = layoutName(stringFlag(args, 'layout'));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const opts: Options = {
      layout,
      jobs: intFlag(args, 'jobs', Math.min(64, defaultJobs()), 1, 64),
      partial: Boolean(args.partial),
      skipUnknown: Boolean(args['skip-unknown']),
      size: args.size === undefined ? undefined : intFlag(args, 'size', 0, 1),
      snapshotId: stringFlag(args, 'snapshot-id'),
    };
    if (layout !== 'fsp' && (opts.size !== undefined || opts.snapshotId !== undefined)) {
      throw new UsageError(`${opts.size !== undefined ? '--size' : '--snapshot-id'} goes with --layout fsp (volume.json gives the default layout's header)`);
    }
    if (opts.snapshotId !== undefined && opts.size === undefined) throw new UsageError('--snapshot-id needs --size: the key folder that would give the size is missing');
    const unchunker = new Unchunker(ctx, opts);
    try {
      await transform(ctx, { input: args._[0], frames: true }, (batches, out) => unchunker.run(batches, out));
    } finally {
      await Promise.all([unchunker.pool.close(), unchunker.reorder.close()]);
    }
    if (unchunker.skipped) ctx.log(`dropped ${unchunker.skipped} object${unchunker.skipped === 1 ? '' : 's'} not of the ${layout} layout`);
  },
});

interface Chunk {
  rec: ObjectRec;
  firstBlock: number;
  blockCount: number;
  /** The checksum the chunk must have: blocksSha256 (default layout) or rawSha256 (fsp). */
  checksum: string;
}

class Unchunker {
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
    private readonly opts: Options,
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
      this.fspHeader(rec, key, folder);
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

  /** The header of an FSP volume, from its folder `{snapshotId}.{GiB}` and the flags. */
  private fspHeader(rec: ObjectRec, key: string, folder: string): void {
    const named = folder ? parseFspFolder(folder) : null;
    if (folder && !named) throw badRecord(this.ctx, rec, `key ${JSON.stringify(key)}: the folder ${JSON.stringify(folder)} is not {snapshotId}.{GiB}`);
    if (!named && this.opts.snapshotId === undefined && !this.volume.current) {
      throw badRecord(this.ctx, rec, `key ${JSON.stringify(key)} has no {snapshotId}.{GiB}/ folder to give the volume's size: give --snapshot-id and --size`);
    }
    const snapshotId = this.opts.snapshotId ?? named?.snapshotId ?? (this.volume.current?.snapshotId as string | undefined);
    if (named && this.opts.snapshotId !== undefined && named.snapshotId !== this.opts.snapshotId) {
      throw new UsageError(`--snapshot-id ${this.opts.snapshotId} differs from ${named.snapshotId}, the folder of ${JSON.stringify(key)}`);
    }
    const size = this.opts.size ?? (named ? named.gib * 2 ** 30 : (this.volume.current?.size as number | undefined));
    if (size === undefined) throw badRecord(this.ctx, rec, `the volume's size is not known: give --size`);
    if (named && gibOf(size) !== named.gib) {
      throw new UsageError(`--size ${size} does not round up to ${named.gib} GiB, the size in the folder of ${JSON.stringify(key)}`);
    }
    const header: VolumeRec = { type: 'volume', format: FORMAT_VERSION, source: folder || snapshotId, blockSize: BLOCK_SIZE, size, blocks: Math.ceil(size / BLOCK_SIZE), snapshotId };
    if (this.volume.current) {
      // Straight from zstd-chunk: the volume record came first, and the keys must agree with it.
      const cur = this.volume.current;
      if (named && typeof cur.size === 'number' && gibOf(cur.size) !== named.gib) {
        throw badRecord(this.ctx, rec, `key ${JSON.stringify(key)} says ${named.gib} GiB, the volume record ${cur.size} bytes`);
      }
      if (this.opts.size !== undefined && cur.size !== this.opts.size) throw new UsageError(`--size ${this.opts.size} differs from the volume record's size ${cur.size}`);
      return;
    }
    this.volume.take(header);
    this.output.records(header);
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
    const frame = c.frame;
    this.chunks++;
    while (this.output.full) {
      await this.output.flush(out);
      yield* this.send(out);
    }
    const rawSize = c.blockCount * BLOCK_SIZE;
    const key = JSON.stringify(c.rec.key);
    const fsp = this.opts.layout === 'fsp';
    const job = this.pool.decompress(frame, rawSize, fsp, this.chunkBuffers.take()).then(
      (r) => {
        const got = fsp ? r.rawSha256 : r.blocksSha256;
        if (got !== c.checksum) throw new IntegrityError(`${this.where(c.rec)}: object ${key}: the decompressed chunk's ${this.checksumField} is ${got}, expected ${c.checksum}`);
        const blocks: BlockRec[] = [];
        for (let i = 0; i < c.blockCount; i++) {
          const sha = r.blockSha256[i];
          const index = c.firstBlock + i;
          if (sha === null) blocks.push({ type: 'block', index, sha256: ZERO_BLOCK_SHA256, zero: true });
          else blocks.push({ type: 'block', index, sha256: sha, [PAYLOAD]: r.raw.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE) });
        }
        this.chunkBuffers.lend(r.raw, r.blockSha256.filter((sha) => sha !== null).length);
        return blocks;
      },
      (err: Error) => {
        if (err instanceof FrameError) throw new IntegrityError(`${this.where(c.rec)}: object ${key}: not a valid zstd chunk: ${err.message}`);
        throw err;
      },
    );
    this.output.job(job);
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
