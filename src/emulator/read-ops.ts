// ListSnapshotBlocks, ListChangedBlocks, GetSnapshotBlock.
import { ServerResponse } from 'node:http';
import { readBlock } from './data';
import { invalid } from './errors';
import { Emulator, Handler, blockIndexParam, mustBeCompleted, throttle } from './context';
import { epochSeconds, wholeParam } from './http';
import { BLOCK_SIZE, MAX_PAGE, MIN_PAGE } from './limits';
import { Snapshot } from './state';
import { blockCount } from './synthetic';
import { chain, changedLayers, nextIn, sourceOf } from './view';

/** How many block indices one ListChangedBlocks page examines: a page can be empty and still carry a NextToken. */
export const CHANGED_SCAN_WINDOW = 32768;

interface Page {
  from: number;
  maxResults: number;
}

/** Where a page starts and how long it is: NextToken wins over StartingBlockIndex. */
function pageOf(emu: Emulator, query: URLSearchParams, op: string, second: string, first: string): Page {
  const asked = wholeParam('MaxResults', query.get('maxResults'), 0, Number.MAX_SAFE_INTEGER);
  // Below 100 the service still returns up to 100; above 10,000 it returns 10,000.
  const clamp = (n: number) => Math.min(MAX_PAGE, Math.max(MIN_PAGE, n));
  const token = query.get('pageToken');
  if (token !== null) {
    const page = emu.tokens.checkPage(token, op, second, first);
    if (!page) throw invalid('INVALID_PAGE_TOKEN', 'The pagination token is not valid for this request or has expired.');
    return { from: page.next, maxResults: clamp(asked ?? page.maxResults) };
  }
  const from = wholeParam('StartingBlockIndex', query.get('startingBlockIndex'), 0, Number.MAX_SAFE_INTEGER) ?? 0;
  return { from, maxResults: clamp(asked ?? MIN_PAGE) };
}

function sendPage(res: ServerResponse, listName: string, items: string[], expiryMs: number, snap: Snapshot, nextToken: string | undefined): void {
  // Built by hand: a page of 10,000 entries is one string join, not an object graph to stringify.
  let body = `{"${listName}":[${items.join(',')}],"ExpiryTime":${epochSeconds(expiryMs)},"VolumeSize":${snap.volumeSize},"BlockSize":${BLOCK_SIZE}`;
  if (nextToken !== undefined) body += `,"NextToken":"${nextToken}"`;
  body += '}';
  if (res.destroyed) return;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export const listSnapshotBlocks: Handler = (emu, _req, res, route, query) => {
  throttle(emu, 'ListSnapshotBlocks', emu.quotas.accountRequest('list-blocks', 'ListSnapshotBlocks'));
  const snap = mustBeCompleted(emu, route.id);
  const { from, maxResults } = pageOf(emu, query, 'list', snap.id, '');
  const layers = chain(emu.reg, snap);
  const end = blockCount(snap.volumeSize);
  const issued = emu.tokens.issueTime();
  const items: string[] = [];
  let i = from;
  while (items.length < maxResults) {
    i = nextIn(emu.reg, layers, i, end);
    if (i < 0) break;
    items.push(`{"BlockIndex":${i},"BlockToken":"${emu.tokens.block(snap.id, i, issued)}"}`);
    i++;
  }
  const more = i >= 0 && nextIn(emu.reg, layers, i, end) >= 0;
  sendPage(res, 'Blocks', items, emu.tokens.blockExpiry(issued), snap, more ? emu.tokens.page('list', snap.id, '', i, maxResults) : undefined);
};

export const listChangedBlocks: Handler = (emu, _req, res, route, query) => {
  throttle(emu, 'ListChangedBlocks', emu.quotas.accountRequest('list-changed', 'ListChangedBlocks'));
  const second = mustBeCompleted(emu, route.id);
  const firstId = query.get('firstSnapshotId') ?? '';
  const first = firstId === '' ? undefined : mustBeCompleted(emu, firstId);
  const secondChain = chain(emu.reg, second);
  let layers = secondChain;
  let firstChain: Snapshot[] = [];
  if (first) {
    const changed = changedLayers(emu.reg, first, second);
    if (!changed) throw invalid('UNRELATED_SNAPSHOTS', `The snapshots ${first.id} and ${second.id} are not from the same lineage.`);
    layers = changed;
    firstChain = chain(emu.reg, first);
  }
  const { from, maxResults } = pageOf(emu, query, 'changed', second.id, firstId);
  const end = Math.max(blockCount(second.volumeSize), first ? blockCount(first.volumeSize) : 0);
  const windowEnd = Math.min(end, from + CHANGED_SCAN_WINDOW);
  const issued = emu.tokens.issueTime();
  const items: string[] = [];
  let i = from;
  while (items.length < maxResults) {
    i = nextIn(emu.reg, layers, i, windowEnd);
    if (i < 0) {
      i = windowEnd;
      break;
    }
    let item = `{"BlockIndex":${i}`;
    if (first && sourceOf(emu.reg, firstChain, i)) item += `,"FirstBlockToken":"${emu.tokens.block(first.id, i, issued)}"`;
    if (sourceOf(emu.reg, secondChain, i)) item += `,"SecondBlockToken":"${emu.tokens.block(second.id, i, issued)}"`;
    items.push(item + '}');
    i++;
  }
  const more = nextIn(emu.reg, layers, i, end) >= 0;
  sendPage(res, 'ChangedBlocks', items, emu.tokens.blockExpiry(issued), second, more ? emu.tokens.page('changed', second.id, firstId, i, maxResults) : undefined);
};

export const getSnapshotBlock: Handler = async (emu, _req, res, route, query) => {
  throttle(emu, 'GetSnapshotBlock', emu.quotas.blockRequest('get', route.id, 'GetSnapshotBlock'));
  const snap = mustBeCompleted(emu, route.id);
  const index = blockIndexParam(route.index, blockCount(snap.volumeSize));
  const token = query.get('blockToken');
  if (token === null || !emu.tokens.checkBlock(token, snap.id, index)) {
    throw invalid('INVALID_BLOCK_TOKEN', `The block token for block ${index} of ${snap.id} is not valid or has expired.`);
  }
  if (emu.chaos.roll('read-block')) throw invalid('INVALID_BLOCK', 'Failed to read block data');
  const block = await readBlock(emu.reg, emu.workers, snap, index);
  if (res.destroyed) return block.release();
  res.on('close', block.release);
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': BLOCK_SIZE,
    'x-amz-data-length': BLOCK_SIZE,
    'x-amz-checksum': block.checksum,
    'x-amz-checksum-algorithm': 'SHA256',
  });
  if (emu.chaos.roll('slow')) return sendSlowly(res, block.data);
  res.end(block.data);
};

/** The slow-body fault: the block in 16 pieces, 25 ms apart. */
function sendSlowly(res: ServerResponse, data: Buffer): void {
  const piece = data.length / 16;
  let sent = 0;
  const next = () => {
    if (res.destroyed) return;
    const end = Math.min(data.length, sent + piece);
    const last = end === data.length;
    if (last) res.end(data.subarray(sent, end));
    else res.write(data.subarray(sent, end));
    sent = end;
    if (!last) setTimeout(next, 25);
  };
  next();
}
