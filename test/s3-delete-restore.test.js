'use strict';
// s3-delete: deletes only after a whole input, commit objects first, and journals what it
// deleted; s3-restore: archived objects restored (moto restores at once), the rest passed on
// without a call, so that s3-list | s3-restore | s3-get reads an archive.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { HeadObjectCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { S3Store, restoreStateOf } = require('../dist/core/store-s3.js');
const { s3Client } = require('../dist/core/store-s3-client.js');

const work = tmpdir('sluice-delete-');
let stores = 0;

/** A local store holding a disk image's chunks under zstd/ and their volume.json commit marker. */
async function filled() {
  const store = path.join(work, `store-${stores++}`);
  await ok(`head -c 3000000 /dev/urandom > ${work}/img && file-blocks ${work}/img | zstd-chunk | s3-put ${store} > /dev/null`);
  return store;
}

const keysOf = (stdout) => stdout.toString().trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'object').map((r) => r.key);

describe('s3-delete', () => {
  it('deletes every listed object, the commit marker first, and journals each one', async () => {
    const store = await filled();
    const listed = keysOf((await ok(`s3-list ${store} | strip`)).stdout);
    assert.ok(listed.includes('volume.json') && listed.length >= 2, listed.join(' '));
    const r = await ok(`s3-list ${store} | s3-delete ${store}`);
    const journal = keysOf(r.stdout);
    assert.strictEqual(journal[0], 'volume.json', 'the commit marker goes first');
    assert.deepStrictEqual([...journal].sort(), [...listed].sort());
    assert.match(r.stdout.toString().trim().split('\n').pop(), /^\{"type":"end"/);
    assert.strictEqual(JSON.parse(r.stdout.toString().split('\n')[0]).store, store);
    assert.deepStrictEqual(keysOf((await ok(`s3-list ${store}`)).stdout), []);
  });

  it('a truncated listing deletes nothing: status 3', async () => {
    const store = await filled();
    const before = keysOf((await ok(`s3-list ${store}`)).stdout);
    const whole = Number((await ok(`s3-list ${store} | wc -c`)).stdout.toString());
    for (const cut of [Math.floor(whole / 2), whole - 3]) {
      const r = await sh(`s3-list ${store} | head -c ${cut} | s3-delete ${store}`);
      assert.strictEqual(r.code, 3, account(r));
      assert.match(r.stderr, /^s3-delete: stdin:\d+: input ended without its end trailer/, account(r));
      assert.strictEqual(r.stdout.length, 0, account(r));
      assert.deepStrictEqual(keysOf((await ok(`s3-list ${store}`)).stdout), before, 'nothing deleted');
    }
  });

  it('deletes only what the input names: a filtered listing, or the journal of a copy at its source', async () => {
    const store = await filled();
    const copy = path.join(work, `copy-${stores++}`);
    await ok(`s3-list --prefix zstd/ ${store} | s3-delete ${store} > /dev/null`);
    assert.deepStrictEqual(keysOf((await ok(`s3-list ${store}`)).stdout), ['volume.json']);
    // A move: copy, then delete at the source what the copy's journal says was written.
    const other = await filled();
    const keys = keysOf((await ok(`s3-list ${other}`)).stdout);
    await ok(`s3-list ${other} | s3-get | s3-put ${copy} > ${work}/copy.journal && s3-delete ${other} < ${work}/copy.journal > /dev/null`);
    assert.deepStrictEqual(keysOf((await ok(`s3-list ${other}`)).stdout), []);
    assert.deepStrictEqual(keysOf((await ok(`s3-list ${copy}`)).stdout), keys);
  });

  it('a key that is not valid is refused before anything is deleted: status 4', async () => {
    const store = await filled();
    const before = keysOf((await ok(`s3-list ${store}`)).stdout);
    const r = await sh(`{ s3-list ${store} | strip | sed '$d'; echo '{"type":"object","key":""}'; } | skip --done /dev/null | s3-delete ${store}`);
    assert.strictEqual(r.code, 4, account(r));
    assert.match(r.stderr, /^s3-delete: stdin:\d+: a key must not be empty/m, account(r));
    assert.deepStrictEqual(keysOf((await ok(`s3-list ${store}`)).stdout), before);
  });
});

describe('s3-restore on a local directory', () => {
  it('passes every record through unchanged, and s3-get reads them after it', async () => {
    const store = await filled();
    const listing = (await ok(`s3-list ${store}`)).stdout;
    const r = await ok(`s3-list ${store} | s3-restore`);
    assert.deepStrictEqual(keysOf(r.stdout), keysOf(listing));
    await ok(`s3-list ${store} | s3-restore | s3-get | zstd-unchunk | file-write ${work}/restored-local.img && cmp ${work}/restored-local.img ${work}/img`);
  });

  it('refuses a bad --tier or --days (status 2), and an object that is not there (status 1)', async () => {
    assert.strictEqual((await sh('s3-restore --tier Fast < /dev/null')).code, 2);
    assert.strictEqual((await sh('s3-restore --days 0 < /dev/null')).code, 2);
    const store = await filled();
    const r = await sh(`s3-list ${store} | s3-delete ${store} | s3-restore`);
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-restore: stdin:1: .*no object "volume.json"/m, account(r));
  });
});

