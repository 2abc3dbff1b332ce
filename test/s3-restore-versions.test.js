'use strict';
// s3-restore of a record that names a version (s3-list --versions): the HEADs and the
// RestoreObject name that version, and the current object is left alone. moto's HeadObject and
// GetObject honour VersionId, but its RestoreObject ignores it and restores the current object
// (moto 5.2): the restore of an old version is shown against the small fake S3 of
// lib/fake-s3-restore.js (real SDK, real command), which records the VersionId of each request.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const path = require('node:path');
const { PutBucketVersioningCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { startFakeS3 } = require('./lib/fake-s3-restore');
const { frames: stream, decodeAll, PAYLOAD } = require('./lib/frames');
const { initDigest } = require('../dist/core/digest.js');
const { S3Store } = require('../dist/core/store-s3.js');
const { LocalStore } = require('../dist/core/store-local.js');

const work = tmpdir('sluice-restore-versions-');
let buckets = 0;

before(() => initDigest());

/** The object records of a command's output, payloads as text in `data`. */
function objects(stdout) {
  return decodeAll(stdout).filter((r) => r.type === 'object').map((r) => (r[PAYLOAD] ? { ...r, data: r[PAYLOAD].toString() } : { ...r }));
}

describe('s3-restore of an old version, against a fake S3 whose restores take a while', () => {
  let fake;
  before(async () => (fake = await startFakeS3()));
  after(() => fake?.stop());
  const flags = () => `--endpoint-url ${fake.url}`;

  /** A bucket of the fake where key "db" has an old GLACIER version and a current one. */
  function twoVersions(old = {}) {
    const bucket = `versions-${buckets++}`;
    fake.put(bucket, 'db', Buffer.from('old db'), { versionId: 'v-old', restoringHeads: 1, ...old });
    fake.put(bucket, 'db', Buffer.from('current db'), { versionId: 'v-cur' });
    return bucket;
  }
  const requests = (bucket, suffix) => fake.log.filter((l) => l.endsWith(` ${bucket}/db${suffix}`)).map((l) => l.split(' ')[0]);

  it('restores and waits for the version the record names, which s3-get then reads; the current object is not touched', async () => {
    const bucket = twoVersions();
    const manifest = stream([{ type: 'object', key: 'db', versionId: 'v-old', storageClass: 'GLACIER', size: 6, store: `s3://${bucket}/` }]);
    const r = await sh(`s3-restore --interval 1 ${flags()} | s3-get ${flags()}`, { input: manifest, env: fake.env });
    assert.strictEqual(r.code, 0, account(r));
    assert.deepStrictEqual(objects(r.stdout).map((x) => [x.key, x.versionId, x.data]), [['db', 'v-old', 'old db']], account(r));
    const old = fake.object(bucket, 'db', 'v-old');
    assert.strictEqual(old.state, 'readable');
    assert.strictEqual(old.restores, 1);
    // The HEAD before asking, one after (restoring), a poll (readable), then s3-get's GET: every
    // request with ?versionId=v-old.
    assert.deepStrictEqual(requests(bucket, '?versionId=v-old'), ['HEAD', 'RESTORE', 'HEAD', 'HEAD', 'GET'], fake.log.join('\n'));
    assert.deepStrictEqual(requests(bucket, ''), [], 'no request for the current object');
    const current = fake.object(bucket, 'db', 'v-cur');
    assert.deepStrictEqual([current.state, current.heads, current.restores], ['archived', 0, 0]);
  });

  it('a version archived again while waited for is asked for again, and the message names it', async () => {
    const bucket = twoVersions({ expiresFirstCopy: true });
    const manifest = stream([{ type: 'object', key: 'db', versionId: 'v-old', store: `s3://${bucket}/` }]);
    const r = await sh(`s3-restore --interval 1 ${flags()}`, { input: manifest, env: fake.env });
    assert.strictEqual(r.code, 0, account(r));
    assert.strictEqual(fake.object(bucket, 'db', 'v-old').restores, 2);
    assert.strictEqual(fake.object(bucket, 'db', 'v-cur').restores, 0);
    assert.match(r.stderr, /^s3-restore: stdin:1: "db" version v-old is archived again .*asking for a restore again$/m, account(r));
  });

  it('a version the bucket does not hold is not found (status 1), naming the key and the version', async () => {
    const bucket = twoVersions();
    const manifest = stream([{ type: 'object', key: 'db', versionId: 'v-none', store: `s3://${bucket}/` }]);
    const r = await sh(`s3-restore ${flags()}`, { input: manifest, env: fake.env });
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-restore: stdin:1: s3:\/\/versions-\d+\/: object "db" has no version "v-none"$/m, account(r));
    assert.deepStrictEqual(requests(bucket, '?versionId=v-none'), ['HEAD']);
    assert.strictEqual(fake.object(bucket, 'db', 'v-cur').restores, 0);
  });
});

