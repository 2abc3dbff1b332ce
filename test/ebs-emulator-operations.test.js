'use strict';
// ebs-emulator, the operations and their wire format: the six EBS Direct operations through the
// AWS SDK and as raw HTTP (status lines, x-amz-* headers, rest-json errors), EC2
// DescribeSnapshots, and the pending -> completed lifecycle.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const { BIN } = require('./lib/run');
const {
  StartSnapshotCommand,
  ListSnapshotBlocksCommand,
  ListChangedBlocksCommand,
  GetSnapshotBlockCommand,
  CompleteSnapshotCommand,
} = require('@aws-sdk/client-ebs');
const { DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');
const E = require('./lib/emulator');
const { BLOCK, blockOf, b64sha, putBlock, complete, makeSnapshot, listAll, readBlock, readAll, rejects, raw } = E;

// A long completion delay in the test that looks at `pending` right after CompleteSnapshot.
const COMPLETION_MS = 2500;
let emu;
let ebs;
let ec2;
before(async () => {
  emu = await E.startEmulator(['--no-quotas', '--completion-ms', '20', '--seed', '1']);
  ebs = emu.ebs();
  ec2 = emu.ec2();
});
after(async () => {
  const { code } = await emu.stop();
  assert.equal(code, 0, `SIGTERM should end the server with status 0\n${emu.stderr()}`);
  assert.equal(emu.stdoutAfterRecord(), '', 'stdout carries the endpoint record and nothing else');
});

/** The error type of a raw response: x-amzn-ErrorType without any ":namespace" suffix. */
const errorType = (r) => String(r.headers['x-amzn-errortype'] ?? '').split(':')[0];

test('the endpoint record is one JSON line with a loopback URL, the region and the pid', () => {
  assert.equal(emu.record.type, 'endpoint');
  assert.match(emu.record.url, /^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
  assert.equal(emu.record.region, 'us-east-1');
  assert.equal(emu.record.pid, emu.pid);
});

test('start, put, complete, list and get through the SDK: status codes, fields and checksums', async () => {
  const blocks = new Map([[0, blockOf('op-0')], [5, blockOf('op-5')], [2047, blockOf('op-last')]]);
  const started = await ebs.send(
    new StartSnapshotCommand({ VolumeSize: 1, Description: 'wire test', Tags: [{ Key: 'k', Value: 'v' }], Timeout: 60 }),
  );
  assert.equal(started.$metadata.httpStatusCode, 201);
  assert.match(started.SnapshotId, /^snap-[0-9a-f]{17}$/);
  assert.equal(started.Status, 'pending');
  assert.equal(started.BlockSize, BLOCK);
  assert.equal(started.VolumeSize, 1);
  assert.equal(started.Description, 'wire test');
  assert.ok(started.StartTime instanceof Date && Math.abs(started.StartTime - Date.now()) < 60000, `StartTime ${started.StartTime}`);
  const id = started.SnapshotId;

  for (const [i, data] of blocks) {
    const put = await putBlock(ebs, id, i, data, { Progress: 50 });
    assert.equal(put.$metadata.httpStatusCode, 201);
    assert.equal(put.Checksum, b64sha(data), 'PutSnapshotBlock echoes the checksum');
    assert.equal(put.ChecksumAlgorithm, 'SHA256');
  }
  assert.equal((await E.control(emu, 'PUT', 'config', { completionMs: COMPLETION_MS })).status, 204);
  const done = await complete(ebs, id, blocks).finally(() => E.control(emu, 'PUT', 'config', { completionMs: 20 }));
  assert.equal(done.$metadata.httpStatusCode, 202);
  assert.equal(done.Status, 'pending', 'sealing is asynchronous: CompleteSnapshot answers pending');

  // Completion is asynchronous: right after CompleteSnapshot the snapshot is still pending, and
  // pending snapshots cannot be read.
  const early = (await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }))).Snapshots[0];
  assert.equal(early.State, 'pending');
  await assert.rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id })), (e) => e.$metadata.httpStatusCode >= 400);

  const settled = await E.waitSettled(ec2, id);
  assert.equal(settled.State, 'completed');
  assert.equal(settled.Progress, '100%');
  assert.equal(settled.VolumeSize, 1);
  assert.equal(settled.SnapshotId, id);
  assert.equal(settled.Description, 'wire test');
  assert.equal(settled.Encrypted, false);

  const listed = await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id }));
  assert.equal(listed.$metadata.httpStatusCode, 200);
  assert.deepEqual(listed.Blocks.map((b) => b.BlockIndex), [0, 5, 2047]);
  assert.ok(listed.Blocks.every((b) => typeof b.BlockToken === 'string' && b.BlockToken.length > 0));
  assert.equal(listed.VolumeSize, 1);
  assert.equal(listed.BlockSize, BLOCK);
  assert.equal(listed.NextToken, undefined, 'one page: no NextToken');
  // Block tokens live about 7 days by default.
  const days = (listed.ExpiryTime - Date.now()) / 86400000;
  assert.ok(days > 6.9 && days <= 7.01, `ExpiryTime ${listed.ExpiryTime.toISOString()} is ${days} days away`);

  for (const { BlockIndex, BlockToken } of listed.Blocks) {
    const got = await readBlock(ebs, id, BlockIndex, BlockToken);
    assert.equal(got.status, 200);
    assert.equal(got.length, BLOCK);
    assert.equal(got.algorithm, 'SHA256');
    assert.equal(got.checksum, b64sha(blocks.get(BlockIndex)));
    assert.ok(got.data.equals(blocks.get(BlockIndex)), `block ${BlockIndex} reads back as written`);
  }

  // With no first snapshot, ListChangedBlocks lists the second's blocks, with second tokens only.
  const changed = await ebs.send(new ListChangedBlocksCommand({ SecondSnapshotId: id }));
  assert.deepEqual(changed.ChangedBlocks.map((b) => b.BlockIndex), [0, 5, 2047]);
  assert.ok(changed.ChangedBlocks.every((b) => b.SecondBlockToken && b.FirstBlockToken === undefined));
  assert.equal(changed.VolumeSize, 1);
  assert.equal(changed.BlockSize, BLOCK);
  const viaChanged = await readBlock(ebs, id, 5, changed.ChangedBlocks[1].SecondBlockToken);
  assert.ok(viaChanged.data.equals(blocks.get(5)), 'a SecondBlockToken reads the block');
});

