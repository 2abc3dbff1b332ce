'use strict';
// ebs-emulator: parent lineage and merged views, ListSnapshotBlocks / ListChangedBlocks
// pagination, block and page tokens (binding and expiry), and ClientToken idempotency.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { StartSnapshotCommand, ListSnapshotBlocksCommand, ListChangedBlocksCommand, GetSnapshotBlockCommand } = require('@aws-sdk/client-ebs');
const E = require('./lib/emulator');
const { blockOf, makeSnapshot, listAll, listPages, readBlock, readAll, rejects, synthetic, control } = E;

let emu;
let ebs;
before(async () => {
  emu = await E.startEmulator(['--no-quotas', '--completion-ms', '20', '--seed', '2']);
  ebs = emu.ebs();
});
after(() => emu.stop());

const indexes = (blocks) => blocks.map((b) => b.BlockIndex);
const validation = (reason) => ({ name: 'ValidationException', status: 400, reason });

test('a child lists and reads the merged view: its parent\'s blocks plus its own, its own winning', async () => {
  const parent = await makeSnapshot(emu, { VolumeSize: 1, blocks: new Map([[0, blockOf('p0')], [1, blockOf('p1')], [2, blockOf('p2')]]) });
  // Block 3000 lies beyond the parent's 1 GiB extent, inside the child's 2 GiB.
  const child = await makeSnapshot(emu, { VolumeSize: 2, ParentSnapshotId: parent, blocks: new Map([[1, blockOf('c1')], [3000, blockOf('c3000')]]) });
  const grandchild = await makeSnapshot(emu, { VolumeSize: 2, ParentSnapshotId: child, blocks: new Map([[2, blockOf('g2')]]) });

  const merged = await readAll(ebs, child);
  assert.deepEqual([...merged.keys()], [0, 1, 2, 3000]);
  assert.ok(merged.get(0).equals(blockOf('p0')), 'inherited block 0');
  assert.ok(merged.get(1).equals(blockOf('c1')), 'overwritten block 1 shows the child\'s data');
  assert.ok(merged.get(2).equals(blockOf('p2')), 'inherited block 2');
  assert.ok(merged.get(3000).equals(blockOf('c3000')));
  // The parent is unchanged by its child.
  const parentView = await readAll(ebs, parent);
  assert.deepEqual([...parentView.keys()], [0, 1, 2]);
  assert.ok(parentView.get(1).equals(blockOf('p1')));
  // Two generations down.
  const deep = await readAll(ebs, grandchild);
  assert.deepEqual([...deep.keys()], [0, 1, 2, 3000]);
  assert.ok(deep.get(1).equals(blockOf('c1')) && deep.get(2).equals(blockOf('g2')) && deep.get(0).equals(blockOf('p0')));

  // Changed blocks parent -> child: the overwritten one (both tokens) and the new one (second only).
  const changed = await listAll(ebs, child, { first: parent });
  assert.deepEqual(indexes(changed), [1, 3000]);
  assert.ok(changed[0].FirstBlockToken && changed[0].SecondBlockToken, 'block 1 is in both snapshots');
  assert.ok(!changed[1].FirstBlockToken && changed[1].SecondBlockToken, 'block 3000 is absent from the parent');
  assert.ok((await readBlock(ebs, parent, 1, changed[0].FirstBlockToken)).data.equals(blockOf('p1')), 'FirstBlockToken reads the first snapshot');
  assert.ok((await readBlock(ebs, child, 1, changed[0].SecondBlockToken)).data.equals(blockOf('c1')), 'SecondBlockToken reads the second snapshot');

  // Across two generations the changes of both accumulate.
  assert.deepEqual(indexes(await listAll(ebs, grandchild, { first: parent })), [1, 2, 3000]);
  assert.deepEqual(indexes(await listAll(ebs, grandchild, { first: child })), [2]);
  // Nothing changed between a snapshot and itself.
  assert.deepEqual(indexes(await listAll(ebs, child, { first: child })), []);
});

test('ListChangedBlocks between unrelated snapshots: ValidationException UNRELATED_SNAPSHOTS', async () => {
  const a = await makeSnapshot(emu, { blocks: new Map([[0, blockOf('ua')]]) });
  const b = await makeSnapshot(emu, { blocks: new Map([[0, blockOf('ub')]]) });
  await rejects(ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: a, SecondSnapshotId: b })), validation('UNRELATED_SNAPSHOTS'));
});

test('a child smaller than its parent is refused', async () => {
  const parent = await makeSnapshot(emu, { VolumeSize: 2 });
  await rejects(ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: parent })), validation('INVALID_VOLUME_SIZE'));
  const same = await ebs.send(new StartSnapshotCommand({ VolumeSize: 2, ParentSnapshotId: parent }));
  assert.equal(same.ParentSnapshotId, parent);
  // A parent that is still pending cannot be built on.
  await rejects(ebs.send(new StartSnapshotCommand({ VolumeSize: 2, ParentSnapshotId: same.SnapshotId })), { name: 'ValidationException', status: 400 });
});

