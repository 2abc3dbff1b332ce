'use strict';
// ebs-emulator: bad requests get the service's error type, status and reason, and never corrupt
// state: after each one, the snapshot it aimed at completes and reads back exactly as written.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const {
  StartSnapshotCommand,
  CompleteSnapshotCommand,
  ListSnapshotBlocksCommand,
  ListChangedBlocksCommand,
  GetSnapshotBlockCommand,
} = require('@aws-sdk/client-ebs');
const E = require('./lib/emulator');
const { BLOCK, blockOf, b64sha, putBlock, complete, listAll, readAll, rejects, raw } = E;

let emu;
let ebs;
before(async () => {
  emu = await E.startEmulator(['--no-quotas', '--completion-ms', '20', '--seed', '3']);
  ebs = emu.ebs();
});
after(() => emu.stop());

const UNKNOWN = 'snap-0123456789abcdef0';
const validation = (reason) => ({ name: 'ValidationException', status: 400, reason });
const A = blockOf('bad-a');
const B = blockOf('bad-b');

/**
 * Starts a 1 GiB snapshot with blocks 0 = A and 5 = B, runs `bad(id)` (which must see the error
 * it expects), then completes the snapshot with the right count and aggregate and checks that it
 * holds exactly A and B.
 */
async function survives(bad) {
  const { SnapshotId: id } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
  const blocks = new Map([[0, A], [5, B]]);
  for (const [i, d] of blocks) await putBlock(ebs, id, i, d);
  await bad(id);
  await complete(ebs, id, blocks);
  const settled = await E.waitSettled(emu.ec2(), id);
  assert.equal(settled.State, 'completed', `${id} after the bad request`);
  const back = await readAll(ebs, id);
  assert.deepEqual([...back.keys()], [0, 5], `${id}: the blocks listed after the bad request`);
  assert.ok(back.get(0).equals(A) && back.get(5).equals(B), `${id}: the data after the bad request`);
  return id;
}

test('PutSnapshotBlock with a checksum of other data: refused, the block keeps its data', () =>
  survives((id) => rejects(putBlock(ebs, id, 5, blockOf('intruder'), { Checksum: b64sha(B) }), { name: 'ValidationException', status: 400 })));

test('PutSnapshotBlock with a checksum that is not base64 of 32 bytes: refused', () =>
  survives(async (id) => {
    await rejects(putBlock(ebs, id, 5, blockOf('x'), { Checksum: 'not base64!' }), { name: 'ValidationException', status: 400 });
    await rejects(putBlock(ebs, id, 6, blockOf('x'), { Checksum: Buffer.alloc(20).toString('base64') }), { name: 'ValidationException', status: 400 });
  }));

test('PutSnapshotBlock with an algorithm other than SHA256: refused', () =>
  survives(async (id) => {
    for (const ChecksumAlgorithm of ['SHA1', 'MD5', 'sha256']) {
      await rejects(putBlock(ebs, id, 5, blockOf('alg'), { ChecksumAlgorithm }), { name: 'ValidationException', status: 400 });
    }
  }));

