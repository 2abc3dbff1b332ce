'use strict';
// The S3 store against moto's S3 server: the shared contract, then what only S3 has (prefixes,
// the stored SHA-256, archived objects, retries and permanent errors), then the object commands
// on s3:// URLs end to end.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { HeadObjectCommand, PutObjectCommand, RestoreObjectCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { storeContract } = require('./lib/store-contract');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { S3Store } = require('../dist/core/store-s3.js');
const { s3Client } = require('../dist/core/store-s3-client.js');
const { MIN_PART_SIZE, MAX_PARTS, partSizeFor } = require('../dist/core/store-s3-transfer.js');
const { NotFoundError, StoreError } = require('../dist/core/store.js');
const { IntegrityError } = require('../dist/core/errors.js');
const { ShaPool } = require('../dist/core/sha-pool.js');

let moto;
let buckets = 0;
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');

before(async () => {
  await initDigest();
  moto = await startMoto();
  moto.useEnv();
});
after(() => moto?.stop());

async function newBucket() {
  const name = `bucket-${buckets++}`;
  await moto.createBucket(name);
  return name;
}

/** A fresh bucket; parts at S3's least size, so that "larger than one part" stays small. */
async function makeStore() {
  const store = new S3Store(await newBucket(), '', { partSize: MIN_PART_SIZE });
  return { store, partSize: MIN_PART_SIZE };
}

const motoGaps = {
  // moto 5.2's ListObjectVersions, given a KeyMarker alone that is not a stored key, leaves out
  // the first version after it (S3 lists every version after the marker).
  versionsAfterAbsentKey: 'moto leaves out the first version after a KeyMarker that is not a stored key',
};
// On moto's plain-http endpoint, listings and reads go without the SDK's client (signed by
// sigv4.ts); on AWS's https endpoints, through it. Both ways keep the contract.
storeContract('S3 (moto)', makeStore, motoGaps);
storeContract('S3 through the SDK only (moto)', async () => ({ store: new S3Store(await newBucket(), '', { partSize: MIN_PART_SIZE, raw: false }), partSize: MIN_PART_SIZE }), motoGaps);

async function keys(store, prefix = '') {
  const out = [];
  for await (const page of store.list(prefix)) out.push(...page.map((i) => i.key));
  return out;
}

/**
 * A TCP proxy in front of moto that fails connections as `plan` says, one entry per connection
 * ("reset": cut at the first bytes; "slowdown": a 503 SlowDown reply; "denied": a 403
 * AccessDenied reply), then passes the rest through. Counts the requests it saw.
 */
