'use strict';
// stream-chunk and stream-join: any byte stream into numbered objects and back, exactly, through
// a pipe, a local store and S3 (moto); and every way a joined stream can be wrong is refused,
// with no output file left.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe: account, tmpdir } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { Encoder } = require('../dist/core/encode.js');
const { PAYLOAD } = require('../dist/core/records.js');

const work = tmpdir('sluice-stream-');
const N = 1000; // --size of the round trips: small, so that many parts are cheap
const SIZES = [0, 1, N - 1, N, N + 1, 3 * N + 5];
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');

function input(size) {
  const file = path.join(work, `in-${size}`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, crypto.randomBytes(size));
  return file;
}

/** stream-chunk's records of a file, payloads attached, the trailer left out. */
async function chunkRecords(file) {
  await initDigest();
  const { decode } = require('../dist/core/decode.js');
  const frames = (await ok(`stream-chunk --size ${N} < ${file}`)).stdout;
  const recs = [];
  for await (const batch of decode([frames], { command: 'test', source: 'test' })) recs.push(...batch.filter((r) => r.type !== 'end'));
  return recs;
}

/** Records as a stream with its trailer. */
async function encode(recs) {
  await initDigest();
  const out = new Encoder();
  for (const rec of recs) out.push({ ...rec, [PAYLOAD]: rec[PAYLOAD] });
  out.end();
  return Buffer.concat(out.take());
}

/** The files in a directory other than those named, to catch a temporary file left behind. */
const leftovers = (dir, ...known) => fs.readdirSync(dir).filter((f) => !known.includes(f));

describe('stream-chunk | stream-join', () => {
  for (const size of SIZES) {
    it(`${size} bytes round trip through a pipe, to a file and to stdout`, async () => {
      const src = input(size);
      const out = path.join(work, `piped-${size}`);
      await ok(`stream-chunk --size ${N} < ${src} | stream-join ${out}`);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)), 'file identical');
      const r = await ok(`stream-chunk --size ${N} ${src} | stream-join`);
      assert.ok(r.stdout.equals(fs.readFileSync(src)), 'stdout identical');
    });

    it(`${size} bytes round trip through a local store (s3-put, s3-list | s3-get)`, async () => {
      const src = input(size);
      const store = path.join(work, `store-${size}`);
      const out = path.join(work, `stored-${size}`);
      await ok(`stream-chunk --size ${N} --name db/dump < ${src} | s3-put ${store} > /dev/null && s3-list ${store} | s3-get | stream-join ${out}`);
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)), 'identical');
    });
  }

  it('parts are numbered in key order, each with size and SHA-256, then a manifest committed last', async () => {
    const src = input(3 * N + 5);
    const r = await ok(`stream-chunk --size ${N} --name x < ${src} | strip`);
    const recs = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.deepStrictEqual(recs.map((x) => x.key), ['x/0000000000', 'x/0000000001', 'x/0000000002', 'x/0000000003', 'x/stream.json', undefined]);
    assert.deepStrictEqual(recs.slice(0, 4).map((x) => x.size), [N, N, N, 5]);
    const data = fs.readFileSync(src);
    assert.strictEqual(recs[3].sha256, sha256(data.subarray(3 * N)));
    assert.strictEqual(recs[4].commit, true);
    const manifest = JSON.parse((await ok(`stream-chunk --size ${N} --name x < ${src} | s3-put ${work}/m > /dev/null && cat ${work}/m/x/stream.json`)).stdout);
    assert.deepStrictEqual(manifest, { type: 'stream', format: 1, size: 3 * N + 5, sha256: sha256(data), parts: 4, partSize: N, source: 'stdin' });
    // Listed again for a copy, the manifest is still the one object held back for last.
    const listed = (await ok(`s3-list ${work}/m | strip`)).stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.deepStrictEqual(listed.filter((x) => x.commit).map((x) => x.key), ['x/stream.json']);
  });

  it('the default part is 8 MiB; --size takes K, M, G and refuses 0 or more than a frame', async () => {
    const r = await ok(`head -c 9000000 /dev/zero | stream-chunk | strip`);
    assert.deepStrictEqual(r.stdout.toString().trim().split('\n').slice(0, 2).map((l) => JSON.parse(l).size), [8 << 20, 9000000 - (8 << 20)]);
    const k = await ok(`head -c 3000 /dev/zero | stream-chunk --size 1K | strip | head -1`);
    assert.strictEqual(JSON.parse(k.stdout).size, 1024);
    for (const bad of ['0', '257M', 'lots', '-1']) {
      const u = await sh(`stream-chunk --size=${bad} < /dev/null`);
      assert.strictEqual(u.code, 2, account(u));
    }
    assert.strictEqual((await sh(`stream-chunk --name /x < /dev/null`)).code, 2);
  });

  it('-f replaces an existing file; without it the file is refused and kept', async () => {
    const dir = tmpdir('sluice-join-');
    const out = path.join(dir, 'out');
    fs.writeFileSync(out, 'old');
    const r = await sh(`echo new | stream-chunk | stream-join ${out}`);
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, /exists/);
    assert.strictEqual(fs.readFileSync(out, 'utf8'), 'old');
    await ok(`echo new | stream-chunk | stream-join -f ${out}`);
    assert.strictEqual(fs.readFileSync(out, 'utf8'), 'new\n');
    assert.deepStrictEqual(leftovers(dir, 'out'), []);
  });
});