test('PutSnapshotBlock of a length other than 524288: refused', () =>
  survives(async (id) => {
    // A short body with its own checksum and length: only 524288-byte blocks exist.
    const short = Buffer.alloc(4096, 7);
    await rejects(putBlock(ebs, id, 5, short), { name: 'ValidationException', status: 400 });
    // A DataLength header that does not match the body.
    await rejects(putBlock(ebs, id, 5, blockOf('len'), { DataLength: BLOCK - 512 }), { name: 'ValidationException', status: 400 });
    // A body longer than a block, declared as one.
    const long = Buffer.concat([blockOf('long'), Buffer.alloc(512)]);
    const r = await raw(emu.url, {
      method: 'PUT',
      path: `/snapshots/${id}/blocks/5`,
      headers: { 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': b64sha(long.subarray(0, BLOCK)), 'x-amz-Checksum-Algorithm': 'SHA256' },
      body: long,
    }).catch((e) => assert.fail(`a body longer than a block should get a 400 answer; the connection failed instead: ${e.code} ${e.message}`));
    assert.equal(r.status, 400, r.body.toString());
    assert.equal(r.headers['x-amzn-errortype'].split(':')[0], 'ValidationException');
  }));

test('PutSnapshotBlock without a required header: refused', () =>
  survives(async (id) => {
    const data = blockOf('hdr');
    const all = { 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': b64sha(data), 'x-amz-Checksum-Algorithm': 'SHA256' };
    for (const drop of Object.keys(all)) {
      const headers = { ...all };
      delete headers[drop];
      const r = await raw(emu.url, { method: 'PUT', path: `/snapshots/${id}/blocks/5`, headers, body: data });
      assert.equal(r.status, 400, `without ${drop}: ${r.body}`);
      assert.equal(r.headers['x-amzn-errortype'].split(':')[0], 'ValidationException', `without ${drop}`);
    }
  }));

test('a block index beyond the volume extent, or not a number: refused', () =>
  survives(async (id) => {
    // 1 GiB = 2048 blocks: 2047 is the last.
    await rejects(putBlock(ebs, id, 2048, blockOf('far')), { name: 'ValidationException', status: 400 });
    await rejects(putBlock(ebs, id, 1 << 30, blockOf('far')), { name: 'ValidationException', status: 400 });
    for (const index of ['-1', 'x', '1.5']) {
      const data = blockOf('nan');
      const r = await raw(emu.url, {
        method: 'PUT',
        path: `/snapshots/${id}/blocks/${index}`,
        headers: { 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': b64sha(data), 'x-amz-Checksum-Algorithm': 'SHA256' },
        body: data,
      });
      assert.equal(r.status, 400, `index ${index}: ${r.body}`);
    }
  }));

test('GetSnapshotBlock beyond the extent of a completed snapshot: refused', async () => {
  const id = await survives(async () => {});
  const [t0] = await listAll(ebs, id);
  await rejects(ebs.send(new GetSnapshotBlockCommand({ SnapshotId: id, BlockIndex: 2048, BlockToken: t0.BlockToken })), { name: 'ValidationException', status: 400 });
});

test('CompleteSnapshot with a wrong ChangedBlocksCount: refused, the snapshot stays pending', () =>
  survives(async (id) => {
    const blocks = new Map([[0, A], [5, B]]);
    for (const ChangedBlocksCount of [1, 3]) {
      await rejects(complete(ebs, id, blocks, { ChangedBlocksCount }), { name: 'ValidationException', status: 400 });
    }
    assert.equal((await E.describeSnapshot(emu.ec2(), id)).State, 'pending');
  }));

test('CompleteSnapshot with a wrong LINEAR aggregate: refused, the snapshot stays pending', () =>
  survives(async (id) => {
    // The digests in descending order, and an aggregate of other data.
    const reversed = E.sha256(Buffer.concat([E.sha256(B), E.sha256(A)])).toString('base64');
    await rejects(complete(ebs, id, new Map([[0, A], [5, B]]), { Checksum: reversed }), { name: 'ValidationException', status: 400 });
    await rejects(complete(ebs, id, new Map([[0, A], [5, A]]), { ChangedBlocksCount: 2 }), { name: 'ValidationException', status: 400 });
    await rejects(complete(ebs, id, new Map([[0, A], [5, B]]), { ChecksumAggregationMethod: 'TREE' }), { name: 'ValidationException', status: 400 });
    assert.equal((await E.describeSnapshot(emu.ec2(), id)).State, 'pending');
  }));

test('a block rewritten counts once; the aggregate covers its last data', async () => {
  const { SnapshotId: id } = await ebs.send(new StartSnapshotCommand({ VolumeSize: 1 }));
  await putBlock(ebs, id, 9, blockOf('first'));
  await putBlock(ebs, id, 9, blockOf('second'));
  const blocks = new Map([[9, blockOf('second')]]);
  await rejects(complete(ebs, id, new Map([[9, blockOf('first')]])), { name: 'ValidationException', status: 400 });
  await complete(ebs, id, blocks);
  await E.waitSettled(emu.ec2(), id);
  assert.ok((await readAll(ebs, id)).get(9).equals(blockOf('second')));
});

test('an unknown snapshot: 404 ResourceNotFoundException from every operation', async () => {
  const nf = { name: 'ResourceNotFoundException', status: 404, reason: 'SNAPSHOT_NOT_FOUND' };
  await rejects(putBlock(ebs, UNKNOWN, 0, A), nf);
  await rejects(ebs.send(new CompleteSnapshotCommand({ SnapshotId: UNKNOWN, ChangedBlocksCount: 0 })), nf);
  await rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: UNKNOWN })), nf);
  await rejects(ebs.send(new ListChangedBlocksCommand({ SecondSnapshotId: UNKNOWN })), nf);
  await rejects(ebs.send(new GetSnapshotBlockCommand({ SnapshotId: UNKNOWN, BlockIndex: 0, BlockToken: 'x' })), { name: 'ResourceNotFoundException', status: 404 });
  await rejects(ebs.send(new StartSnapshotCommand({ VolumeSize: 1, ParentSnapshotId: UNKNOWN })), { name: 'ResourceNotFoundException', status: 404 });
  const real = await survives(async () => {});
  await rejects(ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: UNKNOWN, SecondSnapshotId: real })), { name: 'ResourceNotFoundException', status: 404 });
});

