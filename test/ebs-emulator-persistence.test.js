'use strict';
// ebs-emulator: --state DIR keeps snapshots and blocks across a restart; synthetic snapshots
// read back as their pattern (computed here independently), and a 16 TiB one costs no memory.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { StartSnapshotCommand, ListSnapshotBlocksCommand } = require('@aws-sdk/client-ebs');
const E = require('./lib/emulator');
const { BLOCK, blockOf, b64sha, putBlock, complete, makeSnapshot, listAll, listPages, readBlock, readAll } = E;
const { PATTERNS, SECTOR } = require('./lib/pattern');
const { tmpdir } = require('./lib/run');

/** Block `index` of an FSP pattern volume, from test/lib/pattern.js's definition of the pattern. */
function patternBlock(pattern, index) {
  const out = Buffer.alloc(BLOCK);
  const select = PATTERNS[pattern];
  for (let o = 0; o < BLOCK; o += SECTOR) {
    const sector = (index * BLOCK + o) / SECTOR;
    if (select(sector)) out.writeUInt32LE(sector % 2 ** 32, o);
  }
  return out;
}

/** Sizes of the regular files under `dir`, in bytes, counting only allocated space. */
function allocated(dir) {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += fs.statSync(path.join(e.parentPath ?? e.path, e.name)).blocks * 512;
  }
  return total;
}

test('--state DIR: after a restart, completed and pending snapshots are as they were', async () => {
  const dir = path.join(tmpdir('sluice-emu-state-'), 'state');
  const done = new Map([[0, blockOf('s0')], [7, blockOf('s7')], [2047, Buffer.alloc(BLOCK)], [100, blockOf('s100')]]);
  const pendingBlocks = new Map([[1, blockOf('p1')], [2, blockOf('p2')]]);
  let first = await E.startEmulator(['--no-quotas', '--state', dir, '--completion-ms', '0']);
  let completedId;
  let childId;
  let pendingId;
  let tokens;
  try {
    completedId = await makeSnapshot(first, { VolumeSize: 1, blocks: done, Description: 'kept' });
    childId = await makeSnapshot(first, { VolumeSize: 2, ParentSnapshotId: completedId, blocks: new Map([[7, blockOf('c7')]]) });
    const ebs = first.ebs();
    ({ SnapshotId: pendingId } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: 'kept-token' })));
    for (const [i, d] of pendingBlocks) await putBlock(ebs, pendingId, i, d);
    tokens = await listAll(ebs, completedId);
  } finally {
    const { code } = await first.stop();
    assert.equal(code, 0, `stopped with SIGTERM: exit 0\n${first.stderr()}`);
  }
  // The block data is on disk, not only in the memory of the stopped process.
  assert.ok(allocated(dir) >= 7 * BLOCK, `${allocated(dir)} bytes allocated under ${dir}`);

  const second = await E.startEmulator(['--no-quotas', '--state', dir, '--completion-ms', '0']);
  try {
    const ebs = second.ebs();
    const ec2 = second.ec2();
    const desc = await E.describeSnapshot(ec2, completedId);
    assert.equal(desc.State, 'completed');
    assert.equal(desc.Description, 'kept');
    const back = await readAll(ebs, completedId);
    assert.deepEqual([...back.keys()], [...done.keys()].sort((a, b) => a - b));
    for (const [i, d] of done) assert.ok(back.get(i).equals(d), `block ${i} of ${completedId} after the restart`);
    const child = await readAll(ebs, childId);
    assert.ok(child.get(7).equals(blockOf('c7')) && child.get(0).equals(done.get(0)), 'the lineage survives');
    // A block token handed out before the restart still works.
    const t7 = tokens.find((t) => t.BlockIndex === 7);
    assert.ok((await readBlock(ebs, completedId, 7, t7.BlockToken)).data.equals(done.get(7)));

    // The pending snapshot is still pending, keeps its blocks and its ClientToken, and completes.
    assert.equal((await E.describeSnapshot(ec2, pendingId)).State, 'pending');
    const retry = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ClientToken: 'kept-token' }));
    assert.equal(retry.SnapshotId, pendingId);
    const more = blockOf('p3');
    await putBlock(ebs, pendingId, 3, more);
    const all = new Map([...pendingBlocks, [3, more]]);
    await complete(ebs, pendingId, all);
    assert.equal((await E.waitSettled(ec2, pendingId)).State, 'completed');
    const pend = await readAll(ebs, pendingId);
    assert.deepEqual([...pend.keys()], [1, 2, 3]);
    for (const [i, d] of all) assert.ok(pend.get(i).equals(d), `block ${i} of ${pendingId}`);
  } finally {
    assert.equal((await second.stop()).code, 0);
  }
});