describe('x-amz-restore as a restore state', () => {
  it('reads GLACIER and DEEP_ARCHIVE objects as archived, restoring or readable; other classes as readable', () => {
    for (const cls of ['GLACIER', 'DEEP_ARCHIVE']) {
      assert.strictEqual(restoreStateOf(cls, undefined), 'archived');
      assert.strictEqual(restoreStateOf(cls, 'ongoing-request="true"'), 'restoring');
      assert.strictEqual(restoreStateOf(cls, 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"'), 'readable');
    }
    for (const cls of [undefined, 'STANDARD', 'STANDARD_IA', 'GLACIER_IR']) assert.strictEqual(restoreStateOf(cls, undefined), 'readable');
  });
});

describe('s3-restore and s3-delete on S3 (moto)', () => {
  let moto;
  before(async () => {
    await initDigest();
    moto = await startMoto();
    moto.useEnv();
    await moto.createBucket('cold');
    await moto.createBucket('gone');
  });
  after(() => moto?.stop());

  it('the S3 store restores a GLACIER object, and says so', async () => {
    const store = new S3Store('cold', 'unit/');
    await store.put('x', Buffer.from('frozen'), { storageClass: 'GLACIER' });
    assert.strictEqual(await store.restoreState('x'), 'archived');
    assert.strictEqual(await store.restore('x', { days: 2, tier: 'Bulk' }), 'readable');
    assert.strictEqual(await store.restoreState('x'), 'readable');
    assert.strictEqual((await store.get('x')).data.toString(), 'frozen');
  });

  it('s3-list | s3-restore | s3-get reads an archive written as GLACIER; --no-wait asks and passes on', async () => {
    const url = 's3://cold/archive';
    await ok(`head -c 3000000 /dev/urandom > ${work}/cold.img && file-blocks ${work}/cold.img | zstd-chunk | s3-put --storage-class GLACIER ${url} > /dev/null`, { env: moto.env });
    const refused = await sh(`s3-list ${url} | s3-get > /dev/null`, { env: moto.env });
    assert.strictEqual(refused.code, 1, account(refused));
    assert.match(refused.stderr, /archived/);
    const first = await ok(`s3-list --prefix zstd/ ${url} | s3-restore --no-wait --tier Expedited`, { env: moto.env });
    assert.ok(keysOf(first.stdout).length > 0);
    const head = await s3Client({}).send(new HeadObjectCommand({ Bucket: 'cold', Key: `archive/${keysOf(first.stdout)[0]}` }));
    assert.match(head.Restore ?? '', /ongoing-request="false"/, 'restore asked for');
    const r = await ok(`s3-list ${url} | s3-restore --days 2 | s3-get | zstd-unchunk | file-write ${work}/cold-restored.img`, { env: moto.env });
    assert.ok(fs.readFileSync(`${work}/cold-restored.img`).equals(fs.readFileSync(`${work}/cold.img`)), account(r));
  });

  it('s3-delete deletes a listing from a bucket in batches, and nothing on a truncated one', async () => {
    const url = 's3://gone/p';
    // 1,271 objects: more than one DeleteObjects batch.
    await ok(`head -c 1300000 /dev/urandom | stream-chunk --size 1K | s3-put -j 32 ${url} > /dev/null`, { env: moto.env });
    const listed = keysOf((await ok(`s3-list ${url}`, { env: moto.env })).stdout);
    assert.strictEqual(listed.length, 1271);
    const cut = await sh(`s3-list ${url} | head -c 100000 | s3-delete ${url}`, { env: moto.env });
    assert.strictEqual(cut.code, 3, account(cut));
    assert.strictEqual(keysOf((await ok(`s3-list ${url}`, { env: moto.env })).stdout).length, 1271);
    const r = await ok(`s3-list ${url} | s3-delete ${url}`, { env: moto.env });
    assert.strictEqual(keysOf(r.stdout).length, 1271);
    assert.deepStrictEqual(keysOf((await ok(`s3-list ${url}`, { env: moto.env })).stdout), []);
  });
});
