// What ebs-put does with each block of its input, decided in ascending index order over three
// sources at once: the input stream, the blocks earlier runs already put (their journals, when
// resuming) and, for a whole volume written on top of a parent, the parent's listing (whose
// blocks the stream does not have must be put as zeros). Each decision adds the block to the
// LINEAR checksum in that same order, whichever put finishes first.
import type { Context } from './command';
import { sha256raw } from './digest';
import type { EbsSession } from './ebs-client';
import type { JournalMerge, JournalSnapshot } from './ebs-journal';
import { LinearChecksum } from './ebs-journal';
import { describeSnapshot, listPages, MAX_PAGE, type Listed } from './ebs-list';
import { blocksOfGiB } from './ebs-records';
import { SnapshotWriter } from './ebs-writer';
import type { Encoder } from './encode';
import { IntegrityError, SluiceError } from './errors';
import { GIB } from './layout';
import type { OrderedOutput } from './ordered';
import { BLOCK_SIZE, LINE, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type Rec, type VolumeRec } from './records';
import { badRecord } from './stage';

export interface PutOptions {
  parent?: string;
  size?: number;
  description?: string;
  tags?: { Key: string; Value: string }[];
  timeoutMinutes: number;
  wait: boolean;
  resume?: string;
  done: string[];
  /** Put the stream's zero blocks too (FSP's FULL_COPY), so the snapshot lists them. */
  fullCopy: boolean;
}

const ZEROS = Buffer.alloc(BLOCK_SIZE);
const ZERO_DIGEST = Buffer.from(ZERO_BLOCK_SHA256, 'base64');

/** The blocks of a listing one at a time, pages fetched as they are needed. */
class ListingCursor {
  private page: Listed[] = [];
  private at = 0;
  constructor(private readonly pages: AsyncIterator<{ blocks: Listed[] }> | undefined) {}

  async peek(): Promise<number | undefined> {
    while (this.pages && this.at >= this.page.length) {
      const got = await this.pages.next();
      if (got.done) return undefined;
      this.page = got.value.blocks;
      this.at = 0;
    }
    return this.page[this.at]?.index;
  }

  skip(): void {
    this.at++;
  }
}

export class SnapshotPutter {
  readonly writer: SnapshotWriter;
  parent: string | undefined;
  blocksPut = 0;
  bytesPut = 0;
  private volume: VolumeRec | undefined;
  private volumeSize = 0;
  private volumeBlocks = 0;
  /** 'delta': absent blocks stay as in the parent; 'whole': the parent's extra blocks are zeroed. */
  private mode: 'plain' | 'delta' | 'whole' = 'plain';
  private parentBlocks = new ListingCursor(undefined);
  private readonly linear = new LinearChecksum();
  private previous = -1;
  private output!: OrderedOutput;
  private out!: Encoder;
  private completed = false;
  /** --full-copy, of this run or (resuming) of the run that started the snapshot. */
  private fullCopy: boolean;

  constructor(
    private readonly ctx: Context,
    private readonly session: EbsSession,
    private readonly options: PutOptions,
    private readonly journals: JournalMerge | undefined,
  ) {
    this.writer = new SnapshotWriter(session);
    this.parent = options.parent;
    this.fullCopy = options.fullCopy;
  }

  attach(output: OrderedOutput, out: Encoder): void {
    this.output = output;
    this.out = out;
  }