describe('s3-restore of versions on S3 (moto)', () => {
  let moto;
  before(async () => {
    moto = await startMoto();
    moto.useEnv();
  });
  after(() => moto?.stop());

  async function bucket(versioned) {
    const name = `restore-versions-${buckets++}`;
    await moto.createBucket(name);
    const store = new S3Store(name, '');
    if (versioned) await store.client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    return { name, store };
  }

  it('the restore state of a version is that version\'s, not the current object\'s', async () => {
    const { store } = await bucket(true);
    const old = (await store.put('k', Buffer.from('old'), { storageClass: 'GLACIER' })).versionId;
    const cur = (await store.put('k', Buffer.from('new'))).versionId;
    assert.strictEqual(await store.restoreState('k', { versionId: old }), 'archived');
    assert.strictEqual(await store.restoreState('k', { versionId: cur }), 'readable');
    assert.strictEqual(await store.restoreState('k'), 'readable');
  });

  it('"null" is the version written before versioning was turned on, even when a newer one is current', async () => {
    const { name, store } = await bucket(false);
    await store.put('k', Buffer.from('from before'), { storageClass: 'GLACIER' });
    await store.client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    await store.put('k', Buffer.from('after'));
    assert.strictEqual(await store.restoreState('k', { versionId: 'null' }), 'archived');
    assert.strictEqual(await store.restoreState('k'), 'readable');
  });

  it('"null" is found behind a newer delete marker, where the current object reads as not found', async () => {
    const { name, store } = await bucket(false);
    await store.put('k', Buffer.from('from before'), { storageClass: 'GLACIER' });
    await store.client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    await store.delete(['k']);
    await assert.rejects(store.restoreState('k'), { name: 'NotFoundError' });
    assert.strictEqual(await store.restoreState('k', { versionId: 'null' }), 'archived');
    // Its restore cannot be shown here: moto's RestoreObject ignores VersionId, and restores
    // the current object, the delete marker (NoSuchKey).
  });

  it('a bucket without versioning: s3-list --versions | s3-restore | s3-get restores and reads the "null" versions', async () => {
    const { name, store } = await bucket(false);
    await store.put('a', Buffer.from('cold a'), { storageClass: 'GLACIER' });
    await store.put('b', Buffer.from('cold b'), { storageClass: 'DEEP_ARCHIVE' });
    const r = await ok(`s3-list --versions s3://${name} | s3-restore --interval 1 | s3-get`, { env: moto.env });
    assert.deepStrictEqual(objects(r.stdout).map((x) => [x.key, x.versionId, x.data]), [['a', 'null', 'cold a'], ['b', 'null', 'cold b']], account(r));
  });

  it('restores the version a record names when it is the current one; the older archived version stays archived', async () => {
    const { name, store } = await bucket(true);
    const old = (await store.put('k', Buffer.from('old'), { storageClass: 'GLACIER' })).versionId;
    const cur = (await store.put('k', Buffer.from('new'), { storageClass: 'GLACIER' })).versionId;
    const r = await ok(`s3-list --versions s3://${name} | pick --latest | s3-restore --interval 1 | s3-get`, { env: moto.env });
    assert.deepStrictEqual(objects(r.stdout).map((x) => [x.versionId, x.data]), [[cur, 'new']], account(r));
    assert.strictEqual(await store.restoreState('k', { versionId: old }), 'archived');
  });

  it('a version the bucket does not hold is not found, naming the key and the version', async () => {
    const { name, store } = await bucket(true);
    const { versionId } = await store.put('here', Buffer.from('y'), { storageClass: 'GLACIER' });
    await assert.rejects(store.restore('here', { days: 1, tier: 'Bulk', versionId: `${versionId}x` }), (err) => err.kind === 'not-found' && err.message.includes(`object "here" has no version "${versionId}x"`));
    const manifest = stream([{ type: 'object', key: 'here', versionId: `${versionId}x`, store: `s3://${name}/` }]);
    const r = await sh('s3-restore', { input: manifest, env: moto.env });
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-restore: stdin:1: .*object "here" has no version "\S+x"$/m, account(r));
    assert.strictEqual(await store.restoreState('here'), 'archived', 'nothing restored');
  });

  it('a delete marker is refused before any call (status 4); a bad versionId too', async () => {
    const { name, store } = await bucket(true);
    await store.put('gone', Buffer.from('x'), { storageClass: 'GLACIER' });
    await store.delete(['gone']);
    const r = await sh(`s3-list --versions s3://${name} | s3-restore`, { env: moto.env });
    assert.strictEqual(r.code, 4, account(r));
    assert.match(r.stderr, /^s3-restore: stdin:1: object "gone" version \S+: a delete marker has nothing to restore/m, account(r));
    for (const versionId of ['', 7]) {
      const bad = await sh('s3-restore', { input: stream([{ type: 'object', key: 'gone', versionId, store: `s3://${name}/` }]), env: moto.env });
      assert.strictEqual(bad.code, 4, account(bad));
      assert.match(bad.stderr, /"versionId" must be a non-empty string/, account(bad));
    }
  });
});

describe('s3-restore of versions in a local directory', () => {
  it('the one version, "null", is readable and passes; any other is not found', async () => {
    const dir = path.join(work, 'local');
    const local = new LocalStore(dir);
    await local.put('x', Buffer.from('one'));
    assert.strictEqual(await local.restoreState('x', { versionId: 'null' }), 'readable');
    assert.strictEqual(await local.restore('x', { days: 1, tier: 'Standard', versionId: 'null' }), 'readable');
    const r = await ok(`s3-list --versions ${dir} | s3-restore | s3-get`);
    assert.deepStrictEqual(objects(r.stdout).map((x) => [x.key, x.versionId, x.data]), [['x', 'null', 'one']], account(r));
    await assert.rejects(local.restoreState('x', { versionId: 'v2' }), (err) => err.kind === 'not-found' && /no version "v2" of object "x"/.test(err.message));
    const other = await sh('s3-restore', { input: stream([{ type: 'object', key: 'x', versionId: 'v2', store: dir }]) });
    assert.strictEqual(other.code, 1, account(other));
    assert.match(other.stderr, /^s3-restore: stdin:1: .*no version "v2" of object "x"/m, account(other));
  });
});