test('raw HTTP: paths, status lines, x-amz-* headers and JSON bodies are those of the service', async () => {
  const json = { 'content-type': 'application/json' };
  const started = await raw(emu.url, { method: 'POST', path: '/snapshots', headers: json, body: JSON.stringify({ VolumeSize: 1 }) });
  assert.equal(started.status, 201, started.body.toString());
  const { SnapshotId: id, Status, BlockSize } = started.json();
  assert.equal(Status, 'pending');
  assert.equal(BlockSize, BLOCK);

  const data = blockOf('raw-7');
  const put = await raw(emu.url, {
    method: 'PUT',
    path: `/snapshots/${id}/blocks/7`,
    headers: { 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': b64sha(data), 'x-amz-Checksum-Algorithm': 'SHA256', 'content-type': 'application/octet-stream' },
    body: data,
  });
  assert.equal(put.status, 201, put.body.toString());
  assert.equal(put.headers['x-amz-checksum'], b64sha(data));
  assert.equal(put.headers['x-amz-checksum-algorithm'], 'SHA256');

  const sealed = await raw(emu.url, { method: 'POST', path: `/snapshots/completion/${id}`, headers: { 'x-amz-ChangedBlocksCount': '1' } });
  assert.equal(sealed.status, 202, sealed.body.toString());
  assert.equal(sealed.json().Status, 'pending');
  await E.waitSettled(ec2, id);

  const list = await raw(emu.url, { path: `/snapshots/${id}/blocks?maxResults=100&startingBlockIndex=0` });
  assert.equal(list.status, 200, list.body.toString());
  assert.match(list.headers['content-type'], /json/);
  const page = list.json();
  assert.deepEqual(page.Blocks.map((b) => b.BlockIndex), [7]);
  assert.equal(page.VolumeSize, 1);
  assert.equal(page.BlockSize, BLOCK);
  assert.equal(typeof page.ExpiryTime, 'number', 'rest-json timestamps are epoch seconds');

  const token = encodeURIComponent(page.Blocks[0].BlockToken);
  const get = await raw(emu.url, { path: `/snapshots/${id}/blocks/7?blockToken=${token}` });
  assert.equal(get.status, 200, get.body.toString().slice(0, 200));
  assert.equal(get.headers['x-amz-data-length'], String(BLOCK));
  assert.equal(get.headers['x-amz-checksum'], b64sha(data));
  assert.equal(get.headers['x-amz-checksum-algorithm'], 'SHA256');
  assert.ok(get.body.equals(data));

  const changed = await raw(emu.url, { path: `/snapshots/${id}/changedblocks?maxResults=100` });
  assert.equal(changed.status, 200, changed.body.toString());
  assert.deepEqual(changed.json().ChangedBlocks.map((b) => b.BlockIndex), [7]);

  // A rest-json error: status, x-amzn-ErrorType, and a body with message and Reason.
  const missing = await raw(emu.url, { path: '/snapshots/snap-0123456789abcdef0/blocks' });
  assert.equal(missing.status, 404);
  assert.equal(errorType(missing), 'ResourceNotFoundException');
  const body = missing.json();
  assert.equal(typeof body.message, 'string');
  assert.equal(body.Reason, 'SNAPSHOT_NOT_FOUND');
});

test('DescribeSnapshots (EC2 query protocol): several ids, unknown id, other actions', async () => {
  const a = await makeSnapshot(emu, { VolumeSize: 2, Description: 'first' });
  const b = await makeSnapshot(emu, { VolumeSize: 3, blocks: new Map([[1, blockOf('d-1')]]) });
  const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [a, b] }));
  const byId = Object.fromEntries(out.Snapshots.map((s) => [s.SnapshotId, s]));
  assert.deepEqual(Object.keys(byId).sort(), [a, b].sort());
  assert.equal(byId[a].VolumeSize, 2);
  assert.equal(byId[a].Description, 'first');
  assert.equal(byId[b].VolumeSize, 3);
  for (const s of out.Snapshots) {
    assert.equal(s.State, 'completed');
    assert.equal(s.Progress, '100%');
    assert.ok(s.StartTime instanceof Date);
    assert.equal(typeof s.OwnerId, 'string');
  }

  await rejects(ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ['snap-0123456789abcdef0'] })), {
    name: 'InvalidSnapshot.NotFound',
    status: 400,
  });

  const other = await raw(emu.url, {
    method: 'POST',
    path: '/',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'Action=DescribeVolumes&Version=2016-11-15',
  });
  assert.equal(other.status, 400);
  assert.match(other.body.toString(), /<Code>InvalidAction<\/Code>/);
});

