// Fresh block tokens for blocks whose listed token has expired (after about seven days, or
// when the snapshot is listed again). One page of ListSnapshotBlocks from the failed block on
// gives new tokens for it and the 9,999 listed after it, which are usually the very blocks
// that fail next: a stream read in order needs one listing per 10,000 blocks, not one per block.
import type { EbsSession } from './ebs-client';
import { listPages, MAX_PAGE } from './ebs-list';

export class TokenRefresher {
  private window = new Map<number, string>();
  private from = 0;
  private to = -1;
  private listing: Promise<void> | undefined;
  refreshes = 0;

  constructor(
    private readonly session: EbsSession,
    private readonly snapshotId: string,
  ) {}

  /** The token to use for a block: a refreshed one once its window was listed again. */
  current(index: number, listed: string | undefined): string | undefined {
    if (index >= this.from && index <= this.to) return this.window.get(index) ?? listed;
    return listed;
  }

  /**
   * A token for `index` other than `failed`, listing again if need be; undefined when the
   * snapshot no longer lists the block. Listings run one at a time, each from the index of the
   * block that asked for it: a block below a listing's start waits for it, then lists its own.
   */
  async refresh(index: number, failed: string | undefined): Promise<string | undefined> {
    for (;;) {
      const known = index >= this.from && index <= this.to ? this.window.get(index) : undefined;
      if (known !== undefined && known !== failed) return known;
      if (!this.listing) break;
      await this.listing;
    }
    this.listing = this.list(index).finally(() => (this.listing = undefined));
    await this.listing;
    const fresh = this.window.get(index);
    return fresh === failed ? undefined : fresh;
  }

  private async list(index: number): Promise<void> {
    this.refreshes++;
    for await (const page of listPages(this.session, this.snapshotId, { start: index, maxResults: MAX_PAGE, prefetch: false })) {
      const window = new Map<number, string>();
      for (const b of page.blocks) if (b.token !== undefined) window.set(b.index, b.token);
      this.window = window;
      this.from = index;
      // A short last page covers the rest of the volume.
      this.to = page.blocks.length < MAX_PAGE ? Number.MAX_SAFE_INTEGER : page.blocks[page.blocks.length - 1].index;
      return;
    }
  }
}
