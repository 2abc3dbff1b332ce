'use strict';
// Objects larger than a frame: s3-get reads them in pieces (ranged reads, several at once, the
// whole SHA-256 checked before the last piece goes out) and s3-put joins the pieces into one
// object (one multipart upload on S3, one temporary file in a directory), on moto and on the
// local store. A piece stream that is damaged, cut short, out of order or interrupted stores
// nothing and leaves no upload or temporary file behind.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { HeadObjectCommand, ListMultipartUploadsCommand, S3Client } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { frames, decodeAll, PAYLOAD } = require('./lib/frames');

const MiB = 1 << 20;
const work = tmpdir('sluice-pieces-');
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');
let moto;
let client;
let n = 0;
const fresh = (name) => path.join(work, `${name}-${n++}`);

// 21 MiB and a byte: in pieces of 5 MiB, five pieces, the last one short.
const big = crypto.randomBytes(21 * MiB + 1);
const small = Buffer.from('a small object beside the big one\n');

const linesOf = (stdout) => stdout.toString().trim().split('\n').map((l) => JSON.parse(l));

/** The pieces of `data` as s3-get makes them, `pieceSize` bytes each but the last. */
function piecesOf(key, data, pieceSize, extra = {}) {
  const out = [];
  for (let offset = 0; offset < data.length; offset += pieceSize) {
    out.push({ type: 'object', key, size: data.length, offset, ...extra, data: data.subarray(offset, offset + pieceSize) });
  }
  return out;
}

/** A local store holding the big and the small object, written by s3-put (so with their checksums). */
async function sourceDir() {
  const dir = fresh('src');
  const input = frames([{ type: 'object', key: 'small.txt', data: small }]);
  await ok(`s3-put ${dir} > /dev/null`, { input });
  // Written as a plain file too: a directory's object is a file.
  fs.writeFileSync(path.join(dir, 'big image.bin'), big);
  return dir;
}

async function uploadsLeft(bucket) {
  const res = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  return res.Uploads ?? [];
}

function tempFilesIn(dir) {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => !f.startsWith('%.meta.') && f !== 'big image.bin' && f !== 'small.txt') : [];
}

before(async () => {
  await initDigest();
  moto = await startMoto();
  moto.useEnv();
  client = new S3Client({ endpoint: moto.url, forcePathStyle: true, region: 'us-east-1' });
});

after(async () => {
  client?.destroy();
  await moto?.stop();
});

describe('OrderedHash', () => {
  const { OrderedHash } = require('../dist/core/object-pieces.js');
  const { SerialSha } = require('../dist/core/serial-sha.js');

  it('hashes pieces in the order they were added, whatever order they arrive in, on its thread or not', async () => {
    const whole = crypto.randomBytes(3 * MiB + 17);
    // Pieces of their own buffers, and views of a larger one (those cannot move to a thread).
    const cuts = [0, MiB, 2 * MiB, 3 * MiB, whole.length];
    const serial = new SerialSha();
    try {
      for (const hasher of [new OrderedHash(serial), new OrderedHash(), new OrderedHash(serial)]) {
        const pieces = cuts.slice(0, -1).map((start, i) => (i % 2 ? whole.subarray(start, cuts[i + 1]) : Buffer.from(whole.subarray(start, cuts[i + 1]))));
        // Later pieces resolve first.
        const got = await Promise.all(pieces.map((data, i) => hasher.add(new Promise((r) => setTimeout(() => r({ data }), 40 - 10 * i)))));
        assert.ok(Buffer.concat(got.map((g) => g.data)).equals(whole), 'the bytes come back');
        assert.strictEqual(await hasher.digest(), sha256(whole));
      }
      // A failed piece fails the digest, and leaves nothing unhandled.
      const failing = new OrderedHash(serial);
      const first = failing.add(Promise.reject(new Error('cut')));
      await assert.rejects(first, /cut/);
      await assert.rejects(failing.digest(), /cut/);
    } finally {
      await serial.close();
    }
  });
});