test('ClientToken: the same request gives the same snapshot, a different one 409 ConflictException', async () => {
  const request = { VolumeSize: 1, Description: 'idempotent', ClientToken: `ct-${process.pid}` };
  const first = await ebs.send(new StartSnapshotCommand(request));
  const again = await ebs.send(new StartSnapshotCommand(request));
  assert.equal(again.SnapshotId, first.SnapshotId);
  assert.equal(again.Status, 'pending');
  await rejects(ebs.send(new StartSnapshotCommand({ ...request, VolumeSize: 2 })), { name: 'ConflictException', status: 409 });
  await rejects(ebs.send(new StartSnapshotCommand({ ...request, Description: 'other' })), { name: 'ConflictException', status: 409 });
  // A different token is a different snapshot.
  const other = await ebs.send(new StartSnapshotCommand({ ...request, ClientToken: `ct2-${process.pid}` }));
  assert.notEqual(other.SnapshotId, first.SnapshotId);
});

test('pagination: MaxResults bounds, full pages, NextToken precedence, no NextToken on the last page', async () => {
  // About 1,000 of the 2,048 blocks listed, at places only the server knows.
  const id = await synthetic(emu, { VolumeSize: 1, Pattern: 'every', Seed: 3, ZeroFraction: 0, SparseFraction: 0.5 });
  const [whole] = await listPages(ebs, id, { MaxResults: 10000 });
  const all = indexes(whole.Blocks);
  assert.equal(whole.NextToken, undefined);
  assert.ok(all.length > 850 && all.length < 1200, `${all.length} of 2048 blocks listed with SparseFraction 0.5`);
  assert.ok(all.every((v, i) => i === 0 || v > all[i - 1]), 'ascending and unique');

  // Pages of MaxResults, every one full but the last; the last without NextToken.
  for (const MaxResults of [100, 250, 999]) {
    const pages = await listPages(ebs, id, { MaxResults });
    assert.deepEqual(pages.flatMap((p) => indexes(p.Blocks)), all, `pages of ${MaxResults} put together`);
    pages.slice(0, -1).forEach((p, n) => {
      assert.equal(p.Blocks.length, MaxResults, `page ${n} of ${MaxResults}`);
      assert.ok(p.NextToken, `page ${n} of ${MaxResults} has a NextToken`);
    });
    assert.equal(pages.at(-1).NextToken, undefined);
  }
  // The default page size is 100; a MaxResults below 100 still gives 100.
  assert.equal((await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id }))).Blocks.length, 100);
  assert.equal((await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 1 }))).Blocks.length, 100);
  // Above the 10,000 maximum: refused, or answered with at most 10,000 (AWS documents only the range).
  const big = await synthetic(emu, { VolumeSize: 8, Pattern: 'zeros', Seed: 3, ZeroFraction: 0, SparseFraction: 0 });
  const over = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: big, MaxResults: 20000 })).catch((e) => e);
  if (over instanceof Error) assert.equal(over.name, 'ValidationException', over.message);
  else assert.equal(over.Blocks.length, 10000, 'a page never exceeds 10,000 blocks');

  // StartingBlockIndex alone starts there; with a NextToken, the token wins.
  const from = all[500];
  const tail = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, StartingBlockIndex: from, MaxResults: 100 }));
  assert.deepEqual(indexes(tail.Blocks), all.slice(500, 600));
  const first = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 100 }));
  const second = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 100, NextToken: first.NextToken, StartingBlockIndex: all[700] }));
  assert.deepEqual(indexes(second.Blocks), all.slice(100, 200), 'NextToken takes precedence over StartingBlockIndex');
  // Past the last listed block: an empty last page.
  const beyond = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, StartingBlockIndex: all.at(-1) + 1 }));
  assert.deepEqual(beyond.Blocks, []);
  assert.equal(beyond.NextToken, undefined);
});

test('ListChangedBlocks over a range with few changes: empty pages carry a NextToken', async () => {
  // 64 GiB = 131,072 blocks; the child changes two far apart.
  const parent = await synthetic(emu, { VolumeSize: 64, Pattern: 'zeros', Seed: 4, ZeroFraction: 0, SparseFraction: 0.9 });
  const child = await makeSnapshot(emu, { VolumeSize: 64, ParentSnapshotId: parent, blocks: new Map([[5, blockOf('lc5')], [130000, blockOf('lc130000')]]) });
  const pages = await listPages(ebs, child, { first: parent, MaxResults: 100 });
  assert.deepEqual(pages.flatMap((p) => indexes(p.ChangedBlocks)), [5, 130000]);
  assert.equal(pages.at(-1).NextToken, undefined);
  // AWS: a page may be empty and still carry a NextToken, when changes are scarce.
  pages.slice(0, -1).forEach((p, n) => assert.ok(p.NextToken, `page ${n} is not the last and has a NextToken`));
  const empty = pages.filter((p) => p.ChangedBlocks.length === 0 && p.NextToken);
  assert.ok(empty.length > 0, `expected an empty page with a NextToken between blocks 5 and 130000; got ${pages.length} pages`);
});