test('--synthetic FSP patterns read back as the pattern, with matching checksums', async () => {
  const ids = { every: 'snap-00000000000000001', every2nd: 'snap-00000000000000002', every4th: 'snap-00000000000000004', every3rd4th: 'snap-00000000000000034' };
  const flags = Object.entries(ids).flatMap(([p, id]) => ['--synthetic', `id=${id},size=2,pattern=${p}`]);
  const emu = await E.startEmulator(['--no-quotas', ...flags]);
  try {
    const ebs = emu.ebs();
    for (const [pattern, id] of Object.entries(ids)) {
      const desc = await E.describeSnapshot(emu.ec2(), id);
      assert.equal(desc.State, 'completed');
      assert.equal(desc.VolumeSize, 2);
      const listed = await listAll(ebs, id, { MaxResults: 10000 });
      assert.equal(listed.length, 4096, `${pattern}: every block of 2 GiB listed`);
      for (const index of [0, 1, 2048, 4095]) {
        const got = await readBlock(ebs, id, index, listed[index].BlockToken);
        assert.ok(got.data.equals(patternBlock(pattern, index)), `${pattern} block ${index}`);
        assert.equal(got.checksum, b64sha(got.data));
      }
    }
  } finally {
    await emu.stop();
  }
});

test('synthetic random data: the same seed gives the same bytes, zero and sparse fractions hold', async () => {
  const emu = await E.startEmulator(['--no-quotas', '--synthetic', 'id=snap-0000000000000000a,size=1,pattern=random,seed=42']);
  try {
    const ebs = emu.ebs();
    const again = await E.synthetic(emu, { VolumeSize: 1, Pattern: 'random', Seed: 42, ZeroFraction: 0, SparseFraction: 0 });
    const other = await E.synthetic(emu, { VolumeSize: 1, Pattern: 'random', Seed: 43, ZeroFraction: 0, SparseFraction: 0 });
    const read = async (id, i) => readBlock(ebs, id, i, (await listAll(ebs, id, { MaxResults: 10000 }))[i].BlockToken);
    const a = await read('snap-0000000000000000a', 5);
    const b = await read(again, 5);
    const c = await read(other, 5);
    assert.ok(a.data.equals(b.data), 'seed 42 twice: the same block');
    assert.ok(!a.data.equals(c.data), 'seeds 42 and 43 differ');
    assert.ok(!a.data.equals(Buffer.alloc(BLOCK)));
    assert.ok(!a.data.equals(await read('snap-0000000000000000a', 6).then((x) => x.data)), 'blocks differ from each other');

    const mixed = await E.synthetic(emu, { VolumeSize: 1, Pattern: 'random', Seed: 44, ZeroFraction: 0.3, SparseFraction: 0.4 });
    const listed = await listAll(ebs, mixed, { MaxResults: 10000 });
    assert.ok(listed.length > 2048 * 0.5 && listed.length < 2048 * 0.7, `${listed.length} of 2048 listed with sparse 0.4`);
    let zeros = 0;
    const sample = listed.filter((_, n) => n % 4 === 0);
    for (const { BlockIndex, BlockToken } of sample) {
      const got = await readBlock(ebs, mixed, BlockIndex, BlockToken);
      assert.equal(got.checksum, b64sha(got.data));
      if (got.data.equals(Buffer.alloc(BLOCK))) zeros++;
    }
    const share = zeros / sample.length;
    assert.ok(share > 0.15 && share < 0.45, `${zeros} of ${sample.length} listed blocks are zeros with zero 0.3`);
  } finally {
    await emu.stop();
  }
});