describe('s3-get in pieces', () => {
  it('reads an object larger than --pieces-above as consecutive pieces with offsets, the whole size and checksum', async () => {
    const dir = await sourceDir();
    // The checksum is there once the object was stored by s3-put.
    const copy = fresh('copy');
    await ok(`s3-list "${dir}" | s3-get --pieces-above 8M --piece-size 5M | s3-put "${copy}" > /dev/null`);
    const r = await ok(`s3-list "${copy}" | s3-get --pieces-above 8M --piece-size 5M`);
    const recs = decodeAll(r.stdout).filter((rec) => rec.type === 'object');
    const pieces = recs.filter((rec) => rec.key === 'big image.bin');
    assert.deepStrictEqual(pieces.map((p) => p.offset), [0, 5, 10, 15, 20].map((m) => m * MiB));
    assert.deepStrictEqual(pieces.map((p) => p[PAYLOAD].length), [5 * MiB, 5 * MiB, 5 * MiB, 5 * MiB, MiB + 1]);
    for (const p of pieces) {
      assert.strictEqual(p.size, big.length);
      assert.strictEqual(p.sha256, sha256(big));
    }
    assert.ok(Buffer.concat(pieces.map((p) => p[PAYLOAD])).equals(big));
    // The small object is whole, without "offset".
    const whole = recs.find((rec) => rec.key === 'small.txt');
    assert.strictEqual(whole.offset, undefined);
    assert.ok(whole[PAYLOAD].equals(small));
    // count counts the object in pieces once, and its size once.
    const counted = JSON.parse((await ok(`s3-list "${copy}" | s3-get --pieces-above 8M --piece-size 5M | count`)).stdout.toString());
    assert.deepStrictEqual([counted.objects, counted.pieces, counted.objectBytes, counted.payloadBytes], [2, 5, big.length + small.length, big.length + small.length]);
  });

  it('an object larger than a frame (256 MiB) goes in pieces by default, to moto and back, byte-identical', async () => {
    // Sparse but for a random head and tail, so that a misplaced piece shows.
    const dir = fresh('huge');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'huge.img');
    const size = 300 * MiB + 5;
    const fd = fs.openSync(file, 'w');
    const head = crypto.randomBytes(MiB);
    const tail = crypto.randomBytes(MiB + 5);
    fs.writeSync(fd, head, 0, head.length, 0);
    fs.writeSync(fd, tail, 0, tail.length, size - tail.length);
    fs.closeSync(fd);
    const whole = crypto.createHash('sha256');
    for (const chunk of [head, Buffer.alloc(size - head.length - tail.length), tail]) whole.update(chunk);
    const expected = whole.digest('base64');
    await moto.createBucket('pieces-huge');
    const up = await ok(`s3-list "${dir}" | s3-get | s3-put s3://pieces-huge/h`);
    const written = linesOf(up.stdout).find((rec) => rec.type === 'object');
    assert.deepStrictEqual([written.key, written.size, written.sha256], ['huge.img', size, expected]);
    assert.match(written.etag, /-38"$/, 'one multipart object of 38 parts of 8 MiB');
    const back = fresh('hugeback');
    await ok(`s3-list s3://pieces-huge/h | s3-get | s3-put "${back}" > /dev/null`);
    const copy = fs.readFileSync(path.join(back, 'huge.img'));
    assert.strictEqual(copy.length, size);
    assert.strictEqual(sha256(copy), expected);
    // Whole, it does not fit a frame: --pieces-above cannot go beyond one.
    const r = await sh(`s3-list s3://pieces-huge/h | s3-get --pieces-above 512M`);
    assert.strictEqual(r.code, 2, account(r));
  });

  it('refuses to let the last piece out when the whole object does not match its checksum (status 5)', async () => {
    const dir = await sourceDir();
    const listing = (await ok(`s3-list "${dir}"`)).stdout.toString();
    const damaged = listing.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const input = frames(damaged.filter((rec) => rec.type === 'object').map((rec) => (rec.key === 'big image.bin' ? { ...rec, sha256: sha256(small) } : rec)));
    const dst = fresh('dst');
    const bad = await sh(`s3-get --pieces-above 8M --piece-size 5M | s3-put "${dst}"`, { input });
    assert.strictEqual(bad.statuses[0], 5, account(bad));
    assert.match(bad.stderr, /big image\.bin.*SHA-256/);
    assert.ok(!fs.existsSync(path.join(dst, 'big image.bin')), 'no object made of pieces that failed their check');
    assert.deepStrictEqual(tempFilesIn(dst), []);
  });

  it('an object that changed size after it was listed: status 5, with a message, nothing stored', async () => {
    for (const [name, newSize] of [['shrunk', 12 * MiB], ['grown', 25 * MiB]]) {
      const dir = fresh(name);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'f.bin'), big.subarray(0, 20 * MiB));
      const listing = (await ok(`s3-list "${dir}"`)).stdout;
      fs.writeFileSync(path.join(dir, 'f.bin'), crypto.randomBytes(newSize));
      const dst = fresh('dst');
      for (const jobs of [1, 8]) {
        const r = await sh(`s3-get -j ${jobs} --pieces-above 8M --piece-size 5M | s3-put "${dst}"`, { input: listing });
        // A status, not a crash: a failed piece must not leave the rest of the object's chain unhandled.
        assert.strictEqual(r.statuses[0], 5, `${name} -j ${jobs}: ${account(r)}`);
        assert.match(r.stderr, new RegExp(`"f\\.bin" is ${newSize} bytes now, the record says ${20 * MiB}`), name);
        assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
        assert.ok(!fs.existsSync(path.join(dst, 'f.bin')), name);
        assert.deepStrictEqual(tempFilesIn(dst), [], name);
      }
    }
  });

  it('stages that need whole objects refuse pieces, naming the key', async () => {
    const input = frames(piecesOf('s/0000000000', big, 8 * MiB));
    const joined = fresh('joined');
    const r = await sh(`stream-join "${joined}"`, { input });
    assert.strictEqual(r.code, 4, account(r));
    assert.match(r.stderr, /stdin:1: object "s\/0000000000" comes in pieces/);
    assert.ok(!fs.existsSync(joined));
    const chunks = frames(piecesOf('vol/zstd/0000000000', big, 8 * MiB));
    const z = await sh('zstd-unchunk', { input: chunks });
    assert.strictEqual(z.code, 4, account(z));
    assert.match(z.stderr, /comes in pieces/);
  });
});