async function faultyProxy(plan, always) {
  const target = new URL(moto.url);
  const stats = { requests: 0 };
  const reply = (status, code, message) =>
    `HTTP/1.1 ${status}\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`)}\r\n\r\n<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  const server = net.createServer((socket) => {
    const fault = plan.shift() ?? always;
    socket.on('error', () => {});
    socket.on('data', (d) => (stats.requests += (d.toString('latin1').match(/(^|\r\n)(GET|PUT|POST|HEAD|DELETE) \S+ HTTP\/1\.1\r\n/g) ?? []).length));
    if (fault === 'reset') return socket.once('data', () => socket.resetAndDestroy());
    if (fault === 'slowdown') return socket.once('data', () => socket.end(reply('503 Slow Down', 'SlowDown', 'Please reduce your request rate.')));
    if (fault === 'denied') return socket.once('data', () => socket.end(reply('403 Forbidden', 'AccessDenied', 'Access Denied')));
    const upstream = net.connect(Number(target.port), target.hostname);
    upstream.on('error', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, stats, close: () => new Promise((r) => server.close(r)) };
}

/** Runs `work(proxy)` with a faulty proxy in front of moto, closed afterwards. */
async function throughProxy(plan, always, work) {
  const proxy = await faultyProxy(plan, always);
  try {
    await work(proxy);
  } finally {
    await proxy.close();
  }
}

describe('S3 store: what only S3 has', () => {
  it('keys are relative to the URL\'s prefix; prefix and key together are held to 1024 bytes', async () => {
    const bucket = await newBucket();
    const vols = new S3Store(bucket, 'vols/');
    const other = new S3Store(bucket, 'volsx/');
    await vols.put('a/b', Buffer.from('in vols'));
    await other.put('a/b', Buffer.from('in volsx'));
    assert.deepStrictEqual(await keys(vols), ['a/b']);
    assert.strictEqual((await vols.get('a/b')).data.toString(), 'in vols');
    assert.deepStrictEqual(await keys(new S3Store(bucket, '')), ['vols/a/b', 'volsx/a/b']);
    await assert.rejects(vols.put('K'.repeat(1020), Buffer.from('x')), (err) => err instanceof StoreError && err.kind === 'permanent' && /1025 bytes long with the URL's prefix/.test(err.message));
  });

  it('keeps the SHA-256 as x-amz-meta-sluice-sha256, and a read that disagrees with it is an integrity error', async () => {
    const bucket = await newBucket();
    const store = new S3Store(bucket, 'p/');
    const data = crypto.randomBytes(1000);
    await store.put('k', data, { metadata: { owner: 'me' } });
    const client = s3Client({});
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'p/k' }));
    assert.deepStrictEqual(head.Metadata, { owner: 'me', 'sluice-sha256': sha256(data) });
    // Written by another tool, with a checksum that is not the data's.
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/bad', Body: data, Metadata: { 'sluice-sha256': sha256(Buffer.from('other')) } }));
    await assert.rejects(store.get('bad'), (err) => err instanceof IntegrityError && err.exitCode === 5 && /s3:\/\/.*\/p\/: object "bad": the data's SHA-256/.test(err.message));
    await assert.rejects(store.put('m', data, { metadata: { Upper: 'x' } }), (err) => err instanceof StoreError && /metadata name "Upper"/.test(err.message));
  });

  it('whole objects are checked on hashing threads when given some: the stored SHA-256, or else a single-part MD5 ETag', async () => {
    const bucket = await newBucket();
    const sha = new ShaPool();
    try {
      const store = new S3Store(bucket, '', { sha });
      const client = s3Client({});
      const data = crypto.randomBytes(3 << 20);
      // A copy: the put may move its buffer to a hashing thread.
      await store.put('ours', Buffer.from(data));
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'foreign', Body: data }));
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'lying', Body: data, Metadata: { 'sluice-sha256': sha256(Buffer.from('other')) } }));
      assert.ok((await store.get('ours')).data.equals(data));
      assert.ok((await store.get('foreign')).data.equals(data), 'checked against its MD5 ETag');
      await assert.rejects(store.get('lying'), (err) => err instanceof IntegrityError && /object "lying": the data's SHA-256 is .*, the object's sluice-sha256 says/.test(err.message));
    } finally {
      await sha.close();
    }
  });

  it('a GLACIER object lists with its class and reads as "archived" until restored', async () => {
    const bucket = await newBucket();
    const store = new S3Store(bucket, '');
    await store.put('cold', Buffer.from('frozen'), { storageClass: 'GLACIER' });
    const [listed] = (await (async () => { for await (const p of store.list('')) return p; })());
    assert.strictEqual(listed.storageClass, 'GLACIER');
    assert.strictEqual((await store.head('cold')).storageClass, 'GLACIER');
    await assert.rejects(store.get('cold'), (err) => err instanceof StoreError && err.kind === 'archived' && /"cold".*restored first/.test(err.message));
    await s3Client({}).send(new RestoreObjectCommand({ Bucket: bucket, Key: 'cold', RestoreRequest: { Days: 1 } }));
    assert.strictEqual((await store.get('cold')).data.toString(), 'frozen');
  });

  it('cut connections and 503 SlowDown are retried until the call succeeds', async () => {
    const bucket = await newBucket();
    await throughProxy(['reset', 'slowdown', 'reset'], undefined, async (proxy) => {
      const store = new S3Store(bucket, '', { endpoint: proxy.url });
      await store.put('k', Buffer.from('through faults'));
      assert.strictEqual((await new S3Store(bucket, '').get('k')).data.toString(), 'through faults');
      assert.ok(proxy.stats.requests >= 4, `${proxy.stats.requests} requests`);
    });
  });

  it('a transient failure that lasts gives up after the tries allowed, saying so', async () => {
    await throughProxy([], 'slowdown', async (proxy) => {
      const store = new S3Store('bkt', 'x/', { endpoint: proxy.url, maxTries: 3 });
      await assert.rejects(store.get('k'), (err) => err instanceof StoreError && err.kind === 'transient' && /^s3:\/\/bkt\/x\/: GetObject "k": SlowDown: .*\(gave up after 3 tries\)$/.test(err.message));
      assert.strictEqual(proxy.stats.requests, 3);
    });
  });

  it('a streamed read (one GET, in segments) cut mid-body goes on from the first segment not whole, of the same object', async () => {
    const bucket = await newBucket();
    const data = crypto.randomBytes((20 << 20) + 777);
    await new S3Store(bucket, '').put('big', data);
    const etag = (await new S3Store(bucket, '').head('big')).etag;
    // The first GET's connection is cut 9.5 MiB into its reply: 4 MiB segments 0 and 1 came
    // whole, so the next GET asks from 8 MiB on.
    const heads = [];
    const target = new URL(moto.url);
    let cut = false;
    // Set later: every connection is cut after this many bytes of its reply.
    let cutEvery = 0;
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      const upstream = net.connect(Number(target.port), target.hostname);
      upstream.on('error', () => socket.destroy());
      socket.on('data', (d) => {
        const head = /^GET (\S+) HTTP\/1\.1\r\n[\s\S]*?\r\n\r\n/.exec(d.toString('latin1'));
        if (head) heads.push({ path: head[1], range: /\r\nrange: (\S+)/i.exec(head[0])?.[1], ifMatch: /\r\nif-match: (\S+)/i.exec(head[0])?.[1] });
        upstream.write(d);
      });
      // The reply is passed on up to the cut, exactly, then the connection ends (a FIN: every
      // byte before it arrives, so which segments came whole does not depend on timing).
      let sent = 0;
      let limit;
      upstream.on('data', (d) => {
        if (limit === undefined) {
          if (cutEvery) limit = cutEvery;
          else if (!cut && heads.length === 1) [limit, cut] = [9.5 * (1 << 20), true];
          else limit = Infinity;
        }
        const room = limit - sent;
        sent += d.length;
        if (d.length >= room) {
          socket.end(d.subarray(0, room));
          return upstream.destroy();
        }
        socket.write(d);
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      const store = new S3Store(bucket, '', { endpoint: `http://127.0.0.1:${server.address().port}` });
      const parts = [];
      const free = [Buffer.alloc(4 << 20), Buffer.alloc(4 << 20)];
      const reader = {
        size: 4 << 20,
        length: data.length,
        next: () => free.pop() ?? Buffer.alloc(4 << 20),
        filled: (segment) => {
          parts.push(Buffer.from(segment));
          free.push(Buffer.from(segment.buffer, segment.byteOffset, 4 << 20));
        },
      };
      const info = await store.readSegments('big', { start: 0, end: data.length }, reader, etag);
      assert.ok(cut, 'the first GET was cut');
      assert.strictEqual(info.etag, etag);
      assert.ok(Buffer.concat(parts).equals(data), 'every byte once, in order');
      assert.deepStrictEqual(heads, [
        { path: `/${bucket}/big`, range: `bytes=0-${data.length - 1}`, ifMatch: etag },
        { path: `/${bucket}/big`, range: `bytes=${8 << 20}-${data.length - 1}`, ifMatch: etag },
      ]);
      // Every GET cut after 5 MiB, with 2 tries a call: each brings a whole segment, which
      // counts the tries afresh, so the read still ends, every byte once.
      cutEvery = 5 << 20;
      heads.length = 0;
      parts.length = 0;
      const patient = new S3Store(bucket, '', { endpoint: `http://127.0.0.1:${server.address().port}`, maxTries: 2 });
      await patient.readSegments('big', { start: 0, end: data.length }, reader, etag);
      assert.ok(Buffer.concat(parts).equals(data), 'every byte once, in order, through the cuts');
      // Each GET from the first segment not yet whole: more GETs than two tries allow.
      assert.deepStrictEqual(heads.map((h) => h.range), [0, 4, 8, 12, 16].map((m) => `bytes=${m << 20}-${data.length - 1}`));
      cutEvery = 0;
      // Replaced since the HEAD: the GET's If-Match fails, and nothing is read.
      await new S3Store(bucket, '').put('big', Buffer.from('replaced'));
      parts.length = 0;
      await assert.rejects(store.readSegments('big', { start: 0, end: data.length }, { ...reader, length: data.length }, etag), (err) => err instanceof StoreError && /PreconditionFailed|412/.test(err.message));
      assert.strictEqual(parts.length, 0);
      // On https (or with no raw client) a store reads ranges instead: nothing streamed.
      const secure = new S3Store(bucket, '', { endpoint: 'https://127.0.0.1:1' });
      assert.strictEqual(await secure.readSegments('big', { start: 0, end: 8 }, reader, etag), undefined);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('AccessDenied and NoSuchBucket fail at once, naming the bucket and the key', async () => {
    await throughProxy([], 'denied', async (proxy) => {
      const store = new S3Store('bkt', 'x/', { endpoint: proxy.url });
      await assert.rejects(store.put('k', Buffer.from('v')), (err) => err instanceof StoreError && err.kind === 'permanent' && /^s3:\/\/bkt\/x\/: PutObject "k": AccessDenied: Access Denied$/.test(err.message));
      assert.strictEqual(proxy.stats.requests, 1);
    });
    const missing = new S3Store('no-such-bucket', 'x/');
    await assert.rejects(missing.put('k', Buffer.from('v')), (err) => err instanceof NotFoundError && /^s3:\/\/no-such-bucket\/x\/: PutObject "k": no such bucket/.test(err.message));
    await assert.rejects(keys(missing), (err) => err instanceof NotFoundError && /no-such-bucket.*no such bucket/.test(err.message));
  });

  it('the part size grows so that no object needs more than 10,000 parts', () => {
    assert.strictEqual(partSizeFor(1, 8 << 20), 8 << 20);
    assert.strictEqual(partSizeFor(80000 << 20, 8 << 20), 8 << 20);
    const size = 5 * 2 ** 40; // S3's largest object
    const part = partSizeFor(size, 8 << 20);
    assert.ok(Math.ceil(size / part) <= MAX_PARTS && part % (1 << 20) === 0, `${part}`);
    assert.strictEqual(partSizeFor(100, 1), MIN_PART_SIZE);
  });
});

describe('object commands on s3:// URLs', () => {
  const work = tmpdir('sluice-s3moto-');
  const env = () => moto.env;

  it('file-blocks | zstd-chunk | s3-put, then s3-list | s3-get | zstd-unchunk | file-write, gives the image back', async () => {
    const bucket = await newBucket();
    const img = path.join(work, 'disk.img');
    const out = path.join(work, 'restored.img');
    // Random data, a hole and text: compressible and incompressible chunks, and zero blocks.
    await ok(`head -c 5000000 /dev/urandom > ${img} && truncate -s 12M ${img} && yes sluice | head -c 3000000 >> ${img}`);
    const put = await ok(`file-blocks ${img} | zstd-chunk | s3-put s3://${bucket}/x > ${work}/put.journal`, { env: env() });
    const r = await ok(`s3-list s3://${bucket}/x | tee ${work}/list.manifest | s3-get | zstd-unchunk | file-write ${out}`, { env: env() });
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(img)), `restored image differs${account(r)}${account(put)}`);
    const listed = fs.readFileSync(`${work}/list.manifest`, 'utf8');
    assert.match(listed, /"key":"volume.json".*"commit":true.*"store":"s3:\/\/bucket-\d+\/x\/"/);
  });

  it('--endpoint-url, --region and --storage-class reach S3; an archived object fails s3-get naming the key', async () => {
    const bucket = await newBucket();
    const { AWS_ENDPOINT_URL_S3, ...rest } = moto.env;
    const flags = `--endpoint-url ${AWS_ENDPOINT_URL_S3} --region eu-west-1`;
    const noEndpoint = { ...rest, AWS_ENDPOINT_URL_S3: '', AWS_ENDPOINT_URL: '' };
    await ok(`printf 'cold data' > ${work}/cold && file-blocks ${work}/cold | zstd-chunk | s3-put ${flags} --storage-class GLACIER s3://${bucket}/c > /dev/null`, { env: noEndpoint });
    const list = await ok(`s3-list ${flags} s3://${bucket}/c`, { env: noEndpoint });
    assert.match(list.stdout.toString(), /"storageClass":"GLACIER"/);
    const get = await sh(`s3-list ${flags} s3://${bucket}/c | s3-get ${flags} > /dev/null`, { env: noEndpoint });
    assert.strictEqual(get.code, 1, account(get));
    assert.match(get.stderr, /^s3-get: stdin:\d+: s3:\/\/bucket-\d+\/c\/: GetObject ".*": the object is archived .* restored first/m, account(get));
  });
});