  async header(rec: VolumeRec): Promise<void> {
    if (this.volume) {
      // The same volume's header repeated after its blocks (a stream read from stdin).
      if (rec.source === this.volume.source && rec.snapshotId === this.volume.snapshotId) return;
      throw badRecord(this.ctx, rec, 'a second volume: ebs-put writes one volume per snapshot');
    }
    this.volume = rec;
    const deltaOf = typeof rec.parent === 'string' ? rec.parent : undefined;
    if (this.options.resume) {
      const fromJournal = await this.journals!.open(this.options.resume);
      this.parent ??= fromJournal?.parent;
      if (fromJournal?.parent !== undefined && this.parent !== fromJournal.parent) throw new SluiceError(`--parent ${this.parent}: the journal's snapshot was started from ${fromJournal.parent}`);
      if (fromJournal) this.checkSource(rec, fromJournal);
      this.fullCopy ||= fromJournal?.fullCopy === true;
    }
    if (deltaOf !== undefined && this.parent === undefined) {
      throw badRecord(this.ctx, rec, `the stream is a delta from ${deltaOf}: give --parent (${deltaOf}, or a copy of it) so that the blocks it leaves out are there`);
    }
    this.mode = this.parent === undefined ? 'plain' : deltaOf !== undefined ? 'delta' : 'whole';
    const parentSize = this.parent ? (await describeSnapshot(this.session, this.parent)).volumeSize ?? 0 : 0;
    if (this.options.resume) {
      this.volumeSize = (await this.writer.resume(this.options.resume)) ?? 0;
    } else {
      const own = this.options.size ?? streamGiB(rec);
      if (own === undefined) throw badRecord(this.ctx, rec, 'the volume header gives no size (a stream read from stdin): give --size GiB');
      this.volumeSize = this.options.size ?? Math.max(own, parentSize);
      await this.writer.start({ volumeSize: this.volumeSize, parent: this.parent, description: this.options.description, tags: this.options.tags, timeoutMinutes: this.options.timeoutMinutes });
    }
    // A resumed run's journal names its snapshot too, so that any set of journals can resume it.
    if (!this.session.settings.dryRun) this.out.push(this.snapshotRecord('pending', false));
    this.volumeBlocks = blocksOfGiB(this.volumeSize);
    if (this.mode === 'whole') this.parentBlocks = new ListingCursor(listPages(this.session, this.parent!, { maxResults: MAX_PAGE })[Symbol.asyncIterator]());
  }

  async block(rec: BlockRec): Promise<void> {
    if (!this.volume) throw badRecord(this.ctx, rec, 'a block before any volume header');
    const index = rec.index;
    if (!Number.isSafeInteger(index) || index < 0) throw badRecord(this.ctx, rec, `block record has an invalid "index": ${JSON.stringify(index)}`);
    if (index <= this.previous) throw badRecord(this.ctx, rec, `block ${index} comes after block ${this.previous}: blocks must be in ascending order`);
    if (index >= this.volumeBlocks) throw badRecord(this.ctx, rec, `block ${index} is beyond the snapshot's ${this.volumeBlocks} blocks (${this.volumeSize} GiB; see --size)`);
    this.previous = index;
    const data = rec[PAYLOAD];
    let digest: Buffer;
    if (data) {
      if (data.length !== BLOCK_SIZE) throw badRecord(this.ctx, rec, `block ${index} has ${data.length} bytes of data, not ${BLOCK_SIZE}`);
      digest = sha256raw(data);
      const sha = digest.toString('base64');
      if (rec.sha256 !== undefined && rec.sha256 !== sha) {
        throw new IntegrityError(`${this.ctx.command}: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}: block ${index}: the data's SHA-256 is ${sha}, the record says ${JSON.stringify(rec.sha256)}`);
      }
    } else if (rec.zero === true) {
      digest = ZERO_DIGEST;
    } else {
      throw badRecord(this.ctx, rec, `block ${index} has no data: ebs-put writes block frames; read the data first (ebs-get)`);
    }
    await this.advance(index);
    const inParent = (await this.parentBlocks.peek()) === index;
    if (inParent) this.parentBlocks.skip();
    const earlier = this.journals?.peek() === index ? await this.journals.take() : undefined;
    const zero = data === undefined || digest.equals(ZERO_DIGEST);
    // Zeros need putting only where the snapshot would otherwise show the parent's data, or an
    // earlier run's (the block changed since), or when asked for (an encrypted snapshot's
    // unwritten blocks do not read as zeros).
    const put = !zero || this.fullCopy || this.mode === 'delta' || (this.mode === 'whole' && inParent) || (earlier !== undefined && !earlier.digest.equals(ZERO_DIGEST));
    if (put) await this.put(index, zero ? ZEROS : data!, zero ? ZERO_DIGEST : digest);
    else if (earlier) this.linear.add(index, earlier.digest);
  }

  /** After a valid trailer: the parent's and the journals' blocks past the last input block. */
  async finish(): Promise<void> {
    if (!this.volume) throw new SluiceError(`${this.ctx.command}: ${this.ctx.input ?? 'stdin'}: the stream has no volume header: nothing to put`);
    await this.advance(Infinity);
  }

