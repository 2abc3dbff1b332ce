import { command, EXIT_STATUS_TEXT, type Context } from '../core/command';
import { EbsSession, ebsFlags, ebsOptionsText, ebsSettings } from '../core/ebs-client';
import { listPages, MAX_PAGE, type Listed } from '../core/ebs-list';
import { planRecord, snapshotIdArg } from '../core/ebs-records';
import { InvalidInputError, UsageError } from '../core/errors';
import { isBlock, isVolume, LINE, ZERO_BLOCK_SHA256, type BlockRec, type Rec, type VolumeRec } from '../core/records';
import { badRecord, transform } from '../core/stage';
import type { Encoder } from '../core/encode';

const USAGE = `Usage: delta --parent SNAPSHOT-ID [options] [FILE|-]

Turns a block stream of snapshot B (from ebs-blocks, with or without data) into the blocks
that differ between the parent snapshot A and B, by ListChangedBlocks(A, B):
  - a block of the stream that changed since A passes on, with B's fresh token;
  - a block of the stream that did not change is dropped;
  - a block A has and B does not (B's volume reads zeros there) comes out as a zero block,
    so a delta applied to a copy of A (file-write --in-place, ebs-put --parent) yields B exactly.
The header gains "parent": A. The stream and the changed-block listing are both in ascending
order and are merged as they come, a page at a time: memory stays flat whatever the volume's
size. A and B must be of the same lineage (otherwise the service answers UNRELATED_SNAPSHOTS,
status 1). Blocks B has that the stream does not list (a filtered manifest) stay out.

Options:
  --parent ID          the snapshot A to compare with (required)
${ebsOptionsText(1)}
  -h, --help           show this text

Examples:
  ebs-blocks snap-0b | delta --parent snap-0a | ebs-get | file-write --in-place copy-of-a.img
  ebs-blocks snap-0b | delta --parent snap-0a | ebs-get | ebs-put --parent snap-0a-copy > put.journal
  ebs-blocks snap-0b | delta --parent snap-0a | count --human

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'delta',
  usage: USAGE,
  flags: ebsFlags({ string: ['parent'] }),
  positionals: { max: 1 },
  async run(args, ctx) {
    if (args.parent === undefined) throw new UsageError('--parent is required');
    const parent = snapshotIdArg(args.parent, '--parent');
    const session = new EbsSession(ctx, ebsSettings(args, 1));
    const merge = new ChangedMerge(ctx, session, parent);
    try {
      await transform(ctx, { input: args._[0], frames: 'passed-on' }, async function* (batches, out) {
        for await (const batch of batches) {
          for (const rec of batch) {
            if (isVolume(rec)) merge.header(rec, out);
            else if (isBlock(rec)) await merge.block(rec, out);
            else merge.emit(out, rec);
          }
          yield out.take();
        }
        await merge.rest(out);
        if (session.settings.dryRun) out.push(planRecord(ctx.command, { snapshotId: merge.snapshotId, parent, calls: { ListChangedBlocks: merge.pages }, blocks: merge.changed }));
        yield out.take();
      });
    } finally {
      session.close();
    }
  },
});

class ChangedMerge {
  snapshotId: string | undefined;
  pages = 0;
  changed = 0;
  private listing: AsyncIterator<{ blocks: Listed[] }> | undefined;
  private page: Listed[] = [];
  private at = 0;
  private previous = -1;

  constructor(
    private readonly ctx: Context,
    private readonly session: EbsSession,
    private readonly parent: string,
  ) {}

  emit(out: Encoder, rec: Rec): void {
    if (!this.session.settings.dryRun) out.push(rec);
  }

  header(rec: VolumeRec, out: Encoder): void {
    const id = rec.snapshotId;
    if (typeof id !== 'string' || id === '') throw badRecord(this.ctx, rec, 'the volume header names no "snapshotId": delta compares EBS snapshots (list one with ebs-blocks)');
    if (this.snapshotId !== undefined) {
      if (id === this.snapshotId) return;
      throw badRecord(this.ctx, rec, `a second volume (${id} after ${this.snapshotId}): delta takes one snapshot's blocks`);
    }
    this.snapshotId = id;
    this.listing = listPages(this.session, id, { first: this.parent, maxResults: MAX_PAGE })[Symbol.asyncIterator]();
    this.emit(out, { ...rec, parent: this.parent });
  }

  /** The next changed block, without taking it; undefined after the last. */
  private async peek(): Promise<Listed | undefined> {
    while (this.at >= this.page.length) {
      const got = await this.listing!.next();
      if (got.done) return undefined;
      this.pages++;
      this.page = got.value.blocks;
      this.at = 0;
    }
    return this.page[this.at];
  }

  async block(rec: BlockRec, out: Encoder): Promise<void> {
    if (this.snapshotId === undefined) throw badRecord(this.ctx, rec, 'a block before any volume header');
    const index = rec.index;
    if (!Number.isSafeInteger(index) || index < 0) throw badRecord(this.ctx, rec, `block record has an invalid "index": ${JSON.stringify(index)}`);
    if (index <= this.previous) throw badRecord(this.ctx, rec, `block ${index} comes after block ${this.previous}: blocks must be in ascending order`);
    this.previous = index;
    await this.upTo(index, out);
    const changed = await this.peek();
    if (changed?.index !== index) return; // unchanged since the parent
    this.at++;
    if (changed.token === undefined) {
      throw new InvalidInputError(`${this.ctx.command}: ${this.ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}: block ${index} is in the stream, but ${this.snapshotId} does not have it: the stream is not a listing of ${this.snapshotId}`);
    }
    this.changed++;
    this.emit(out, { ...rec, token: changed.token });
  }

  /** After a valid trailer: the changed blocks past the stream's last. */
  async rest(out: Encoder): Promise<void> {
    if (this.listing) await this.upTo(Infinity, out);
  }

  /** Changed blocks below `limit` that the stream does not list: zeros where B lacks them. */
  private async upTo(limit: number, out: Encoder): Promise<void> {
    for (let c = await this.peek(); c && c.index < limit; c = await this.peek()) {
      this.at++;
      if (c.token !== undefined) continue; // B has it; the stream left it out
      this.changed++;
      this.emit(out, { type: 'block', index: c.index, sha256: ZERO_BLOCK_SHA256, zero: true });
    }
  }
}
