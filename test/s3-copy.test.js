'use strict';
// s3-copy: S3 to S3 on one endpoint is copied by S3 itself (CopyObject, or UploadPartCopy above
// the multipart threshold), which a counting proxy in front of moto proves (no GET of any object
// passes through it, and the same proxy sees GETs when a copy does go through get and put);
// a local directory on either side is copied by get and put. Every copy reads back identical,
// with its stored SHA-256; commit objects go last, and never from a truncated input.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { HeadObjectCommand, PutBucketVersioningCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { decodeAll } = require('./lib/frames');
const { Encoder } = require('../dist/core/encode.js');
const { PAYLOAD } = require('../dist/core/records.js');
const { S3Store } = require('../dist/core/store-s3.js');
const { canCopyServerSide } = require('../dist/core/store-s3-copy.js');
const { openStore } = require('../dist/core/store.js');

const work = tmpdir('sluice-copy-');
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');
let moto;
let proxy;
let buckets = 0;
let dirs = 0;

/**
 * An HTTP proxy in front of moto that logs every request it passes: method, path and query,
 * the x-amz-copy-source header, and when the request started and its reply ended.
 */
async function countingProxy(target) {
  const log = [];
  const server = http.createServer((req, res) => {
    const entry = { method: req.method, url: req.url, copySource: req.headers['x-amz-copy-source'], start: process.hrtime.bigint(), end: undefined };
    log.push(entry);
    const up = http.request(new URL(req.url, target), { method: req.method, headers: req.headers }, (reply) => {
      res.writeHead(reply.statusCode, reply.headers);
      reply.pipe(res);
      reply.on('end', () => (entry.end = process.hrtime.bigint()));
    });
    up.on('error', (err) => res.destroy(err));
    req.pipe(up);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    clear: () => log.splice(0),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** s3-copy with its S3 calls through the counting proxy (the rest of a script goes to moto). */
const copyViaProxy = () => `s3-copy --endpoint-url ${proxy.url}`;

async function newBucket() {
  const name = `copy-${buckets++}`;
  await moto.createBucket(name);
  return name;
}

const objectsOf = (stdout) => stdout.toString().trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'object');

/** Reads every object of a store URL back through s3-list | s3-get: key -> data. */
async function readBack(url) {
  const r = await ok(`s3-list ${url} | s3-get`);
  const read = new Map();
  for (const rec of decodeAll(r.stdout)) if (rec.type === 'object') read.set(rec.key, rec[PAYLOAD] ?? Buffer.alloc(0));
  return read;
}

function assertSame(read, objects) {
  assert.deepStrictEqual([...read.keys()].sort(), [...objects.keys()].sort());
  for (const [key, data] of objects) assert.ok(read.get(key).equals(data), `object ${JSON.stringify(key)} reads back identical`);
}

/** Object requests the proxy saw that carry an object's bytes out of S3: GETs. */
const gets = () => proxy.log.filter((e) => e.method === 'GET');
const copies = () => proxy.log.filter((e) => e.method === 'PUT' && e.copySource !== undefined);

// Keys a store must keep exactly: spaces, unicode, "+", "%" (and what looks like an escape).
const OBJECTS = new Map([
  ['plain.bin', crypto.randomBytes(300_000)],
  ['empty', Buffer.alloc(0)],
  ['with space/a b.bin', crypto.randomBytes(1000)],
  ['ünïcødé/日本語 🎉.bin', crypto.randomBytes(2000)],
  ['plus+sign+.bin', crypto.randomBytes(3000)],
  ['per%cent%20and%2F.bin', crypto.randomBytes(4000)],
  ['vol/volume.json', Buffer.from('{"the":"commit marker"}')],
]);

/** A bucket holding OBJECTS under pre/, put through the S3 store (so each keeps its SHA-256). */
async function filledBucket(objects = OBJECTS) {
  const bucket = await newBucket();
  const store = new S3Store(bucket, 'pre/');
  for (const [key, data] of objects) await store.put(key, data, { metadata: { origin: 'test' } });
  return { bucket, url: `s3://${bucket}/pre` };
}

async function head(bucket, key) {
  return new S3Store(bucket, '').client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
}

before(async () => {
  await initDigest();
  moto = await startMoto();
  moto.useEnv();
  proxy = await countingProxy(moto.url);
});
after(async () => {
  await proxy?.close();
  await moto?.stop();
});

describe('s3-copy between S3 stores on one endpoint: server-side', () => {
  it('copies every object with CopyObject, none of its bytes through here, the commit object last; all read back identical with their SHA-256', async () => {
    const src = await filledBucket();
    const dst = await newBucket();
    proxy.clear();
    const r = await ok(`s3-list ${src.url} | ${copyViaProxy()} --to s3://${dst}/copy`);
    // The proof that S3 did the copy: no GET of anything, one CopyObject per object.
    assert.deepStrictEqual(gets().map((e) => e.url), [], 'no GET went through the proxy');
    assert.strictEqual(copies().length, OBJECTS.size, 'one CopyObject per object');
    for (const e of copies()) assert.match(e.copySource, new RegExp(`^/?${src.bucket}/pre/`), e.copySource);
    // The commit object's copy starts after every other copy has ended.
    const commit = copies().find((e) => e.url.includes('volume.json'));
    const latest = copies().filter((e) => e !== commit).reduce((m, e) => (e.end > m ? e.end : m), 0n);
    assert.ok(commit.start >= latest, 'the commit object is copied after every other');

    // The journal: in input order, the commit object last, each as s3-put journals it.
    const journal = objectsOf(r.stdout);
    const listed = objectsOf((await ok(`s3-list ${src.url}`)).stdout).map((o) => o.key);
    assert.deepStrictEqual(journal.map((o) => o.key), [...listed.filter((k) => k !== 'vol/volume.json'), 'vol/volume.json']);
    for (const o of journal) {
      const data = OBJECTS.get(o.key);
      assert.strictEqual(o.store, `s3://${dst}/copy/`);
      assert.strictEqual(o.size, data.length);
      assert.strictEqual(o.sha256, sha256(data), o.key);
      assert.match(o.etag, /^"[0-9a-f]{32}"$/);
    }
    assert.strictEqual(journal.at(-1).commit, true);
    assert.match(r.stdout.toString().trim().split('\n').pop(), /^\{"type":"end"/);

    assertSame(await readBack(`s3://${dst}/copy`), OBJECTS);
    for (const [key, data] of OBJECTS) {
      const h = await head(dst, `copy/${key}`);
      assert.strictEqual(h.Metadata['sluice-sha256'], sha256(data), `${key}: the stored SHA-256 came along`);
      assert.strictEqual(h.Metadata.origin, 'test', `${key}: the user metadata came along`);
    }
  });

  it('copies an object above the multipart threshold in parts (UploadPartCopy), identical, its SHA-256 kept', async () => {
    const big = new Map([['big.bin', crypto.randomBytes(12 << 20)], ['small.bin', crypto.randomBytes(1000)]]);
    const src = await filledBucket(big);
    const dst = await newBucket();
    proxy.clear();
    const r = await ok(`s3-list ${src.url} | ${copyViaProxy()} --multipart-threshold 5M --part-size 5M --to s3://${dst}/mp`);
    assert.deepStrictEqual(gets().map((e) => e.url), [], 'no GET went through the proxy');
    const parts = copies().filter((e) => /[?&]partNumber=/.test(e.url));
    assert.strictEqual(parts.length, 3, '12 MiB in parts of 5 MiB: three UploadPartCopy calls');
    assert.strictEqual(proxy.log.filter((e) => e.method === 'POST' && /[?&]uploads\b/.test(e.url)).length, 1, 'one CreateMultipartUpload');
    assert.strictEqual(copies().length - parts.length, 1, 'the small object in one CopyObject');
    const journal = objectsOf(r.stdout);
    const copied = journal.find((o) => o.key === 'big.bin');
    assert.strictEqual(copied.size, 12 << 20);
    assert.strictEqual(copied.sha256, sha256(big.get('big.bin')));
    assert.match(copied.etag, /-3"$/, 'a multipart ETag');
    assertSame(await readBack(`s3://${dst}/mp`), big);
    assert.strictEqual((await head(dst, 'mp/big.bin')).Metadata['sluice-sha256'], sha256(big.get('big.bin')));
  });

  it('a truncated input: status 3, the commit object not copied', async () => {
    const src = await filledBucket();
    const dst = await newBucket();
    const whole = Number((await ok(`s3-list ${src.url} | wc -c`)).stdout.toString());
    const out = path.join(work, 'truncated.journal');
    // Only the trailer is cut: every record, the commit object's too, was read.
    const r = await sh(`s3-list ${src.url} | head -c ${whole - 3} | s3-copy --to s3://${dst}/t > ${out}`);
    assert.strictEqual(r.code, 3, account(r));
    assert.match(r.stderr, /^s3-copy: stdin:\d+: input ended without its end trailer/, account(r));
    const journal = fs.readFileSync(out, 'utf8');
    assert.ok(!journal.includes('"type":"end"'), 'no trailer');
    const copied = objectsOf((await ok(`s3-list s3://${dst}/t`)).stdout).map((o) => o.key);
    assert.ok(!copied.includes('vol/volume.json'), 'no commit object copied');
    assert.strictEqual(copied.length, OBJECTS.size - 1, 'the other objects were copied');
    assert.deepStrictEqual(objectsOf(journal).map((o) => o.key).sort(), copied.sort(), 'and journaled');
  });

  it('an object that is not there: status 1 naming the line and the key; the others copied and journaled', async () => {
    const src = await filledBucket();
    const dst = await newBucket();
    const listing = path.join(work, 'gone.listing');
    await ok(`s3-list ${src.url} > ${listing}`);
    await new S3Store(src.bucket, 'pre/').delete(['plus+sign+.bin']);
    const r = await sh(`s3-copy --to s3://${dst}/gone < ${listing}`);
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-copy: stdin:\d+: s3:\/\/copy-\d+\/pre\/: no object "plus\+sign\+\.bin"\n$/, account(r));
    const copied = objectsOf((await ok(`s3-list s3://${dst}/gone`)).stdout).map((o) => o.key);
    assert.ok(!copied.includes('vol/volume.json') && !copied.includes('plus+sign+.bin'), copied.join(' '));
    assert.deepStrictEqual(objectsOf(r.stdout).map((o) => o.key).sort(), copied.sort(), 'what was copied is journaled');
  });

  it('a record with "versionId" copies that version; a delete marker is refused (status 4)', async () => {
    const bucket = await newBucket();
    const dst = await newBucket();
    const store = new S3Store(bucket, '');
    await store.client.send(new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    const old = crypto.randomBytes(5000);
    const first = await store.put('doc', old);
    await store.put('doc', crypto.randomBytes(6000));
    assert.ok(first.versionId, 'moto gave a version id');
    const input = path.join(work, 'version.ndjson');
    const write = (...recs) => {
      const out = new Encoder();
      for (const rec of recs) out.push(rec);
      out.end();
      fs.writeFileSync(input, Buffer.concat(out.take()));
    };
    write({ type: 'object', key: 'doc', versionId: first.versionId, latest: false, store: `s3://${bucket}/` });
    proxy.clear();
    const r = await ok(`${copyViaProxy()} --to s3://${dst}/v < ${input}`);
    assert.deepStrictEqual(gets(), [], 'copied server-side');
    assert.match(copies()[0].copySource, new RegExp(`\\?versionId=${first.versionId}$`));
    const [journaled] = objectsOf(r.stdout);
    assert.strictEqual(journaled.sha256, sha256(old));
    assert.strictEqual(journaled.versionId, undefined, 'the destination keeps no versions');
    assert.strictEqual(journaled.latest, undefined, 'what described the source is gone');
    assertSame(await readBack(`s3://${dst}/v`), new Map([['doc', old]]));

    write({ type: 'object', key: 'doc', versionId: 'abc', latest: true, deleteMarker: true, store: `s3://${bucket}/` });
    const marker = await sh(`s3-copy --to s3://${dst}/m < ${input}`);
    assert.strictEqual(marker.code, 4, account(marker));
    assert.match(marker.stderr, /^s3-copy: stdin:1: object "doc" version abc: a delete marker has no data/, account(marker));
  });

  it('an archived object that was not restored: status 1, saying to restore it', async () => {
    const bucket = await newBucket();
    const dst = await newBucket();
    await new S3Store(bucket, '').put('cold.bin', crypto.randomBytes(100), { storageClass: 'GLACIER' });
    const r = await sh(`s3-list s3://${bucket} | s3-copy --to s3://${dst}`);
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-copy: stdin:1: s3:\/\/copy-\d+\/: object "cold.bin": the object is archived \(GLACIER\) and must be restored first \(s3-restore\)\n$/, account(r));
  });

  it('stores on different endpoints have different clients: no server-side copy between them', () => {
    const here = new S3Store('a-bucket', '');
    assert.ok(canCopyServerSide(here, new S3Store('b-bucket', 'x/')), 'one client');
    assert.ok(!canCopyServerSide(here, new S3Store('b-bucket', '', { endpoint: 'http://127.0.0.1:9' })));
    assert.ok(!canCopyServerSide(here, openStore(path.join(work, 'local'))));
  });
});

describe('s3-copy with a local directory: get and put', () => {
  it('local to S3 and back, identical; the bytes do go through here (GETs seen by the proxy)', async () => {
    const local = path.join(work, `local-${dirs++}`);
    const back = path.join(work, `back-${dirs++}`);
    await ok(`head -c 3000000 /dev/urandom > ${work}/img && file-blocks ${work}/img | zstd-chunk | s3-put ${local} > /dev/null`);
    const dst = await newBucket();
    const up = await ok(`s3-list ${local} | ${copyViaProxy()} --to s3://${dst}/up`);
    const upJournal = objectsOf(up.stdout);
    assert.strictEqual(upJournal.at(-1).key, 'volume.json', 'the commit object last');
    assert.ok(upJournal.every((o) => o.store === `s3://${dst}/up/` && typeof o.sha256 === 'string'));
    proxy.clear();
    const down = await ok(`s3-list s3://${dst}/up | ${copyViaProxy()} --to ${back}`);
    // The same proxy sees the bytes when they do pass through: the detector above can fail.
    assert.ok(gets().length >= upJournal.length, 'S3 to local reads each object');
    assert.strictEqual(copies().length, 0);
    assert.deepStrictEqual(objectsOf(down.stdout).map((o) => o.sha256), upJournal.map((o) => o.sha256));
    await ok(`s3-list ${back} | s3-get | zstd-unchunk | file-write ${work}/img.back && cmp ${work}/img ${work}/img.back`);
  });

  it('S3 to local keeps every key and byte', async () => {
    const src = await filledBucket();
    const local = path.join(work, `keys-${dirs++}`);
    await ok(`s3-list ${src.url} | s3-copy --to ${local} > /dev/null`);
    assertSame(await readBack(local), OBJECTS);
    const store = openStore(local);
    assert.strictEqual((await store.head('plain.bin')).sha256, sha256(OBJECTS.get('plain.bin')));
  });

  it('S3 to local, --no-fsync, buffers used again: objects of many sizes, some with only an MD5 ETag, all identical', async () => {
    // 2 to 8 MiB objects are read into the 8 MiB buffers that are used again, 4 at once,
    // 24 of them: a buffer handed back too early would mix one object's bytes into another.
    // The "-aws" ones are put without the SHA-256 sluice keeps, so the get checks their MD5
    // ETag and the put hashes them; the 9 MiB one is read without a pool buffer.
    const objects = new Map();
    for (let i = 0; i < 24; i++) objects.set(`o${String(i).padStart(2, '0')}${i % 5 === 0 ? '-aws' : ''}`, crypto.randomBytes((2 << 20) + i * 260_000));
    objects.set('big', crypto.randomBytes(9 << 20));
    objects.set('small', crypto.randomBytes(1000));
    const bucket = await newBucket();
    const store = new S3Store(bucket, 'pre/');
    const { PutObjectCommand } = require('@aws-sdk/client-s3');
    for (const [key, data] of objects) {
      if (key.endsWith('-aws')) await store.client.send(new PutObjectCommand({ Bucket: bucket, Key: `pre/${key}`, Body: data }));
      else await store.put(key, data);
    }
    const local = path.join(work, `nofsync-${dirs++}`);
    const r = await ok(`s3-list s3://${bucket}/pre | s3-copy -j 4 --no-fsync --to ${local}`);
    const journal = objectsOf(r.stdout);
    assert.deepStrictEqual(journal.map((o) => o.key), [...objects.keys()].sort());
    for (const o of journal) assert.strictEqual(o.sha256, sha256(objects.get(o.key)), `the journal's SHA-256 of ${o.key}`);
    for (const [key, data] of objects) assert.ok(fs.readFileSync(path.join(local, key)).equals(data), `${key} identical on disk`);
    assertSame(await readBack(local), objects);
  });

  it('S3 to local, an object over 64 MiB on a plain-http endpoint: one streamed GET, identical, its SHA-256 checked', async () => {
    const data = crypto.randomBytes((70 << 20) + 999);
    const src = await filledBucket(new Map([['big/disk.img', data]]));
    const local = path.join(work, `stream-${dirs++}`);
    proxy.clear();
    const r = await ok(`s3-list ${src.url} | ${copyViaProxy()} --to ${local}`);
    assert.ok(fs.readFileSync(path.join(local, 'big/disk.img')).equals(data), account(r));
    assert.strictEqual(objectsOf(r.stdout)[0].sha256, sha256(data));
    assert.deepStrictEqual(gets().map((e) => e.url), [`/${src.url.slice(5)}/big/disk.img`], 'one GET for the whole object');
    // A stored SHA-256 that the bytes do not match: nothing appears.
    const bad = await filledBucket(new Map([['big/disk.img', data]]));
    const store = new S3Store(bad.url.slice(5).split('/')[0], 'pre/');
    const { CopyObjectCommand } = require('@aws-sdk/client-s3');
    const bucket = bad.url.slice(5).split('/')[0];
    await store.client.send(new CopyObjectCommand({ Bucket: bucket, Key: 'pre/big/disk.img', CopySource: `${bucket}/pre/big/disk.img`, MetadataDirective: 'REPLACE', Metadata: { 'sluice-sha256': sha256(Buffer.from('other')) } }));
    const other = path.join(work, `stream-${dirs++}`);
    const f = await sh(`s3-list ${bad.url} | s3-copy --to ${other}`);
    assert.strictEqual(f.code, 5, account(f));
    assert.match(f.stderr, /big\/disk\.img.*SHA-256.*nothing was copied/, account(f));
    assert.ok(!fs.existsSync(path.join(other, 'big/disk.img')), 'nothing of it appears');
    assert.deepStrictEqual(fs.existsSync(path.join(other, 'big')) ? fs.readdirSync(path.join(other, 'big')) : [], [], 'no temporary file left');
  });

  it('local to local, objects in pieces (over 64 MiB, flushed as they grow): identical, with their SHA-256', async () => {
    const src = path.join(work, `pieces-${dirs++}`);
    const dst = path.join(work, `pieces-${dirs++}`);
    const store = openStore(src);
    const objects = new Map([
      ['a/huge.bin', crypto.randomBytes(150 << 20)],
      ['b/odd.bin', crypto.randomBytes((65 << 20) + 12345)],
    ]);
    for (const [key, data] of objects) await store.put(key, data);
    const r = await ok(`s3-list ${src} | s3-copy --to ${dst}`);
    for (const o of objectsOf(r.stdout)) assert.strictEqual(o.sha256, sha256(objects.get(o.key)), `the journal's SHA-256 of ${o.key}`);
    for (const [key, data] of objects) assert.ok(fs.readFileSync(path.join(dst, key)).equals(data), `${key} identical`);
    assert.strictEqual((await openStore(dst).head('a/huge.bin')).sha256, sha256(objects.get('a/huge.bin')));
    assert.deepStrictEqual(fs.readdirSync(path.join(dst, 'a')).sort(), ['%.meta.huge.bin', 'huge.bin'], 'no temporary file left');
  });

  it('local to local, an object that is not there: status 1 naming it', async () => {
    const src = path.join(work, `l-${dirs++}`);
    const store = openStore(src);
    await store.put('a', Buffer.from('a'));
    await store.put('b', Buffer.from('b'));
    const listing = path.join(work, 'local.listing');
    await ok(`s3-list ${src} > ${listing}`);
    await store.delete(['b']);
    const r = await sh(`s3-copy --to ${path.join(work, `l-${dirs++}`)} < ${listing}`);
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /^s3-copy: stdin:2: .*no object "b"/, account(r));
    assert.deepStrictEqual(objectsOf(r.stdout).map((o) => o.key), ['a']);
  });

  it('a record whose size or sha256 does not match the object: status 5, nothing of it copied', async () => {
    const src = path.join(work, `s-${dirs++}`);
    await openStore(src).put('a', Buffer.from('abc'));
    for (const wrong of [{ size: 4 }, { sha256: sha256(Buffer.from('abd')) }]) {
      const dst = path.join(work, `s-${dirs++}`);
      const input = path.join(work, `wrong-${dirs++}.ndjson`);
      const out = new Encoder();
      out.push({ type: 'object', key: 'a', store: src, ...wrong });
      out.end();
      fs.writeFileSync(input, Buffer.concat(out.take()));
      const r = await sh(`s3-copy --to ${dst} < ${input}`);
      assert.strictEqual(r.code, 5, account(r));
      assert.match(r.stderr, /^s3-copy: stdin:1: .*object "a": .*nothing was copied/, account(r));
      assert.ok(!fs.existsSync(dst) || objectsOf((await ok(`s3-list ${dst}`)).stdout).length === 0);
    }
  });
});

describe('s3-copy usage', () => {
  it('refuses a missing --to and bad sizes (status 2)', async () => {
    for (const args of ['', '--to x --multipart-threshold 6G', '--to x --part-size 1M', '--to x --part-size ten']) {
      const r = await sh(`s3-copy ${args} < /dev/null`);
      assert.strictEqual(r.code, 2, account(r));
    }
  });
});