  /** Decides every block below `limit` that only the journals or the parent listing have. */
  private async advance(limit: number): Promise<void> {
    for (;;) {
      const fromJournal = this.journals?.peek();
      const fromParent = await this.parentBlocks.peek();
      const next = Math.min(fromJournal ?? Infinity, fromParent ?? Infinity);
      if (!(next < limit)) return;
      if (fromParent === next) this.parentBlocks.skip();
      if (fromJournal === next) {
        // Put by an earlier run (data or zeros); the stream, filtered by skip, leaves it out.
        this.linear.add(next, (await this.journals!.take())!.digest);
      } else if (next < this.volumeBlocks) {
        await this.put(next, ZEROS, ZERO_DIGEST);
      }
    }
  }

  private async put(index: number, data: Buffer, digest: Buffer): Promise<void> {
    this.linear.add(index, digest);
    this.blocksPut++;
    this.bytesPut += data.length;
    const sha256 = digest.toString('base64');
    const journal: Rec = digest.equals(ZERO_DIGEST) ? { type: 'block', index, sha256, zero: true } : { type: 'block', index, sha256 };
    while (this.output.full) await this.output.flush(this.out);
    const job = this.writer.put(index, data, sha256).then(() => (this.session.settings.dryRun ? [] : [journal]));
    this.output.job(job, data.length);
  }

  async complete(): Promise<void> {
    await this.writer.complete(this.linear.count, this.linear.base64());
    this.completed = true;
  }

  waitCompleted(): Promise<void> {
    return this.writer.waitCompleted();
  }

  snapshotRecord(status: string, final: boolean): Rec {
    const rec: Rec = { type: 'snapshot', snapshotId: this.writer.snapshotId, status, volumeSize: this.volumeSize };
    if (this.parent !== undefined) rec.parent = this.parent;
    if (!final) {
      // What a resume checks its stream and flags against.
      if (this.options.description !== undefined) rec.description = this.options.description;
      Object.assign(rec, this.volume && streamSource(this.volume));
      if (this.fullCopy) rec.fullCopy = true;
    }
    if (final) {
      rec.blocks = this.linear.count;
      rec.blocksPut = this.blocksPut;
    }
    return rec;
  }

  /**
   * Resuming, the stream must be read from the snapshot (and delta parent) the journal's run
   * read: the blocks skip drops are known by index alone when the stream has no checksums, so
   * another source would complete a snapshot mixed from two. A file is not checked by name: its
   * blocks carry checksums, and a block that changed since is put again.
   */
  private checkSource(rec: VolumeRec, journal: JournalSnapshot): void {
    const now = streamSource(rec);
    if (typeof rec.snapshotId !== 'string' || journal.source === undefined) return;
    if (journal.source !== now.source || journal.sourceParent !== now.sourceParent) {
      const name = (s: { source?: string; sourceParent?: string }) => `${s.source}${s.sourceParent ? ` (a delta from ${s.sourceParent})` : ''}`;
      throw badRecord(this.ctx, rec, `the journal's run read ${name(journal)}, this stream is of ${name(now)}: resume from the same source`);
    }
  }

  /** An error of the run, with how to resume when a snapshot is left pending. */
  explain(err: unknown): unknown {
    if (!this.writer.snapshotId || this.session.settings.dryRun || this.completed || !(err instanceof SluiceError)) return err;
    if (this.ctx.signal.aborted) return err;
    const hint = `; ${this.writer.snapshotId} is left pending: resume with "... | skip --done JOURNAL | ebs-put --resume ${this.writer.snapshotId} --done JOURNAL" (JOURNAL: this run's stdout${this.options.done.length ? ', and the earlier journals' : ''})`;
    return new SluiceError(err.message + hint, err.exitCode);
  }
}

/** What a stream was read from: the snapshot (or else the file) and the parent of a delta. */
function streamSource(rec: VolumeRec): { source?: string; sourceParent?: string } {
  const source = typeof rec.snapshotId === 'string' ? rec.snapshotId : typeof rec.source === 'string' ? rec.source : undefined;
  const sourceParent = typeof rec.parent === 'string' ? rec.parent : undefined;
  return { ...(source !== undefined && { source }), ...(sourceParent !== undefined && { sourceParent }) };
}

/** Whole GiB of the stream's header, or undefined when it gives no size. */
function streamGiB(rec: VolumeRec): number | undefined {
  const size = typeof rec.size === 'number' ? rec.size : typeof rec.blocks === 'number' ? rec.blocks * BLOCK_SIZE : undefined;
  return size === undefined ? undefined : Math.max(1, Math.ceil(size / GIB));
}