test('block tokens are bound to their snapshot and block index', async () => {
  const a = await makeSnapshot(emu, { blocks: new Map([[3, blockOf('t3')], [4, blockOf('t4')]]) });
  const b = await makeSnapshot(emu, { blocks: new Map([[3, blockOf('tb3')]]) });
  const [t3, t4] = await listAll(ebs, a);
  const get = (SnapshotId, BlockIndex, BlockToken) => ebs.send(new GetSnapshotBlockCommand({ SnapshotId, BlockIndex, BlockToken }));
  await rejects(get(a, 4, t3.BlockToken), validation('INVALID_BLOCK_TOKEN'));
  await rejects(get(b, 3, t3.BlockToken), validation('INVALID_BLOCK_TOKEN'));
  await rejects(get(a, 3, 'not-a-token'), validation('INVALID_BLOCK_TOKEN'));
  const altered = t3.BlockToken.slice(0, -2) + (t3.BlockToken.endsWith('AA') ? 'BB' : 'AA');
  await rejects(get(a, 3, altered), validation('INVALID_BLOCK_TOKEN'));
  // The right token still works after all that.
  assert.ok((await readBlock(ebs, a, 4, t4.BlockToken)).data.equals(blockOf('t4')));
});

test('page tokens are bound to their operation and snapshots', async () => {
  const id = await synthetic(emu, { VolumeSize: 1, Pattern: 'every2nd', Seed: 5, ZeroFraction: 0, SparseFraction: 0 });
  const other = await synthetic(emu, { VolumeSize: 1, Pattern: 'every2nd', Seed: 6, ZeroFraction: 0, SparseFraction: 0 });
  const { NextToken } = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
  assert.ok(NextToken);
  await rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: other, NextToken })), validation('INVALID_PAGE_TOKEN'));
  await rejects(ebs.send(new ListChangedBlocksCommand({ SecondSnapshotId: id, NextToken })), validation('INVALID_PAGE_TOKEN'));
  await rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken: 'garbage' })), validation('INVALID_PAGE_TOKEN'));
  const next = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken }));
  assert.equal(next.Blocks[0].BlockIndex, 100);
});

test('POST /_emulator/expire-tokens: earlier block and page tokens are refused, new ones work', async () => {
  const id = await synthetic(emu, { VolumeSize: 1, Pattern: 'every4th', Seed: 7, ZeroFraction: 0, SparseFraction: 0 });
  const page = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
  assert.equal((await control(emu, 'POST', 'expire-tokens')).status, 204);
  await rejects(ebs.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 0, BlockToken: page.Blocks[0].BlockToken })), validation('INVALID_BLOCK_TOKEN'));
  await rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken: page.NextToken })), validation('INVALID_PAGE_TOKEN'));
  // Listing again is the fix.
  const fresh = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
  const got = await readBlock(ebs, id, 0, fresh.Blocks[0].BlockToken);
  assert.equal(got.checksum, E.b64sha(got.data));
  assert.equal((await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken: fresh.NextToken }))).Blocks[0].BlockIndex, 100);
});

test('--block-token-ttl and --page-token-ttl: tokens expire after their lifetime', async () => {
  const short = await E.startEmulator(['--no-quotas', '--block-token-ttl', '2', '--page-token-ttl', '2', '--completion-ms', '0']);
  try {
    const s = short.ebs();
    const id = await synthetic(short, { VolumeSize: 1, Pattern: 'every', Seed: 8, ZeroFraction: 0, SparseFraction: 0 });
    const page = await s.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
    const left = page.ExpiryTime - Date.now();
    assert.ok(left <= 2000 && left > -1000, `ExpiryTime says the block tokens live ${left} ms more, expected about 2 s`);
    // Fresh tokens work ...
    await readBlock(s, id, 0, page.Blocks[0].BlockToken);
    // ... and are refused once their 2 s are surely over.
    await new Promise((r) => setTimeout(r, 3200));
    await rejects(s.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 1, BlockToken: page.Blocks[1].BlockToken })), validation('INVALID_BLOCK_TOKEN'));
    await rejects(s.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken: page.NextToken })), validation('INVALID_PAGE_TOKEN'));
  } finally {
    await short.stop();
  }
});
