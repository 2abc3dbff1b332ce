// What ebs-put needs from the journals of earlier runs to resume a pending snapshot: the blocks
// already put, in ascending order, each with its SHA-256, because CompleteSnapshot must be told
// how many blocks the snapshot got in all and the LINEAR checksum over all of them. Journals
// are read as the new run goes (each is in ascending order; several are merged), never held
// whole: a journal of a 16 TiB volume has 33.5 M lines.
import { createReadStream } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import type { Context } from './command';
import { decode } from './decode';
import { InvalidInputError, SluiceError, UsageError } from './errors';
import { LINE, type Rec } from './records';

export interface PutBlock {
  index: number;
  /** The raw 32-byte SHA-256 of the block. */
  digest: Buffer;
}

/**
 * The LINEAR aggregate checksum of a snapshot: SHA-256 over the 32-byte SHA-256 digests of its
 * blocks in ascending index order, and the number of blocks, built as blocks are decided.
 */
export class LinearChecksum {
  private readonly hash: Hash = createHash('sha256');
  private last = -1;
  count = 0;

  add(index: number, digest: Buffer): void {
    if (index <= this.last) throw new Error(`LINEAR checksum: block ${index} after ${this.last}`);
    this.last = index;
    this.hash.update(digest);
    this.count++;
  }

  base64(): string {
    return this.hash.digest('base64');
  }
}

/** What the journal of an earlier ebs-put run says about its snapshot (its first record). */
export interface JournalSnapshot {
  snapshotId: string;
  volumeSize?: number;
  parent?: string;
  /** The snapshot (or file) the stream was read from, and the parent of a delta stream. */
  source?: string;
  sourceParent?: string;
  /** The run put the stream's zero blocks too (--full-copy). */
  fullCopy: boolean;
}

class JournalReader {
  private readonly records: AsyncIterator<Rec[]>;
  private batch: Rec[] = [];
  private at = 0;
  private previous = -1;
  private ended = false;
  snapshot: JournalSnapshot | undefined;

  constructor(
    private readonly ctx: Context,
    readonly path: string,
  ) {
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    stream.on('error', () => undefined); // reported by the decoder's iteration
    this.records = decode(stream, { command: ctx.command, source: path, allowIncomplete: true })[Symbol.asyncIterator]();
  }

  /** The next block put, or undefined at the end of the journal. */
  async next(): Promise<PutBlock | undefined> {
    for (;;) {
      if (this.at >= this.batch.length) {
        if (this.ended) return undefined;
        let got;
        try {
          got = await this.records.next();
        } catch (err) {
          if (err instanceof SluiceError) throw err;
          throw new SluiceError(`${this.ctx.command}: cannot read journal ${this.path}: ${(err as Error).message}`);
        }
        if (got.done) {
          this.ended = true;
          return undefined;
        }
        this.batch = got.value;
        this.at = 0;
        continue;
      }
      const rec = this.batch[this.at++];
      if (rec.type === 'snapshot' && this.snapshot === undefined) {
        if (typeof rec.snapshotId !== 'string') throw this.bad(rec, 'the snapshot record has no "snapshotId"');
        this.snapshot = {
          snapshotId: rec.snapshotId,
          volumeSize: typeof rec.volumeSize === 'number' ? rec.volumeSize : undefined,
          parent: typeof rec.parent === 'string' ? rec.parent : undefined,
          source: typeof rec.source === 'string' ? rec.source : undefined,
          sourceParent: typeof rec.sourceParent === 'string' ? rec.sourceParent : undefined,
          fullCopy: rec.fullCopy === true,
        };
      } else if (rec.type === 'block') {
        const index = rec.index;
        if (!Number.isSafeInteger(index) || (index as number) <= this.previous) throw this.bad(rec, `block ${JSON.stringify(index)} after ${this.previous}: a journal lists blocks once each, ascending`);
        const digest = typeof rec.sha256 === 'string' ? Buffer.from(rec.sha256, 'base64') : Buffer.alloc(0);
        if (digest.length !== 32) throw this.bad(rec, `block ${index} has no valid "sha256"`);
        this.previous = index as number;
        return { index: index as number, digest };
      }
    }
  }

  private bad(rec: Rec, what: string): InvalidInputError {
    return new InvalidInputError(`${this.ctx.command}: ${this.path}:${rec[LINE] ?? '?'}: ${what}`);
  }
}

/** The blocks of several journals merged into one ascending sequence (a later journal wins a tie). */
export class JournalMerge {
  private readonly readers: JournalReader[];
  private heads: (PutBlock | undefined)[] = [];

  constructor(ctx: Context, paths: string[]) {
    this.readers = paths.map((p) => new JournalReader(ctx, p));
  }

  /**
   * Reads the first block of each journal, and checks they all belong to `snapshotId` (or names
   * it). The first journal's snapshot record is returned; --full-copy holds if any run had it.
   */
  async open(snapshotId: string | undefined): Promise<JournalSnapshot | undefined> {
    this.heads = await Promise.all(this.readers.map((r) => r.next()));
    let found: JournalSnapshot | undefined;
    for (const r of this.readers) {
      const s = r.snapshot;
      if (!s) continue;
      const expected = snapshotId ?? found?.snapshotId;
      if (expected !== undefined && s.snapshotId !== expected) throw new UsageError(`journal ${r.path} is of snapshot ${s.snapshotId}, not ${expected}`);
      found ??= { ...s };
      found.fullCopy ||= s.fullCopy;
    }
    return found;
  }

  /** The lowest index still to come, or undefined when every journal is done. */
  peek(): number | undefined {
    let min: number | undefined;
    for (const h of this.heads) if (h && (min === undefined || h.index < min)) min = h.index;
    return min;
  }

  /** Takes the lowest block (the latest journal's, when several have it). */
  async take(): Promise<PutBlock | undefined> {
    const min = this.peek();
    if (min === undefined) return undefined;
    let chosen: PutBlock | undefined;
    for (let i = 0; i < this.heads.length; i++) {
      if (this.heads[i]?.index === min) {
        chosen = this.heads[i];
        this.heads[i] = await this.readers[i].next();
      }
    }
    return chosen;
  }
}
