'use strict';
// s3-list --versions and s3-get of a given version, on a versioned bucket of moto's S3 server
// and on a local directory (which lists each object as its one version, "null").
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const { PutBucketVersioningCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { Decoder } = require('../dist/core/decode.js');
const { Encoder } = require('../dist/core/encode.js');
const { PAYLOAD } = require('../dist/core/records.js');
const { S3Store } = require('../dist/core/store-s3.js');
const { LocalStore } = require('../dist/core/store-local.js');

const work = tmpdir('sluice-versions-');
let moto;
let buckets = 0;

before(async () => {
  await initDigest();
  moto = await startMoto();
  moto.useEnv();
});
after(() => moto?.stop());

async function versionedBucket() {
  const name = `versioned-${buckets++}`;
  await moto.createBucket(name);
  const store = new S3Store(name, '');
  await store.client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
  return { name, store };
}

/** The records of a command's output (payloads as `data`); fails unless it ends with its trailer. */
function records(stdout) {
  const dec = new Decoder({ command: 'test', source: 'stdout' });
  const recs = [];
  dec.push(stdout, recs);
  dec.finish();
  assert.ok(dec.trailer, 'the output ends with its trailer');
  return recs.map((r) => (r[PAYLOAD] ? { ...r, data: r[PAYLOAD] } : { ...r }));
}

/** A stream of the records, with its trailer. */
function stream(recs) {
  const enc = new Encoder();
  for (const rec of recs) enc.push(rec);
  enc.end();
  return Buffer.concat(enc.take());
}

const objects = (recs) => recs.filter((r) => r.type === 'object');
/** What identifies a listed version, in listing order. */
const shape = (recs) => objects(recs).map((r) => [r.key, r.versionId, r.latest, r.deleteMarker === true, r.size]);

async function allVersions(store, opts) {
  const pages = [];
  for await (const page of store.listVersions('', opts)) pages.push(page);
  return pages;
}

describe('s3-list --versions on a versioned bucket', () => {
  it('lists every version and delete marker in key order, newest first, with the latest marked', async () => {
    const { name, store } = await versionedBucket();
    const put = async (key, text) => (await store.put(key, Buffer.from(text))).versionId;
    const a1 = await put('a', 'a one');
    const a2 = await put('a', 'a two!');
    const b1 = await put('b', 'b one');
    // S3 lists times in whole seconds: a second apart, the marker's place among b's versions
    // is known from the listing alone.
    await sleep(1100);
    await store.delete(['b']);
    await sleep(1100);
    const b2 = await put('b', 'b two, after the delete');
    const c1 = await put('c', 'c');
    await store.delete(['c']);
    for (const id of [a1, a2, b1, b2, c1]) assert.match(id ?? '', /./, 'a versioned bucket gives version ids');

    const r = await ok(`s3-list --versions s3://${name}`, { env: moto.env });
    const recs = records(r.stdout);
    const markers = objects(recs).filter((x) => x.deleteMarker);
    assert.strictEqual(markers.length, 2, account(r));
    const [bMarker, cMarker] = markers.map((m) => m.versionId);
    assert.deepStrictEqual(shape(recs), [
      ['a', a2, true, false, 6],
      ['a', a1, false, false, 5],
      ['b', b2, true, false, 23],
      ['b', bMarker, false, true, undefined],
      ['b', b1, false, false, 5],
      ['c', cMarker, true, true, undefined],
      ['c', c1, false, false, 1],
    ], account(r));
    for (const m of markers) assert.deepStrictEqual(Object.keys(m).sort(), ['deleteMarker', 'key', 'latest', 'mtime', 'store', 'type', 'versionId'], 'a delete marker has no size, etag or class');
    // Without --versions: the current objects only, as before.
    assert.deepStrictEqual(objects(records((await ok(`s3-list s3://${name}`, { env: moto.env })).stdout)).map((x) => x.key), ['a', 'b']);
  });

  it('pages of any size give the same listing, a key\'s versions split across pages included', async () => {
    const { name, store } = await versionedBucket();
    for (const key of ['k/1', 'k/2', 'k/3']) for (let i = 0; i < 3; i++) await store.put(key, Buffer.from(`${key} #${i}`));
    await store.delete(['k/2']);
    const whole = (await allVersions(store, {})).flat();
    assert.strictEqual(whole.length, 10);
    for (const pageSize of [1, 2, 4]) {
      const pages = await allVersions(store, { pageSize });
      assert.ok(pages.length >= Math.ceil(10 / pageSize) && pages.every((p) => p.length <= pageSize), `pages of ${pageSize}: ${pages.map((p) => p.length)}`);
      assert.deepStrictEqual(pages.flat().map((v) => [v.key, v.versionId, v.latest]), whole.map((v) => [v.key, v.versionId, v.latest]), `pages of ${pageSize}`);
    }
    const after = await ok(`s3-list --versions --start-after k/1 s3://${name}`, { env: moto.env });
    assert.deepStrictEqual(objects(records(after.stdout)).map((x) => x.versionId), whole.slice(3).map((v) => v.versionId), `--start-after${account(after)}`);
    // The store's prefix and the listing's: keys come back relative to the URL.
    const r = await ok(`s3-list --versions --prefix 2 s3://${name}/k`, { env: moto.env });
    assert.deepStrictEqual(objects(records(r.stdout)).map((x) => [x.key, x.latest]), [['2', true], ['2', false], ['2', false], ['2', false]], account(r));
  });

  it('keys any S3 store holds come back exactly, whatever the reply\'s URL encoding made of them', async () => {
    const { name, store } = await versionedBucket();
    const keys = ['%', '%41', 'per%cent', 'plus+sign', 'with space', 'ünïcödé/文件', '\u{1F600}'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    const r = await ok(`s3-list --versions s3://${name}`, { env: moto.env });
    assert.deepStrictEqual(objects(records(r.stdout)).map((x) => x.key), [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), account(r));
  });

  it('s3-get reads the version a record names, byte for byte, small and in ranges', async () => {
    const { name, store } = await versionedBucket();
    // Above the 8 MiB part size s3-get reads in parallel ranges: each must ask for the version.
    const big = crypto.randomBytes(9 << 20);
    const contents = [big, Buffer.from('second'), Buffer.from('third, current')];
    const ids = [];
    for (const data of contents) ids.push((await store.put('disk.img', data)).versionId);

    const r = await ok(`s3-list --versions s3://${name} | s3-get`, { env: moto.env });
    const got = objects(records(r.stdout));
    assert.deepStrictEqual(got.map((x) => x.versionId), [...ids].reverse(), account(r));
    for (const rec of got) assert.ok(rec.data.equals(contents[ids.indexOf(rec.versionId)]), `version ${rec.versionId} read back${account(r)}`);
    const old = await store.get('disk.img', { versionId: ids[0] });
    assert.ok(old.data.equals(big));
  });

  it('a large old version named without its size is read in pieces (s3-get) and copied in pieces (s3-copy), identical', async () => {
    const { name, store } = await versionedBucket();
    const old = crypto.randomBytes((70 << 20) + 4321);
    const first = await store.put('disk.img', old, { metadata: { origin: 'test' } });
    await store.put('disk.img', Buffer.from('the current one, small'));
    assert.strictEqual((await store.head('disk.img', first.versionId)).size, old.length, 'a HEAD of the version');
    const manifest = path.join(work, 'sizeless-version.manifest');
    fs.writeFileSync(manifest, stream([{ type: 'object', key: 'disk.img', versionId: first.versionId, store: `s3://${name}/` }]));

    const r = await ok(`s3-get --pieces-above 16M < ${manifest}`, { env: moto.env });
    const pieces = objects(records(r.stdout));
    assert.ok(pieces.length > 1 && pieces.every((p) => p.versionId === first.versionId && typeof p.offset === 'number'), `in pieces of the version${account(r)}`);
    assert.ok(Buffer.concat(pieces.map((p) => p.data)).equals(old), 'the pieces make up the old version');

    const dir = path.join(work, `version-copy-${buckets}`);
    const c = await ok(`s3-copy --to ${dir} < ${manifest}`, { env: moto.env });
    assert.ok(fs.readFileSync(path.join(dir, 'disk.img')).equals(old), `the old version copied${account(c)}`);
    assert.strictEqual(objects(records(c.stdout))[0].sha256, crypto.createHash('sha256').update(old).digest('base64'));
  });

  it('a delete marker is refused by s3-get (status 4), a version that is not there is not found (status 1)', async () => {
    const { name, store } = await versionedBucket();
    await store.put('gone', Buffer.from('x'));
    await store.delete(['gone']);
    const marker = await sh(`s3-list --versions s3://${name} | s3-get > /dev/null`, { env: moto.env });
    assert.strictEqual(marker.code, 4, account(marker));
    assert.match(marker.stderr, /^s3-get: stdin:1: object "gone" version \S+: a delete marker has no data/m, account(marker));
    const put = await store.put('here', Buffer.from('y'));
    const manifest = path.join(work, 'other-version.manifest');
    fs.writeFileSync(manifest, stream([{ type: 'object', key: 'here', versionId: `${put.versionId}x`, store: `s3://${name}/` }]));
    const r = await sh(`s3-get < ${manifest} > /dev/null`, { env: moto.env });
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-get: stdin:1: .*"here".*version \S+x/m, account(r));
  });
});

describe('s3-list --versions where the store keeps no history', () => {
  it('a local directory lists each object as its one version, "null" and latest; s3-get reads it, and no other', async () => {
    const dir = path.join(work, 'local');
    const local = new LocalStore(dir);
    await local.put('x/1', Buffer.from('one'));
    await local.put('x/2', Buffer.from('two'));
    const r = await ok(`s3-list --versions ${dir} | s3-get`);
    assert.deepStrictEqual(objects(records(r.stdout)).map((x) => [x.key, x.versionId, x.latest, x.data.toString()]), [['x/1', 'null', true, 'one'], ['x/2', 'null', true, 'two']], account(r));
    await assert.rejects(local.get('x/1', { versionId: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' }), (err) => err.kind === 'not-found' && /no version "3HL4kqtJlcpXroDTDmJ\+rmSpXd3dIbrHY" of object "x\/1"/.test(err.message));
    assert.strictEqual((await local.head('x/2', 'null')).size, 3);
    await assert.rejects(local.head('x/2', 'v2'), (err) => err.kind === 'not-found' && /no version "v2" of object "x\/2"/.test(err.message));
  });

  it('a bucket without versioning lists the same way, and s3-get reads its "null" versions', async () => {
    const name = `plain-${buckets++}`;
    await moto.createBucket(name);
    const store = new S3Store(name, '');
    await store.put('x/1', Buffer.from('one'));
    await store.put('x/2', Buffer.from('two'));
    const r = await ok(`s3-list --versions s3://${name} | s3-get`, { env: moto.env });
    assert.deepStrictEqual(objects(records(r.stdout)).map((x) => [x.key, x.versionId, x.latest, x.data.toString()]), [['x/1', 'null', true, 'one'], ['x/2', 'null', true, 'two']], account(r));
  });
});