describe('stream-join refuses a stream that is not whole', () => {
  const src = () => input(3 * N + 5);
  /** Runs `script` into stream-join OUT in a fresh directory: the status, stderr and what is left there. */
  async function joinInto(script) {
    const dir = tmpdir('sluice-join-');
    const r = await sh(`${script} | stream-join ${dir}/out`);
    return { r, left: fs.readdirSync(dir) };
  }

  it('a part whose data was changed: status 5, naming the part; no file', async () => {
    // Byte 1500 of the stream lies in part 1: flip it inside the frame stream.
    const frames = (await ok(`stream-chunk --size ${N} < ${src()}`)).stdout;
    const at = frames.indexOf(Buffer.from('"key":"stream/0000000001"'));
    const payload = frames.indexOf(0x0a, at) + 1 + 500;
    frames[payload] ^= 0xff;
    fs.writeFileSync(path.join(work, 'damaged.frames'), frames);
    const { r, left } = await joinInto(`cat ${work}/damaged.frames`);
    assert.strictEqual(r.code, 5, account(r));
    assert.match(r.stderr, /^stream-join: stdin:2: object "stream\/0000000001": the data's SHA-256 is .*, the record says/m, account(r));
    assert.deepStrictEqual(left, []);
  });

  it('a part missing from the store: status 4, naming the gap; a missing last part or manifest too', async () => {
    const store = path.join(work, 'holey');
    await ok(`stream-chunk --size ${N} < ${src()} | s3-put ${store} > /dev/null`);
    fs.rmSync(path.join(store, 'stream', '0000000001'));
    const gap = await joinInto(`s3-list ${store} | s3-get`);
    assert.strictEqual(gap.r.code, 4, account(gap.r));
    assert.match(gap.r.stderr, /object "stream\/0000000002" leaves a gap: part "stream\/0000000001" is missing/, account(gap.r));
    assert.deepStrictEqual(gap.left, []);

    const noManifest = path.join(work, 'nomanifest');
    await ok(`stream-chunk --size ${N} < ${src()} | s3-put ${noManifest} > /dev/null`);
    fs.rmSync(path.join(noManifest, 'stream', 'stream.json'));
    const m = await joinInto(`s3-list ${noManifest} | s3-get`);
    assert.strictEqual(m.r.code, 4, account(m.r));
    assert.match(m.r.stderr, /no manifest "stream\/stream.json" after the parts: the stream was not stored whole/, account(m.r));
    assert.deepStrictEqual(m.left, []);
  });

  it('fewer parts than the manifest counts: status 5; a part twice or out of order: status 4', async () => {
    const store = path.join(work, 'short');
    await ok(`stream-chunk --size ${N} < ${src()} | s3-put ${store} > /dev/null`);
    fs.rmSync(path.join(store, 'stream', '0000000003'));
    const short = await joinInto(`s3-list ${store} | s3-get`);
    assert.strictEqual(short.r.code, 5, account(short.r));
    assert.match(short.r.stderr, /"stream\/stream.json" counts 4 parts, 3 came/, account(short.r));
    assert.deepStrictEqual(short.left, []);

    // A listing cannot hold a key twice or out of order: such streams are made here, with a
    // valid trailer, from stream-chunk's own frames.
    const recs = await chunkRecords(src());
    for (const [what, order, message] of [
      ['a part twice', [0, 1, 1, 2, 3, 4], /object "stream\/0000000001" is a duplicate or out of order/],
      ['parts swapped', [0, 2, 1, 3, 4], /object "stream\/0000000002" leaves a gap: part "stream\/0000000001" is missing/],
      ['a part after the manifest', [0, 1, 2, 4, 3], /object "stream\/0000000003" comes after the stream's manifest/],
    ]) {
      const file = path.join(work, `reordered-${order.join('')}`);
      fs.writeFileSync(file, await encode(order.map((i) => recs[i])));
      const r = await joinInto(`cat ${file}`);
      assert.strictEqual(r.r.code, 4, `${what}${account(r.r)}`);
      assert.match(r.r.stderr, message, `${what}${account(r.r)}`);
      assert.deepStrictEqual(r.left, [], what);
    }
  });

  it('an input cut short: status 3, no file', async () => {
    const whole = (await ok(`stream-chunk --size ${N} < ${src()} | wc -c`)).stdout.toString().trim();
    for (const cut of [Math.floor(Number(whole) / 2), Number(whole) - 5]) {
      const { r, left } = await joinInto(`stream-chunk --size ${N} < ${src()} | head -c ${cut}`);
      assert.strictEqual(r.code, 3, account(r));
      assert.match(r.stderr, /^stream-join: stdin:\d+: input ended without its end trailer/, account(r));
      assert.deepStrictEqual(left, []);
    }
  });

  it('a manifest without data, a block stream, or two streams in one input: status 4', async () => {
    const manifestOnly = await joinInto(`stream-chunk --size ${N} < ${src()} | strip`);
    assert.strictEqual(manifestOnly.r.code, 4, account(manifestOnly.r));
    assert.match(manifestOnly.r.stderr, /has no data: read it with s3-get first/);
    const blocks = await joinInto(`file-blocks ${src()}`);
    assert.strictEqual(blocks.r.code, 4, account(blocks.r));
    const store = path.join(work, 'two');
    await ok(`stream-chunk --name a < ${src()} | s3-put ${store} > /dev/null && stream-chunk --name b < ${src()} | s3-put ${store} > /dev/null`);
    const two = await joinInto(`s3-list ${store} | s3-get`);
    assert.strictEqual(two.r.code, 4, account(two.r));
    assert.match(two.r.stderr, /object "b\/0000000000" belongs to stream "b", this input is of stream "a"/, account(two.r));
    assert.deepStrictEqual(two.left, []);
  });

  it('an object from a store with a damaged part: s3-get fails (5), stream-join sees no trailer (3), no file', async () => {
    const store = path.join(work, 'rotten');
    await ok(`stream-chunk --size ${N} < ${src()} | s3-put ${store} > /dev/null`);
    const file = path.join(store, 'stream', '0000000002');
    const data = fs.readFileSync(file);
    data[7] ^= 1;
    fs.writeFileSync(file, data);
    const { r, left } = await joinInto(`s3-list ${store} | s3-get`);
    assert.deepStrictEqual(r.statuses, [0, 5, 3], account(r));
    assert.deepStrictEqual(left, []);
  });
});

describe('stream-chunk | s3-put s3:// (moto) | s3-list | s3-get | stream-join', () => {
  let moto;
  before(async () => {
    moto = await startMoto();
    await moto.createBucket('streams');
  });
  after(() => moto?.stop());

  it('round trips a stream of several parts exactly', async () => {
    const src = input(3 * N + 5);
    const out = path.join(work, 'from-s3');
    const url = 's3://streams/backups';
    const r = await ok(`stream-chunk --size ${N} --name db < ${src} | s3-put ${url} > /dev/null && s3-list ${url} | s3-get | stream-join ${out}`, { env: moto.env });
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)), `identical${account(r)}`);
  });
});
