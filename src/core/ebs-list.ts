// Block listings of EBS snapshots, one page at a time: the largest page the service gives
// (10,000 blocks), the next page asked for while the caller works on this one, and never more
// than those two in memory, so a 16 TiB volume (33.5 M blocks) lists in flat memory.
//
// A NextToken lives an hour; a consumer that is slower than that (a long ebs-get) would find it
// expired. The listing then starts again after the last block it gave, by StartingBlockIndex.
import { ListChangedBlocksCommand, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import type { EbsSession } from './ebs-client';
import { describeSnapshotFields } from './ebs-describe';
import { EbsCallError, describeError, describeWhere } from './ebs-retry';
import { SluiceError } from './errors';

export const MAX_PAGE = 10_000;

export interface Listed {
  index: number;
  /** The block's token in the listed snapshot (the second one, for changed blocks); absent when it lacks the block. */
  token?: string;
  /** Changed blocks: the token in the first snapshot, absent when it lacks the block. */
  firstToken?: string;
}

export interface Page {
  blocks: Listed[];
  /** Volume size in GiB, as the page reports it. */
  volumeSize: number;
  blockSize: number;
}

export interface ListOptions {
  start?: number;
  /** ListChangedBlocks from this snapshot to the listed one. */
  first?: string;
  maxResults?: number;
  /** Ask for the next page while the caller works on this one (default true). */
  prefetch?: boolean;
}

/** The pages of ListSnapshotBlocks, or of ListChangedBlocks when `first` is given. */
export async function* listPages(session: EbsSession, snapshotId: string, opts: ListOptions = {}): AsyncGenerator<Page> {
  const maxResults = opts.maxResults ?? MAX_PAGE;
  let resumeAt = opts.start ?? 0;
  let nextToken: string | undefined;
  const fetch = (token: string | undefined, at: number) => fetchPage(session, snapshotId, opts.first, maxResults, token, at);
  let pending: Promise<{ page: Page; next?: string }> | undefined = fetch(undefined, resumeAt);
  while (pending) {
    let got;
    try {
      got = await pending;
    } catch (err) {
      if (!(err instanceof EbsCallError && err.kind === 'page-token') || nextToken === undefined) throw err;
      // The page token expired while we waited: go on from the last block given.
      session.retry.retries.set('page-token', (session.retry.retries.get('page-token') ?? 0) + 1);
      nextToken = undefined;
      pending = fetch(undefined, resumeAt);
      continue;
    }
    nextToken = got.next;
    const last = got.page.blocks[got.page.blocks.length - 1];
    if (last) resumeAt = last.index + 1;
    // Ask for the next page while this one is consumed.
    if (opts.prefetch === false) {
      yield got.page;
      pending = nextToken === undefined ? undefined : fetch(nextToken, resumeAt);
      continue;
    }
    pending = nextToken === undefined ? undefined : fetch(nextToken, resumeAt);
    pending?.catch(() => undefined);
    yield got.page;
  }
}

async function fetchPage(session: EbsSession, snapshotId: string, first: string | undefined, maxResults: number, nextToken: string | undefined, start: number): Promise<{ page: Page; next?: string }> {
  const op = first === undefined ? 'ListSnapshotBlocks' : 'ListChangedBlocks';
  const signal = session.ctx.signal;
  const where = { op, snapshotId };
  // An expired page token fails here as an EbsCallError of kind page-token: listPages restarts.
  const paging = nextToken === undefined ? { StartingBlockIndex: start } : { NextToken: nextToken };
  if (first === undefined) {
    const out = await session.retry.run(where, () => session.ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, MaxResults: maxResults, ...paging }), { abortSignal: signal }));
    const blocks = (out.Blocks ?? []).map((b) => ({ index: b.BlockIndex!, token: b.BlockToken }));
    return { page: checked(where, { blocks, volumeSize: out.VolumeSize ?? 0, blockSize: out.BlockSize ?? 0 }, start), next: out.NextToken ?? undefined };
  }
  const out = await session.retry.run(
    where,
    () => session.ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: first, SecondSnapshotId: snapshotId, MaxResults: maxResults, ...paging }), { abortSignal: signal }),
  );
  const blocks = (out.ChangedBlocks ?? []).map((b) => ({ index: b.BlockIndex!, token: b.SecondBlockToken, firstToken: b.FirstBlockToken }));
  return { page: checked(where, { blocks, volumeSize: out.VolumeSize ?? 0, blockSize: out.BlockSize ?? 0 }, start), next: out.NextToken ?? undefined };
}

function checked(where: { op: string; snapshotId: string }, page: Page, start: number): Page {
  let previous = start - 1;
  for (const b of page.blocks) {
    if (!Number.isSafeInteger(b.index) || b.index <= previous) {
      throw new SluiceError(`${describeWhere(where)}: the service listed block ${b.index} after ${previous}: blocks must come once each, ascending`);
    }
    previous = b.index;
  }
  return page;
}

export interface SnapshotInfo {
  snapshotId: string;
  state?: string;
  volumeSize?: number;
  encrypted?: boolean;
  progress?: string;
  stateMessage?: string;
}

/** EC2 DescribeSnapshots of one snapshot (its state, size and encryption). */
export async function describeSnapshot(session: EbsSession, snapshotId: string): Promise<SnapshotInfo> {
  const snap = await session.retry.run({ op: 'DescribeSnapshots', snapshotId }, () => describeSnapshotFields(session, snapshotId));
  if (!snap) throw new SluiceError(`${snapshotId}: DescribeSnapshots: no such snapshot`);
  const volumeSize = snap.volumeSize === undefined ? undefined : Number(snap.volumeSize);
  return {
    snapshotId,
    state: snap.status,
    volumeSize: Number.isSafeInteger(volumeSize) ? volumeSize : undefined,
    encrypted: snap.encrypted === 'true' ? true : snap.encrypted === 'false' ? false : undefined,
    progress: snap.progress,
    stateMessage: snap.statusMessage,
  };
}

/** Like describeSnapshot, but a refusal (no EC2 permission) gives undefined and a note. */
export async function describeIfAllowed(session: EbsSession, snapshotId: string): Promise<SnapshotInfo | undefined> {
  try {
    return await describeSnapshot(session, snapshotId);
  } catch (err) {
    if (/InvalidSnapshot\.NotFound|no such snapshot/.test(String((err as Error).message))) throw err;
    session.ctx.log(`${snapshotId}: cannot describe the snapshot (${describeError(err)}); its encryption is taken as unknown`);
    return undefined;
  }
}