test('a 16 TiB synthetic snapshot lists its first and last pages and reads its last block in little memory', async () => {
  const id = 'snap-0000000000000016f';
  const emu = await E.startEmulator(['--no-quotas', '--synthetic', `id=${id},size=16384,pattern=every`, '--completion-ms', '0']);
  try {
    const ebs = emu.ebs();
    const blocks = 16384 * 2048;
    const first = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, MaxResults: 10000 }));
    assert.equal(first.VolumeSize, 16384);
    assert.equal(first.Blocks.length, 10000);
    assert.equal(first.Blocks[9999].BlockIndex, 9999);
    assert.ok(first.NextToken);
    const lastPages = await listPages(ebs, id, { StartingBlockIndex: blocks - 150, MaxResults: 100 });
    const tail = lastPages.flatMap((p) => p.Blocks);
    assert.deepEqual(tail.map((b) => b.BlockIndex), Array.from({ length: 150 }, (_, k) => blocks - 150 + k));
    assert.equal(lastPages.length, 2);
    assert.equal(lastPages[1].NextToken, undefined);
    const last = tail.at(-1);
    const got = await readBlock(ebs, id, last.BlockIndex, last.BlockToken);
    // Sector numbers there exceed 2^32: the pattern holds them modulo 2^32.
    assert.ok(got.data.equals(patternBlock('every', last.BlockIndex)), 'the last block of 16 TiB');
    // Lineage over a synthetic parent of that size: a 16 TiB child lists the parent's end too.
    const child = await makeSnapshot(emu, { VolumeSize: 16384, ParentSnapshotId: id, blocks: new Map([[blocks - 1, blockOf('end')]]) });
    const childTail = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: child, StartingBlockIndex: blocks - 2 }));
    assert.deepEqual(childTail.Blocks.map((b) => b.BlockIndex), [blocks - 2, blocks - 1]);
    const changed = await listAll(ebs, child, { first: id, StartingBlockIndex: blocks - 300 });
    assert.deepEqual(changed.map((b) => b.BlockIndex), [blocks - 1]);
    const rss = emu.rss();
    assert.ok(rss < 300 * 1024, `server RSS ${Math.round(rss / 1024)} MiB after listing and reading a 16 TiB snapshot`);
  } finally {
    await emu.stop();
  }
});

test('POST /_emulator/reset forgets every snapshot', async () => {
  const emu = await E.startEmulator(['--no-quotas', '--synthetic', 'id=snap-000000000000000bb,size=1,pattern=zeros']);
  try {
    const mine = await makeSnapshot(emu, { blocks: new Map([[0, blockOf('r')]]) });
    assert.equal((await E.control(emu, 'POST', 'reset')).status, 204);
    for (const id of [mine, 'snap-000000000000000bb']) {
      await E.rejects(emu.ebs().send(new ListSnapshotBlocksCommand({ SnapshotId: id })), { name: 'ResourceNotFoundException', status: 404 });
    }
    assert.equal((await E.control(emu, 'GET', 'stats')).json().snapshots, 0);
  } finally {
    await emu.stop();
  }
});

test('--state DIR: a --synthetic without id is the same snapshot after a restart, and expired tokens stay expired', async () => {
  const dir = path.join(tmpdir('sluice-emu-restart-'), 'state');
  const flags = ['--no-quotas', '--state', dir, '--synthetic', 'size=1,pattern=every4th'];
  const ids = async (emu) => (await E.control(emu, 'GET', 'stats')).json().snapshots;
  let first = await E.startEmulator(flags);
  let id;
  let token;
  try {
    const listed = await listAll(first.ebs(), await onlySnapshot(first));
    id = await onlySnapshot(first);
    token = listed[0].BlockToken;
    assert.equal((await E.control(first, 'POST', 'expire-tokens')).status, 204);
  } finally {
    assert.equal((await first.stop()).code, 0);
  }
  const second = await E.startEmulator(flags);
  try {
    assert.equal(await ids(second), 1, 'the restart added no second synthetic snapshot');
    assert.equal(await onlySnapshot(second), id);
    await E.rejects(readBlock(second.ebs(), id, 0, token), { name: 'ValidationException', reason: 'INVALID_BLOCK_TOKEN' });
    // A fresh listing reads the block as its pattern.
    const [b0] = await listAll(second.ebs(), id);
    assert.ok((await readBlock(second.ebs(), id, b0.BlockIndex, b0.BlockToken)).data.equals(patternBlock('every4th', b0.BlockIndex)));
  } finally {
    assert.equal((await second.stop()).code, 0);
  }
});

/** The id of the one snapshot an emulator holds, through EC2 DescribeSnapshots. */
async function onlySnapshot(emu) {
  const { DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');
  const { Snapshots } = await emu.ec2().send(new DescribeSnapshotsCommand({}));
  assert.equal(Snapshots.length, 1, `one snapshot: ${JSON.stringify(Snapshots.map((s) => s.SnapshotId))}`);
  return Snapshots[0].SnapshotId;
}