test('lifecycle: a pending snapshot cannot be read, a completed one cannot be written', async () => {
  const done = await makeSnapshot(emu, { blocks: new Map([[3, blockOf('life-3')]]) });
  const [{ BlockToken }] = await listAll(ebs, done);

  const { SnapshotId: pending } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
  await putBlock(ebs, pending, 3, blockOf('life-p3'));
  // AWS: "Can a snapshot be accessed using the EBS direct APIs if it has a pending status? No."
  const refusedRead = (e) => ['ValidationException', 'ResourceNotFoundException'].includes(e.name) && e.$metadata.httpStatusCode >= 400;
  await assert.rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: pending })), refusedRead);
  await assert.rejects(ebs.send(new ListChangedBlocksCommand({ SecondSnapshotId: pending })), refusedRead);
  await assert.rejects(ebs.send(new GetSnapshotBlockCommand({ SnapshotId: pending, BlockIndex: 3, BlockToken })), refusedRead);

  // Only a pending snapshot takes blocks.
  await rejects(putBlock(ebs, done, 4, blockOf('late')), { name: 'ValidationException', status: 400 });
  await rejects(putBlock(ebs, done, 3, blockOf('late')), { name: 'ValidationException', status: 400 });
  // ... and the refused writes changed nothing.
  const after = await readAll(ebs, done);
  assert.deepEqual([...after.keys()], [3]);
  assert.ok(after.get(3).equals(blockOf('life-3')));
});

test('StartSnapshot Timeout: 10..4320 minutes accepted, values outside refused', async () => {
  for (const Timeout of [10, 4320]) {
    const out = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout }));
    assert.equal(out.Status, 'pending');
    await complete(ebs, out.SnapshotId, new Map());
  }
  for (const Timeout of [0, 9, 4321]) {
    await rejects(ebs.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout })), { name: 'ValidationException', status: 400 });
  }
});

test('VolumeSize: 1..65536 GiB accepted, 0 and 65537 refused', async () => {
  for (const VolumeSize of [1, 65536]) {
    const out = await ebs.send(new StartSnapshotCommand({ VolumeSize }));
    assert.equal(out.VolumeSize, VolumeSize);
    await complete(ebs, out.SnapshotId, new Map());
  }
  for (const VolumeSize of [0, 65537]) {
    await rejects(ebs.send(new StartSnapshotCommand({ VolumeSize })), { name: 'ValidationException', status: 400 });
  }
});

test('a block written with zeros is listed; an unwritten block is not', async () => {
  const zero = Buffer.alloc(BLOCK);
  const id = await makeSnapshot(emu, { blocks: new Map([[10, zero], [12, blockOf('z-12')]]) });
  const listed = await listAll(ebs, id);
  assert.deepEqual(listed.map((b) => b.BlockIndex), [10, 12], 'block 10 (zeros) is listed, 11 (never written) is not');
  const got = await readBlock(ebs, id, 10, listed[0].BlockToken);
  assert.ok(got.data.equals(zero));
  assert.equal(got.checksum, b64sha(zero));
});

