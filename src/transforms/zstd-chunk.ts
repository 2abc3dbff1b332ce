import { command, EXIT_STATUS_TEXT, intFlag, stringFlag, type Context } from '../core/command';
import { IntegrityError, InvalidInputError, UsageError } from '../core/errors';
import {
  CHUNK_BLOCKS,
  defaultChunkKey,
  fspChunkName,
  fspPrefix,
  layoutName,
  parseDefaultKey,
  startsChunk,
  VOLUME_KEY,
  volumeDocument,
  type LayoutName,
} from '../core/layout';
import type { Encoder } from '../core/encode';
import { OrderedOutput } from '../core/ordered';
import { BLOCK_SIZE, isBlock, isVolume, LINE, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type ObjectRec, type Rec, type VolumeRec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import { VolumeHeader } from '../core/volume-header';
import { BufferPool } from '../core/buffer-pool';
import { chunkBuffer, DEFAULT_LEVEL, defaultJobs, frameBound, MAX_LEVEL } from '../core/zstd';
import { ZstdPool, type CompressResult } from '../core/zstd-pool';
import { sha256b64 } from '../core/digest';
import { readJournal, type DoneSet } from '../core/journal';

const USAGE = `Usage: zstd-chunk [options] [FILE|-]

Compresses a block stream into "object" frames, each one zstd frame of up to 64 consecutive
blocks (32 MiB raw), named by a store layout, ready for s3-put. A chunk starts at every gap in
the block indices and at every index divisible by 64, so the same blocks always make the same
chunks, and a run resumed with skip --done makes exactly the chunks still missing.

Each object record gives: key, size (compressed bytes), codec "zstd", firstBlock, blockCount,
rawSize, blocksSha256 (base64 SHA-256 of the blocks' 32-byte SHA-256 digests in order, the
chunk's checksum in the default layout), sha256 (of the compressed bytes, for s3-put to check),
and in the fsp layout rawSha256 (SHA-256 of the raw chunk, which FSP's keys carry). Frames
carry the content size and no zstd checksum: the SHA-256s are the checks. Records other than
blocks pass through, the volume header included.

The SHA-256 of every block is verified before it is compressed (exit 5 naming the block), on
the worker threads that compress, where the data is at hand; it costs one pass of SHA-256
over the data (see docs/BENCHMARKS.md). With --no-verify the blocks' own checksums are
trusted: the default layout's blocksSha256 is then made from them unread, and a block whose
data did not match is found when zstd-unchunk reads the chunk back.

Chunks are compressed on worker threads, one per job, and written in input order. Memory:
a 32 MiB buffer per job and one more, and the frames of at most jobs + 1 chunks (being made,
or finished and waiting for a slower one before them), plus the one being written: on
incompressible data about 80 MiB + 32 MiB x (2 x jobs + 3), some 300 MiB with 2 jobs.

Layouts (docs/LAYOUTS.md):
  default  zstd/{firstBlock, 10 digits}-{blockCount}-{blocksSha256, base64url}.zst for each
           chunk (zero blocks stay inside chunks: a delta's zero blocks must survive), then
           volume.json (the volume header, the chunk count) last, with "commit": true:
           s3-put writes it only once everything else is stored and the input was whole.
  fsp      the Flexible Snapshot Proxy movetos3 layout:
           {snapshotId}.{GiB}/{firstBlock}.{rawSha256, base64url, padded}.{blockCount}.zstd
           zero blocks are left out (as gaps) unless --full-copy; no index object. The
           snapshot id comes from the header's "snapshotId" or --snapshot-id; GiB is the size
           rounded up, so the header must give the size (not so for a stream from stdin).

Options:
  --layout NAME       default or fsp (default: default)
  --level N           zstd level, 1 to ${MAX_LEVEL} (default: ${DEFAULT_LEVEL})
  -j, --jobs N        chunks compressed at once, 1 to 64 (default: the number of CPUs)
  --no-verify         trust the blocks' SHA-256 instead of checking the data (see above)
  --journal FILE      default layout: the journal of an earlier run into the same store (the
                      one given to skip --done; repeatable): its chunks count in volume.json,
                      so a resumed upload still describes the whole volume
  --snapshot-id ID    fsp: the snapshot id for the keys (default: the header's snapshotId)
  --full-copy         fsp: keep zero blocks (FSP's FULL_COPY)
  -h, --help          show this text

Examples:
  file-blocks disk.img | zstd-chunk | s3-put /backups/disk > run1.journal
  file-blocks disk.img | skip --done run1.journal | zstd-chunk --journal run1.journal | s3-put /backups/disk > run2.journal
  file-blocks disk.img | zstd-chunk --layout fsp --snapshot-id snap-0123456789abcdef0 | s3-put s3://bkt
  file-blocks disk.img | zstd-chunk | strip | jq -c '{key, size, rawSize}'

${EXIT_STATUS_TEXT}
`;

const CHUNK_BYTES = CHUNK_BLOCKS * BLOCK_SIZE;
// Far above a pipe's high-water mark (16 KiB): see Chunker.send().
const COPY_FRAMES_BELOW = 1 << 20;

interface Options {
  layout: LayoutName;
  level: number;
  jobs: number;
  snapshotId?: string;
  fullCopy: boolean;
  verify: boolean;
}

export const main = command({
  name: 'zstd-chunk',
  usage: USAGE,
  flags: {
    string: ['layout', 'level', 'jobs', 'snapshot-id', 'journal'],
    repeatable: ['journal'],
    boolean: ['full-copy', 'verify'],
    alias: { j: 'jobs' },
    default: { verify: true },
  },
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
      level: intFlag(args, 'level', DEFAULT_LEVEL, 1, MAX_LEVEL),
      jobs: intFlag(args, 'jobs', Math.min(64, defaultJobs()), 1, 64),
      snapshotId: stringFlag(args, 'snapshot-id'),
      fullCopy: Boolean(args['full-copy']),
      verify: args.verify !== false,
    };
    if (layout !== 'fsp' && (opts.fullCopy || opts.snapshotId !== undefined)) {
      throw new UsageError(`${opts.fullCopy ? '--full-copy' : '--snapshot-id'} goes with --layout fsp`);
    }
    const journals = args.journal === undefined ? [] : (Array.isArray(args.journal) ? args.journal : [args.journal]).map(String);
    if (journals.includes('')) throw new UsageError('--journal needs a value');
    if (layout === 'fsp' && journals.length) throw new UsageError('--journal goes with the default layout (FSP has no index object to count chunks in)');
    const chunker = new Chunker(ctx, opts);
    for (const path of journals) chunker.countStored(await readJournal(ctx, path));
    try {
      await transform(ctx, { input: args._[0], frames: true }, (batches, out) => chunker.run(batches, out));
    } finally {
      await chunker.pool.close();
    }
  },
});