describe('s3-put joining pieces', () => {
  it('a directory to moto and back: one object each time, byte-identical, with its SHA-256 kept', async () => {
    const dir = await sourceDir();
    await moto.createBucket('pieces-a');
    const put = await ok(`s3-list "${dir}" | s3-get --pieces-above 8M --piece-size 5M | s3-put s3://pieces-a/data`);
    const journal = linesOf(put.stdout);
    const objects = journal.filter((rec) => rec.type === 'object');
    // One journal record per object, not per piece; no "offset" left on it.
    assert.deepStrictEqual(objects.map((rec) => rec.key).sort(), ['big image.bin', 'small.txt']);
    const written = objects.find((rec) => rec.key === 'big image.bin');
    assert.strictEqual(written.offset, undefined);
    assert.strictEqual(written.size, big.length);
    assert.strictEqual(written.sha256, sha256(big));
    assert.match(written.etag, /-5"$/, 'a multipart object of five parts');
    assert.strictEqual(journal.at(-1).type, 'end');
    assert.deepStrictEqual(await uploadsLeft('pieces-a'), []);
    // The big file had no sidecar, so its checksum was not known before the upload: S3 keeps none.
    const head = await client.send(new HeadObjectCommand({ Bucket: 'pieces-a', Key: 'data/big image.bin' }));
    assert.strictEqual(head.ContentLength, big.length);

    // Back from S3 into a directory, and once more to S3 from the directory's checksummed copy.
    const back = fresh('back');
    await ok(`s3-list s3://pieces-a/data | s3-get --pieces-above 8M --piece-size 6M | s3-put "${back}" > /dev/null`);
    assert.ok(fs.readFileSync(path.join(back, 'big image.bin')).equals(big));
    assert.ok(fs.readFileSync(path.join(back, 'small.txt')).equals(small));
    await ok(`s3-list "${back}" | s3-get --pieces-above 8M | s3-put s3://pieces-a/again > /dev/null`);
    const again = await client.send(new HeadObjectCommand({ Bucket: 'pieces-a', Key: 'again/big image.bin' }));
    assert.strictEqual(again.Metadata['sluice-sha256'], sha256(big), 'a checksum known from the first piece is stored with the object');
    // Read whole, it is checked against that checksum.
    const whole = decodeAll((await ok('s3-list --prefix big s3://pieces-a/again | s3-get')).stdout).find((rec) => rec.type === 'object');
    assert.strictEqual(whole.sha256, sha256(big));
    assert.ok(whole[PAYLOAD].equals(big));
  });

  it('an input cut off mid-object stores nothing: no object, no upload, no temporary file (status 3)', async () => {
    await moto.createBucket('pieces-b');
    const all = frames(piecesOf('cut.bin', big, 5 * MiB, { sha256: sha256(big) }), { trailer: false });
    // Three pieces and a part of the fourth.
    const input = all.subarray(0, Math.floor(3.5 * 5 * MiB));
    for (const url of ['s3://pieces-b/cut', fresh('cut')]) {
      const r = await sh(`s3-put "${url}"`, { input });
      assert.strictEqual(r.code, 3, account(r));
      if (url.startsWith('s3://')) {
        assert.deepStrictEqual(await uploadsLeft('pieces-b'), [], 'the multipart upload is aborted');
        const listed = await ok(`s3-list s3://pieces-b/cut`);
        assert.deepStrictEqual(linesOf(listed.stdout).filter((rec) => rec.type === 'object'), []);
      } else {
        assert.ok(!fs.existsSync(path.join(url, 'cut.bin')));
        assert.deepStrictEqual(tempFilesIn(url), []);
      }
    }
  });

  it('a valid trailer after only the first pieces of an object is an error too', async () => {
    await moto.createBucket('pieces-c');
    const input = frames(piecesOf('short.bin', big, 5 * MiB).slice(0, 2));
    for (const url of ['s3://pieces-c/short', fresh('short')]) {
      const r = await sh(`s3-put "${url}"`, { input });
      assert.strictEqual(r.code, 4, account(r));
      assert.match(r.stderr, /short\.bin.*ended after 10485760 of its 22020097 bytes/);
    }
    assert.deepStrictEqual(await uploadsLeft('pieces-c'), []);
  });

  it('refuses pieces out of order, of another length, interrupted by another record, or of another checksum', async () => {
    await moto.createBucket('pieces-d');
    const pieces = piecesOf('odd.bin', big, 5 * MiB);
    const cases = [
      { name: 'out of order', recs: [pieces[0], pieces[2], pieces[1], ...pieces.slice(3)], message: /offset 10485760 came where the one at 5242880 was due/ },
      { name: 'interrupted', recs: [pieces[0], { type: 'object', key: 'other', data: small }, ...pieces.slice(1)], message: /odd\.bin.*stopped after 5242880 of 22020097 bytes/ },
      { name: 'first offset', recs: pieces.slice(1), message: /first piece has "offset" 5242880/ },
      { name: 'small pieces', recs: piecesOf('tiny.bin', big, MiB), message: /pieces must hold/ },
      { name: 'uneven', recs: [pieces[0], { ...pieces[1], data: pieces[1].data.subarray(1) }], message: /holds 5242879 bytes/ },
      { name: 'commit', recs: [{ ...pieces[0], commit: true }], message: /commit object cannot come in pieces/ },
    ];
    for (const c of cases) {
      const dst = fresh('odd');
      const r = await sh(`s3-put "${dst}"`, { input: frames(c.recs) });
      assert.strictEqual(r.code, 4, `${c.name}: ${account(r)}`);
      assert.match(r.stderr, c.message, c.name);
      assert.ok(!fs.existsSync(path.join(dst, 'odd.bin')), c.name);
      assert.deepStrictEqual(tempFilesIn(dst), [], c.name);
    }
    // A wrong whole-object checksum: status 5 on both stores, nothing stored.
    const wrong = frames(piecesOf('odd.bin', big, 5 * MiB, { sha256: sha256(small) }));
    // With an uploads journal too: an upload of the wrong content is not kept for a rerun.
    for (const [url, flags] of [['s3://pieces-d/odd', ''], ['s3://pieces-d/odd', `--uploads "${fresh('uploads')}"`], [fresh('odd'), '']]) {
      const r = await sh(`s3-put ${flags} "${url}"`, { input: wrong });
      assert.strictEqual(r.code, 5, account(r));
      assert.match(r.stderr, /odd\.bin.*SHA-256/);
    }
    assert.deepStrictEqual(await uploadsLeft('pieces-d'), []);
    const listed = await ok('s3-list s3://pieces-d/odd');
    assert.deepStrictEqual(linesOf(listed.stdout).filter((rec) => rec.type === 'object'), []);
  });
});

describe('s3-copy through this process in pieces', () => {
  // Larger than s3-copy's 64 MiB: read in ranges and written in pieces, never held whole.
  const large = crypto.randomBytes(70 * MiB + 3);

  it('a directory to moto and back, byte-identical, the checksum carried along', async () => {
    const dir = fresh('copysrc');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'large.bin'), large);
    await moto.createBucket('pieces-e');
    const up = await ok(`s3-list "${dir}" | s3-copy --to s3://pieces-e/c`);
    const journal = linesOf(up.stdout).filter((rec) => rec.type === 'object');
    assert.deepStrictEqual(journal.map((rec) => [rec.key, rec.size, rec.sha256]), [['large.bin', large.length, sha256(large)]]);
    assert.match(journal[0].etag, /-9"$/, 'one multipart upload of 9 parts of 8 MiB');
    assert.deepStrictEqual(await uploadsLeft('pieces-e'), []);
    const back = fresh('copyback');
    const down = await ok(`s3-list s3://pieces-e/c | s3-copy --to "${back}"`);
    assert.strictEqual(linesOf(down.stdout).find((rec) => rec.type === 'object').sha256, sha256(large));
    assert.ok(fs.readFileSync(path.join(back, 'large.bin')).equals(large));
  });

  it('a source that changes after it was listed: status 5, nothing copied or journaled', async () => {
    const dir = fresh('copysrc');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'large.bin'), large);
    const listing = (await ok(`s3-list "${dir}"`)).stdout;
    // Shorter than listed: the HEAD of the copy already sees it.
    fs.writeFileSync(path.join(dir, 'large.bin'), large.subarray(0, 66 * MiB));
    const dst = fresh('copydst');
    const r = await sh(`s3-copy --to "${dst}"`, { input: listing });
    assert.strictEqual(r.code, 5, account(r));
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
    assert.doesNotMatch(r.stdout.toString(), /large\.bin/, 'nothing journaled as copied');
    assert.ok(!fs.existsSync(path.join(dst, 'large.bin')));
    assert.deepStrictEqual(tempFilesIn(dst), []);
  });

  it('a record whose SHA-256 the object does not have: status 5, nothing copied, no upload left', async () => {
    const dir = fresh('copysrc');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'large.bin'), large);
    await moto.createBucket('pieces-f');
    const listing = linesOf((await ok(`s3-list "${dir}"`)).stdout).filter((rec) => rec.type === 'object');
    const input = frames(listing.map((rec) => ({ ...rec, sha256: sha256(small) })));
    for (const to of ['s3://pieces-f/c', fresh('copydst')]) {
      const r = await sh(`s3-copy --to "${to}"`, { input });
      assert.strictEqual(r.code, 5, account(r));
      assert.match(r.stderr, /large\.bin.*SHA-256.*nothing was copied/);
      if (!to.startsWith('s3://')) {
        assert.ok(!fs.existsSync(path.join(to, 'large.bin')));
        assert.deepStrictEqual(tempFilesIn(to), []);
      }
    }
    assert.deepStrictEqual(await uploadsLeft('pieces-f'), []);
    assert.deepStrictEqual(linesOf((await ok('s3-list s3://pieces-f/c')).stdout).filter((rec) => rec.type === 'object'), []);
  });
});