test('CompleteSnapshot without the optional aggregate checksum', async () => {
  const blocks = new Map([[1, blockOf('noagg-1')], [2, blockOf('noagg-2')]]);
  const { SnapshotId } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
  for (const [i, d] of blocks) await putBlock(ebs, SnapshotId, i, d);
  const out = await ebs.send(new CompleteSnapshotCommand({ SnapshotId, ChangedBlocksCount: 2 }));
  assert.equal(out.Status, 'pending');
  assert.equal((await E.waitSettled(ec2, SnapshotId)).State, 'completed');
  const back = await readAll(ebs, SnapshotId);
  assert.deepEqual([...back.keys()], [1, 2]);
});

test('Timeout: a snapshot not completed in time turns to error (minutes shortened by --minute-ms)', async () => {
  // --minute-ms 20 makes the shortest real Timeout, 10 minutes, last 200 ms.
  const quick = await E.startEmulator(['--no-quotas', '--minute-ms', '20', '--completion-ms', '0']);
  try {
    const q = quick.ebs();
    const { SnapshotId } = await q.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    await putBlock(q, SnapshotId, 0, blockOf('to'));
    const settled = await E.waitSettled(quick.ec2(), SnapshotId);
    assert.equal(settled.State, 'error');
    await rejects(putBlock(q, SnapshotId, 1, blockOf('to1')), { name: 'ValidationException', status: 400 });
    await rejects(complete(q, SnapshotId, new Map([[0, blockOf('to')]])), { name: 'ValidationException', status: 400 });
    await assert.rejects(q.send(new ListSnapshotBlocksCommand({ SnapshotId })), (e) => e.$metadata.httpStatusCode >= 400);
    // One completed in time is not affected.
    const { SnapshotId: ok } = await q.send(new StartSnapshotCommand({ VolumeSize: 1, Timeout: 10 }));
    await complete(q, ok, new Map());
    assert.equal((await E.waitSettled(quick.ec2(), ok)).State, 'completed');
  } finally {
    await quick.stop();
  }
});

/** A token for a block that is not listed, from the control API (the service has no such call). */
async function unlistedToken(server, SnapshotId, BlockIndex) {
  const r = await E.control(server, 'POST', 'block-token', { SnapshotId, BlockIndex });
  assert.equal(r.status, 200, r.body.toString());
  return r.json().BlockToken;
}

test('an unwritten block, not listed, reads as zeros with the checksum of zeros', async () => {
  const id = await makeSnapshot(emu, { blocks: new Map([[1, blockOf('u1')]]) });
  assert.deepEqual((await listAll(ebs, id)).map((b) => b.BlockIndex), [1]);
  const got = await readBlock(ebs, id, 2, await unlistedToken(emu, id, 2));
  assert.ok(got.data.equals(Buffer.alloc(BLOCK)));
  assert.equal(got.checksum, b64sha(Buffer.alloc(BLOCK)));
  assert.equal(got.length, BLOCK);
});

test('--encrypted: snapshots say Encrypted, unwritten blocks read as noise with matching checksums', async () => {
  const enc = await E.startEmulator(['--no-quotas', '--encrypted', '--completion-ms', '0', '--region', 'eu-west-1']);
  try {
    assert.equal(enc.record.region, 'eu-west-1');
    const e = enc.ebs();
    const blocks = new Map([[0, blockOf('e0')], [2, Buffer.alloc(BLOCK)]]);
    const { SnapshotId: id, ...started } = await e.send(new StartSnapshotCommand({ VolumeSize: 1 }));
    assert.notEqual(started.SseType, 'none');
    for (const [i, d] of blocks) await putBlock(e, id, i, d);
    await complete(e, id, blocks);
    const desc = await E.waitSettled(enc.ec2(), id);
    assert.equal(desc.Encrypted, true);
    const back = await readAll(e, id);
    assert.deepEqual([...back.keys()], [0, 2]);
    assert.ok(back.get(0).equals(blockOf('e0')) && back.get(2).equals(Buffer.alloc(BLOCK)), 'written blocks, zeros included, read as written');
    const noise = await readBlock(e, id, 1, await unlistedToken(enc, id, 1));
    assert.ok(!noise.data.equals(Buffer.alloc(BLOCK)), 'an unlisted block of an encrypted snapshot is not zeros');
    assert.equal(noise.checksum, b64sha(noise.data));
  } finally {
    await enc.stop();
  }
});

test('usage: --help prints the usage; a bad flag or value exits 2 with one line naming it', () => {
  const bin = path.join(BIN, 'ebs-emulator');
  const help = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^Usage: ebs-emulator /);
  assert.match(help.stdout, /EXIT STATUS/);
  for (const [args, what] of [
    [['--bogus'], /bogus/],
    [['--quota', 'nope=1'], /nope/],
    [['--fault', 'internal=2'], /internal=2/],
    [['--synthetic', 'size=0'], /size/],
    [['--port', 'x'], /port/],
  ]) {
    const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
    assert.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
    assert.match(r.stderr, /^ebs-emulator: /, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr.split('\n')[0], what, `${args.join(' ')}: the first line names the problem`);
  }
});