/** The blocks of the chunk being gathered. */
interface Gathering {
  first: number;
  raw: Buffer;
  zero: boolean[];
  /** The SHA-256 each block's record gives, or null. */
  claims: (string | null)[];
  lines: number[];
  zeros: number;
}

class Chunker {
  readonly pool: ZstdPool;
  private readonly output: OrderedOutput;
  private readonly header = new VolumeHeader();
  private readonly free: Buffer[] = [];
  private buffers = 0;
  private current: Gathering | undefined;
  private last: number | undefined; // last listed block taken into a chunk
  private lastIndex = -1;
  private readonly zeroChunks = new Map<number, Promise<CompressResult>>();
  private readonly totals = { chunks: 0, dataBlocks: 0 };
  /** Chunk keys that journals of earlier runs say are stored already (counted in the totals). */
  private readonly stored = new Set<string>();
  private fspFolder: string | undefined;
  private readonly frames: BufferPool;

  constructor(
    private readonly ctx: Context,
    private readonly opts: Options,
  ) {
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
    if (this.opts.layout === 'default') out.push(this.volumeObject());
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
    for (const key of done.keys.keys()) {
      const chunk = parseDefaultKey(key);
      if (chunk?.kind !== 'chunk' || chunk.prefix !== '' || this.stored.has(key)) continue;
      this.stored.add(key);
      this.totals.chunks++;
      this.totals.dataBlocks += chunk.blockCount;
    }
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
      result.then((r) => [this.chunkRecord(c, count, r)]),
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

  private chunkRecord(c: Gathering, count: number, r: CompressResult): ObjectRec {
    if (r.badBlock >= 0) {
      const index = c.first + r.badBlock;
      throw new IntegrityError(
        `zstd-chunk: ${this.ctx.input ?? 'stdin'}:${c.lines[r.badBlock]}: block ${index}: SHA-256 of the data is ${r.badBlockSha256}, the record says ${c.claims[r.badBlock]}`,
      );
    }
    const fsp = this.opts.layout === 'fsp';
    const chunk = { firstBlock: c.first, blockCount: count, checksum: fsp ? r.rawSha256! : r.blocksSha256 };
    const rec: ObjectRec = {
      type: 'object',
      key: fsp ? `${this.fspFolderName(c)}/${fspChunkName(chunk)}` : defaultChunkKey(chunk),
      size: r.frame.length,
      codec: 'zstd',
      firstBlock: c.first,
      blockCount: count,
      rawSize: count * BLOCK_SIZE,
    };
    if (!this.stored.has(rec.key)) {
      this.totals.chunks++;
      this.totals.dataBlocks += count;
    }
    if (fsp) rec.rawSha256 = r.rawSha256;
    rec.blocksSha256 = r.blocksSha256;
    rec.sha256 = r.sha256;
    rec[PAYLOAD] = r.frame;
    return rec;
  }

  private fspFolderName(c: Gathering): string {
    if (this.fspFolder) return this.fspFolder;
    const h = this.header.current!;
    const id = this.opts.snapshotId ?? (typeof h.snapshotId === 'string' ? h.snapshotId : undefined);
    if (!id) throw new InvalidInputError(`zstd-chunk: ${this.ctx.input ?? 'stdin'}: the fsp layout needs a snapshot id: the volume header has no "snapshotId"; give --snapshot-id`);
    if (/[/.]/.test(id) || id === '') throw new UsageError(`snapshot id ${JSON.stringify(id)} cannot name an FSP folder (no "/" or "." allowed)`);
    if (typeof h.size !== 'number') {
      throw new InvalidInputError(
        `zstd-chunk: ${this.ctx.input ?? 'stdin'}:${c.lines[0]}: the fsp layout names keys by the volume's size in GiB, and the header does not give the size (a stream read from stdin): write it to a file first`,
      );
    }
    this.fspFolder = fspPrefix(id, h.size);
    return this.fspFolder;
  }

  private volumeObject(): ObjectRec {
    const h = this.header.current;
    if (!h) throw new InvalidInputError(`zstd-chunk: ${this.ctx.input ?? 'stdin'}: no "volume" record: the input is not a block stream`);
    if (typeof h.size !== 'number') throw new InvalidInputError(`zstd-chunk: ${this.ctx.input ?? 'stdin'}: the stream never gave the volume's size`);
    const header = { ...h, blocks: Math.ceil(h.size / BLOCK_SIZE) };
    const body = Buffer.from(JSON.stringify(volumeDocument(header, this.totals), null, 2) + '\n');
    return { type: 'object', key: VOLUME_KEY, size: body.length, sha256: sha256b64(body), commit: true, [PAYLOAD]: body };
  }

  private where(rec: Rec): string {
    return `zstd-chunk: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}`;
  }
}
