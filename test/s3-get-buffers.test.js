'use strict';
// s3-get reads objects and pieces into reused buffers (BufferPool): a buffer goes back to the
// pool only once the frame made of it was written, never while a read may still fill it. Here
// against a small S3 GetObject server whose replies can be cut in the middle of the body.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const http = require('node:http');
const { sh, describe: account } = require('./lib/run');
const { frames, decodeAll, PAYLOAD } = require('./lib/frames');
const { initDigest } = require('../dist/core/digest.js');
const { BufferPool } = require('../dist/core/buffer-pool.js');
const { PayloadPool } = require('../dist/core/payload-pool.js');
const { ShaPool, digestOf } = require('../dist/core/sha-pool.js');
const { S3Store } = require('../dist/core/store-s3.js');

const MiB = 1 << 20;
const STARTED = new Date().toUTCString();
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');
const md5 = (data) => crypto.createHash('md5').update(data).digest('hex');

/**
 * GetObject (path-style, ranges too) and HeadObject of the objects in `objects` (key -> Buffer), each with its
 * MD5 ETag and sluice's SHA-256. `cut(n, key, start)` says whether the n-th GET (from 0), of
 * `key` from byte `start`, ends after half its body, the connection dropped.
 */
async function objectServer(objects, cut = () => false) {
  let gets = 0;
  const server = http.createServer((req, res) => {
    const key = decodeURIComponent(new URL(req.url, 'http://x').pathname.split('/').slice(2).join('/'));
    const data = objects.get(key);
    if (req.method === 'HEAD' && data) {
      res.writeHead(200, { etag: `"${md5(data)}"`, 'x-amz-meta-sluice-sha256': sha256(data), 'content-length': data.length, 'last-modified': STARTED });
      return res.end();
    }
    if (req.method !== 'GET' || !data) {
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>');
      return;
    }
    const n = gets++;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] !== '' ? Math.min(Number(m[2]) + 1, data.length) : data.length;
    const body = data.subarray(start, end);
    const headers = { etag: `"${md5(data)}"`, 'x-amz-meta-sluice-sha256': sha256(data), 'content-length': body.length, 'content-type': 'application/octet-stream', 'last-modified': STARTED };
    if (m) headers['content-range'] = `bytes ${start}-${end - 1}/${data.length}`;
    res.writeHead(m ? 206 : 200, headers);
    if (cut(n, key, start)) {
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, gets: () => gets, close: () => new Promise((r) => server.close(r)) };
}

const env = { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1' };
before(async () => {
  await initDigest();
  Object.assign(process.env, env);
});

describe('reads into reused buffers', () => {
  it('BufferPool.takeFor gives pool buffers for reads of a quarter of one up to one', () => {
    const pool = new BufferPool(8 * MiB, 2);
    assert.strictEqual(pool.takeFor(8 * MiB + 1), undefined);
    assert.strictEqual(pool.takeFor(2 * MiB - 1), undefined);
    const a = pool.takeFor(2 * MiB);
    assert.strictEqual(a.buffer.byteLength, 8 * MiB);
    pool.lend(a.subarray(0, 2 * MiB), 1);
    assert.notStrictEqual(pool.takeFor(8 * MiB).buffer, a.buffer, 'lent, not free');
    pool.returned([a.subarray(0, 2 * MiB)]);
    assert.strictEqual(pool.takeFor(3 * MiB).buffer, a.buffer, 'free again once written');
  });

  it('a partly filled buffer moves to a hashing thread only when the caller says it is the only view in use', async () => {
    const sha = new ShaPool(1);
    try {
      const whole = Buffer.allocUnsafeSlow(8 * MiB);
      const data = crypto.randomBytes(3 * MiB);
      data.copy(whole);
      const part = whole.subarray(0, data.length);
      await assert.rejects(sha.digest(part, 'sha256'), /must own its ArrayBuffer/);
      const inline = await digestOf(part, 'sha256', sha);
      assert.strictEqual(inline.digest, sha256(data));
      assert.strictEqual(part.length, data.length, 'hashed here: not detached');
      const moved = await digestOf(part, 'sha256', sha, true);
      assert.strictEqual(moved.digest, sha256(data));
      assert.strictEqual(part.length, 0, 'moved: detached');
      assert.ok(moved.data.equals(data));
      assert.strictEqual(moved.data.buffer.byteLength, 8 * MiB, 'the whole buffer came back, for the pool');
      await assert.rejects(sha.digest(Buffer.allocUnsafeSlow(2 * MiB).subarray(MiB), 'sha256', true), /must own its ArrayBuffer/);
    } finally {
      await sha.close();
    }
  });

  it('PayloadPool gives shared buffers of the exact length, and takes back only its own, whole ones', () => {
    const pool = new PayloadPool(8 * MiB, 1);
    assert.strictEqual(pool.take(8 * MiB + 1), undefined);
    assert.strictEqual(pool.take(2 * MiB - 1), undefined);
    const a = pool.take(3 * MiB);
    assert.strictEqual(a.length, 3 * MiB);
    assert.ok(a.buffer instanceof SharedArrayBuffer && a.buffer.byteLength === 8 * MiB);
    assert.notStrictEqual(pool.take(3 * MiB).buffer, a.buffer, 'in use: not given again');
    pool.give(a);
    pool.give(a);
    const b = pool.take(8 * MiB);
    assert.strictEqual(b.buffer, a.buffer, 'free once given back');
    assert.notStrictEqual(pool.take(8 * MiB).buffer, a.buffer, 'given back twice, kept once');
    pool.give(Buffer.alloc(8 * MiB));
    pool.give(b.subarray(MiB));
    pool.give(undefined);
    assert.notStrictEqual(pool.take(8 * MiB).buffer, a.buffer, 'not its own, or not whole: not taken');
  });

  it('a buffer in shared memory is hashed on a thread where it is: not moved, not copied', async () => {
    const sha = new ShaPool(1);
    try {
      const data = crypto.randomBytes(3 * MiB);
      const shared = Buffer.from(new SharedArrayBuffer(8 * MiB), MiB, data.length);
      data.copy(shared);
      for (const kind of ['sha256', 'md5']) {
        const r = await digestOf(shared, kind, sha);
        assert.strictEqual(r.digest, crypto.createHash(kind).update(data).digest(kind === 'md5' ? 'hex' : 'base64'), kind);
        assert.strictEqual(r.data, shared, 'the same buffer');
        assert.ok(shared.equals(data), 'still readable here');
      }
    } finally {
      await sha.close();
    }
  });

  it('a range read cut in its body is read again into the same buffer, which the data is a view of', async () => {
    const data = crypto.randomBytes(3 * MiB + 5);
    const server = await objectServer(new Map([['k', data]]), (n) => n < 2);
    const sha = new ShaPool(1);
    try {
      const store = new S3Store('bkt', '', { endpoint: server.url, sha });
      const given = [];
      const buffer = (n) => {
        const b = Buffer.allocUnsafeSlow(8 * MiB);
        given.push(n);
        return b;
      };
      const got = await store.get('k', { buffer });
      assert.ok(got.data.equals(data));
      assert.strictEqual(server.gets(), 3, 'two cut replies, then a whole one');
      assert.deepStrictEqual(given, [data.length], 'one buffer for the read and its retries');
      assert.strictEqual(got.data.byteOffset, 0);
      assert.strictEqual(got.data.buffer.byteLength, 8 * MiB, 'back from the hashing thread whole');
      const range = await store.get('k', { range: { start: MiB, end: 3 * MiB }, buffer });
      assert.ok(range.data.equals(data.subarray(MiB, 3 * MiB)));
      assert.strictEqual(range.data.buffer.byteLength, 8 * MiB);
    } finally {
      await sha.close();
      await server.close();
    }
  });

  it('s3-get writes every object and piece with its own bytes while buffers are reused and reads are cut', async () => {
    // Objects of different sizes (under, at and over the 8 MiB buffers), one read in pieces;
    // every fifth GET is cut halfway through its body and retried, and so is the first GET of
    // the large one (read by one GET from byte 0, its pieces the body's segments).
    const streamed = [];
    const sizes = [3 * MiB, 8 * MiB, 5 * MiB + 17, 8 * MiB, 2 * MiB + 1, 11 * MiB, 8 * MiB - 3, 6 * MiB, 20 * MiB + 9, 4 * MiB, 8 * MiB, 7 * MiB];
    const objects = new Map(sizes.map((size, i) => [`o/${i}`, crypto.randomBytes(size)]));
    const server = await objectServer(objects, (n, key, start) => {
      if (key === 'o/8') streamed.push(start);
      return n % 5 === 3 || (key === 'o/8' && start === 0);
    });
    try {
      const input = frames([...objects].map(([key, data]) => ({ type: 'object', key, size: data.length })));
      // A slow reader behind a small pipe buffer: frames wait to be written while reads go on.
      const r = await sh(`s3-get -j 3 --pieces-above 16M --endpoint-url ${server.url} s3://bkt/ | (sleep 0.5; cat)`, { input, env });
      assert.strictEqual(r.code, 0, account(r));
      const recs = decodeAll(r.stdout).filter((rec) => rec.type === 'object');
      const joined = new Map();
      for (const rec of recs) {
        const parts = joined.get(rec.key) ?? [];
        parts.push({ offset: rec.offset ?? 0, data: Buffer.from(rec[PAYLOAD]) });
        joined.set(rec.key, parts);
      }
      assert.strictEqual(recs.length, sizes.length - 1 + 3, 'the 20 MiB object in 3 pieces');
      for (const [key, data] of objects) {
        const parts = joined.get(key).sort((a, b) => a.offset - b.offset);
        assert.ok(Buffer.concat(parts.map((p) => p.data)).equals(data), `${key}: the bytes written are the object's`);
      }
      assert.ok(server.gets() > objects.size + 3, 'some reads were cut and made again');
      // Cut at 10 MiB: its first 8 MiB piece was whole, so the second GET asks from there.
      assert.deepStrictEqual(streamed.slice(0, 2), [0, 8 * MiB], 'the large object: one GET, then one from the first piece not whole');
    } finally {
      await server.close();
    }
  });
});

after(() => {
  for (const k of Object.keys(env)) delete process.env[k];
});