test('malformed JSON and wrong types in StartSnapshot: refused, nothing created', () =>
  survives(async () => {
    const before = JSON.parse((await E.control(emu, 'GET', 'stats')).body).snapshots;
    for (const body of ['{"VolumeSize": 1,', 'not json', '[1]', '{"VolumeSize": "one"}', '{}', '{"VolumeSize": 1.5}']) {
      const r = await raw(emu.url, { method: 'POST', path: '/snapshots', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 400, `${body}: ${r.status} ${r.body}`);
      const type = r.headers['x-amzn-errortype'].split(':')[0];
      assert.ok(['ValidationException', 'SerializationException'].includes(type), `${body}: ${type}`);
      assert.equal(typeof JSON.parse(r.body).message, 'string');
    }
    const after = JSON.parse((await E.control(emu, 'GET', 'stats')).body).snapshots;
    assert.equal(after, before, 'no snapshot was created by a refused StartSnapshot');
  }));

test('bad page arguments: refused, and the snapshot still lists', async () => {
  const id = await survives(async () => {});
  await rejects(ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: id, NextToken: 'x'.repeat(40) })), validation('INVALID_PAGE_TOKEN'));
  const r = await raw(emu.url, { path: `/snapshots/${id}/blocks?maxResults=abc` });
  assert.equal(r.status, 400, r.body.toString());
  assert.deepEqual((await listAll(ebs, id)).map((b) => b.BlockIndex), [0, 5]);
});

test('an unknown path or method: an error, and the server keeps serving', async () => {
  const r = await raw(emu.url, { method: 'DELETE', path: '/snapshots/snap-0123456789abcdef0' });
  assert.ok(r.status >= 400 && r.status < 500, `DELETE: ${r.status}`);
  const s = await raw(emu.url, { path: '/nothing/here' });
  assert.ok(s.status >= 400 && s.status < 500, `GET /nothing/here: ${s.status}`);
  await survives(async () => {});
});

test('a put of zeros to an index of the parent inside a child: listed, reads zeros', async () => {
  const parent = await E.makeSnapshot(emu, { blocks: new Map([[1, A]]) });
  const child = await E.makeSnapshot(emu, { ParentSnapshotId: parent, blocks: new Map([[1, Buffer.alloc(BLOCK)]]) });
  const back = await readAll(ebs, child);
  assert.deepEqual([...back.keys()], [1]);
  assert.ok(back.get(1).equals(Buffer.alloc(BLOCK)), 'the child\'s zeros hide the parent\'s data');
  // The PutSnapshotBlock error path never leaks into the parent.
  assert.ok((await readAll(ebs, parent)).get(1).equals(A));
});

test('PutSnapshotBlock with x-amz-Progress out of 0..100: refused', () =>
  survives((id) => rejects(putBlock(ebs, id, 5, blockOf('p'), { Progress: 101 }), { name: 'ValidationException', status: 400 })));

test('a put of a block while another put of it is still arriving: ValidationException CONFLICTING_BLOCK_UPDATE', () =>
  survives(async (id) => {
    const headers = { 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': b64sha(B), 'x-amz-Checksum-Algorithm': 'SHA256', 'content-length': BLOCK };
    const slow = http.request(new URL(`/snapshots/${id}/blocks/5`, emu.url), { method: 'PUT', headers: { authorization: 'AWS4-HMAC-SHA256 Credential=t/20250101/us-east-1/ebs/aws4_request, SignedHeaders=host, Signature=0', ...headers } });
    const answered = new Promise((resolve, reject) => {
      slow.on('response', (res) => res.resume().on('end', () => resolve(res.statusCode)));
      slow.on('error', reject);
    });
    slow.write(B.subarray(0, 65536));
    // The first put is in flight once the server has its headers: until then a second put of the
    // same data simply succeeds, so try again until the conflict shows.
    let conflict;
    for (let n = 0; n < 100 && !conflict; n++) {
      const r = await raw(emu.url, { method: 'PUT', path: `/snapshots/${id}/blocks/5`, headers, body: B });
      if (r.status === 400) conflict = r;
      else assert.equal(r.status, 201, r.body.toString());
      if (!conflict) await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(conflict, 'a second put of block 5 was refused while the first was arriving');
    assert.equal(conflict.headers['x-amzn-errortype'].split(':')[0], 'ValidationException');
    assert.equal(conflict.json().Reason, 'CONFLICTING_BLOCK_UPDATE');
    slow.end(B.subarray(65536));
    assert.equal(await answered, 201, 'the first put completes');
  }));
