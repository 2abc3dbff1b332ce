'use strict';
// s3-list, s3-get and s3-put on local store URLs, run as real executables in bash pipes.
const { test, before } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe, tmpdir, BIN } = require('./lib/run');
const { byteOrder } = require('./lib/store-contract');
const { initDigest } = require('../dist/core/digest.js');
const { Encoder } = require('../dist/core/encode.js');
const { Decoder } = require('../dist/core/decode.js');
const { PAYLOAD } = require('../dist/core/records.js');

const work = tmpdir('sluice-s3cmd-');
let n = 0;
const fresh = (name = 'store') => path.join(work, `${name}-${n++}`);
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');

before(() => initDigest());

/** A stream of the records (a `data` field becomes the payload), with its trailer. */
function frames(records) {
  const enc = new Encoder();
  for (const { data, ...rec } of records) enc.push(data === undefined ? rec : { ...rec, [PAYLOAD]: data });
  enc.end();
  return Buffer.concat(enc.take());
}

function writeFrames(records) {
  const file = path.join(work, `frames-${n++}`);
  fs.writeFileSync(file, frames(records));
  return file;
}

/** The records of a stream (payloads as `data`), and whether it had its trailer. */
function readStream(buf) {
  const dec = new Decoder({ command: 'test', source: 'stdout', allowIncomplete: true });
  const recs = [];
  dec.push(buf, recs);
  dec.finish();
  return { recs: recs.map((r) => (r[PAYLOAD] ? { ...r, data: r[PAYLOAD] } : { ...r })), complete: dec.trailer !== undefined };
}

/** Every file under `dir`, relative, with its content, for comparing stores. */
function tree(dir) {
  const out = {};
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out[r] = fs.readFileSync(path.join(d, e.name)).toString('base64');
    }
  };
  walk(dir, '');
  return out;
}

const OBJECTS = [
  { key: 'zstd/0000000000.64.abc.zst', data: crypto.randomBytes(300000) },
  { key: 'a-c', data: Buffer.from('dash') },
  { key: 'a/b', data: Buffer.from('slash') },
  { key: 'with space+plus%', data: Buffer.from('odd') },
  { key: 'ünïcödé/文件', data: crypto.randomBytes(5000) },
  { key: '../../outside', data: Buffer.from('stays in') },
  { key: 'empty', data: Buffer.alloc(0) },
  { key: 'L'.repeat(600), data: Buffer.from('long key') },
];

async function seed(store, objects = OBJECTS) {
  const input = writeFrames([{ type: 'volume', format: 1, blockSize: 524288, source: 'test' }, ...objects.map((o) => ({ type: 'object', ...o }))]);
  return ok(`s3-put ${store} < ${input}`);
}

test('every command prints its usage with examples and exit statuses', async () => {
  for (const name of ['s3-list', 's3-get', 's3-put']) {
    const r = await ok(`${name} --help`);
    const text = r.stdout.toString();
    assert.match(text, new RegExp(`^Usage: ${name} `));
    assert.match(text, /Examples:/);
    assert.match(text, /EXIT STATUS/);
  }
});

test('s3-put writes every object and journals each with size, etag, sha256 and store', async () => {
  const store = fresh();
  const r = await seed(store);
  const { recs, complete } = readStream(r.stdout);
  assert.ok(complete, 'the journal ends with its trailer');
  assert.strictEqual(recs[0].type, 'volume', 'other records are journaled');
  const journaled = recs.filter((x) => x.type === 'object');
  assert.deepStrictEqual(journaled.map((x) => x.key), OBJECTS.map((o) => o.key), 'in input order');
  for (const [i, rec] of journaled.entries()) {
    const data = OBJECTS[i].data;
    assert.strictEqual(rec.size, data.length);
    assert.strictEqual(rec.sha256, sha256(data));
    // A local store's ETag is the hex SHA-256 (ETags are opaque; this one costs no MD5 pass).
    assert.strictEqual(rec.etag, `"${crypto.createHash('sha256').update(data).digest('hex')}"`);
    assert.strictEqual(rec.store, store);
    assert.strictEqual(rec.len, undefined, 'no payload in the journal');
  }
  assert.deepStrictEqual(fs.readdirSync(path.dirname(store)).filter((f) => f === 'outside'), [], 'nothing outside the store');
});

test('s3-list | s3-get | s3-put copies a store exactly, with --no-fsync too', async () => {
  const src = fresh();
  await seed(src);
  for (const flags of ['', '--no-fsync']) {
    const dst = fresh();
    const r = await ok(`s3-list ${src} | s3-get | s3-put ${flags} ${dst} > ${dst}.journal`);
    assert.deepStrictEqual(tree(dst), tree(src), describe(r));
    const listed = readStream(fs.readFileSync(`${dst}.journal`)).recs.map((x) => x.key);
    assert.deepStrictEqual(listed, OBJECTS.map((o) => o.key).sort(byteOrder));
  }
});

test('a copy of a volume holds its volume.json back: an interrupted copy has none, a full one restores', async () => {
  const src = fresh();
  const dst = fresh();
  const img = path.join(work, `vol-${n++}.img`);
  fs.writeFileSync(img, crypto.randomBytes(3 * 524288 + 1000));
  await ok(`file-blocks ${img} | zstd-chunk | s3-put ${src} > /dev/null`);
  const listing = readStream((await ok(`s3-list ${src}`)).stdout).recs;
  assert.deepStrictEqual(listing.filter((r) => r.commit).map((r) => r.key), ['volume.json']);
  const whole = (await ok(`s3-list ${src} | s3-get`)).stdout.length;
  const cut = await sh(`s3-list ${src} | s3-get | head -c ${whole - 100} | s3-put ${dst}`);
  assert.strictEqual(cut.code, 3, describe(cut));
  assert.ok(!fs.existsSync(path.join(dst, 'volume.json')), 'an interrupted copy must not hold the commit marker');
  const full = await ok(`s3-list ${src} | s3-get | s3-put ${dst}`);
  const keys = readStream(full.stdout).recs.map((r) => r.key);
  assert.strictEqual(keys[keys.length - 1], 'volume.json', describe(full));
  await ok(`s3-list ${dst} | s3-get | zstd-unchunk | file-write ${img}.back && cmp ${img} ${img}.back`);
});

test('s3-put stores each object whole from buffers it uses again, many objects in flight', async () => {
  // Objects of 2 to 8 MiB are read into shared buffers (PayloadPool) that come back once their
  // object is stored: a buffer given back early would take another object's bytes.
  const objects = Array.from({ length: 40 }, (_, i) => ({ type: 'object', key: `o/${i}`, data: crypto.randomBytes((2 << 20) + ((i * 997) % 6) * (1 << 20)) }));
  const input = writeFrames(objects);
  const store = fresh();
  const r = await ok(`cat ${input} | s3-put -j 8 ${store} > ${store}.journal`);
  for (const o of objects) assert.ok(fs.readFileSync(path.join(store, o.key)).equals(o.data), `${o.key} ${describe(r)}`);
  const journaled = readStream(fs.readFileSync(`${store}.journal`)).recs.filter((x) => x.type === 'object');
  assert.deepStrictEqual(journaled.map((x) => x.sha256), objects.map((o) => sha256(o.data)));
});

test('s3-list lists in UTF-8 byte order with size, mtime, etag, sha256 and store, and ends with the trailer', async () => {
  const store = fresh();
  await seed(store);
  const r = await ok(`s3-list ${store}`);
  const { recs, complete } = readStream(r.stdout);
  assert.ok(complete);
  assert.deepStrictEqual(recs.map((x) => x.key), OBJECTS.map((o) => o.key).sort(byteOrder));
  for (const rec of recs) {
    const data = OBJECTS.find((o) => o.key === rec.key).data;
    assert.strictEqual(rec.type, 'object');
    assert.strictEqual(rec.size, data.length);
    assert.strictEqual(rec.sha256, sha256(data));
    assert.strictEqual(rec.etag, `"${crypto.createHash('sha256').update(data).digest('hex')}"`);
    assert.ok(!Number.isNaN(Date.parse(rec.mtime)) && rec.mtime.endsWith('Z'));
    assert.strictEqual(rec.store, store);
  }
});

test('s3-list --prefix and --start-after; a relative or file:// URL gives an absolute store', async () => {
  const store = fresh();
  await seed(store);
  const keys = async (args) => readStream((await ok(`s3-list ${args}`)).stdout).recs.map((x) => x.key);
  assert.deepStrictEqual(await keys(`--prefix a ${store}`), ['a-c', 'a/b']);
  assert.deepStrictEqual(await keys(`--prefix zstd/ ${store}`), ['zstd/0000000000.64.abc.zst']);
  assert.deepStrictEqual(await keys(`--start-after a/b ${store}`), OBJECTS.map((o) => o.key).sort(byteOrder).filter((k) => byteOrder(k, 'a/b') > 0));
  assert.deepStrictEqual(await keys(`--prefix a --start-after a-c ${store}`), ['a/b']);
  const rel = await ok(`cd ${path.dirname(store)} && s3-list --prefix a/ ./${path.basename(store)}`);
  assert.strictEqual(readStream(rel.stdout).recs[0].store, store);
  const url = await ok(`s3-list --prefix a/ file://${store}`);
  assert.strictEqual(readStream(url.stdout).recs[0].store, store);
});

test('s3-list of an empty store gives just the trailer; of a missing one, status 1', async () => {
  const empty = fresh();
  fs.mkdirSync(empty);
  const r = await ok(`s3-list ${empty}`);
  assert.deepStrictEqual(readStream(r.stdout), { recs: [], complete: true });
  const missing = await sh(`s3-list ${fresh()}`);
  assert.strictEqual(missing.code, 1, describe(missing));
  assert.match(missing.stderr, /^s3-list: .*does not exist/);
});

test('an --endpoint-url that is not an http(s) URL is a usage error (S3 itself: test/store-s3.test.js)', async () => {
  for (const cmd of ['s3-list', 's3-put', 's3-get']) {
    const r = await sh(`${cmd} --endpoint-url localhost:9000 s3://bkt/x < /dev/null`);
    assert.strictEqual(r.code, 2, describe(r));
    assert.match(r.stderr, new RegExp(`^${cmd}: --endpoint-url: "localhost:9000" is not an http:// or https:// URL`), describe(r));
  }
});

test('s3-get keeps input order whatever the parallelism, and passes other records through', async () => {
  const store = fresh();
  const objects = Array.from({ length: 40 }, (_, i) => ({ key: `o/${String(i).padStart(3, '0')}`, data: crypto.randomBytes(1000 + ((i * 7919) % 50000)) }));
  await seed(store, objects);
  const manifest = path.join(work, `manifest-${n++}`);
  await ok(`s3-list ${store} > ${manifest}`);
  const one = await ok(`s3-get -j 1 < ${manifest}`);
  const many = await ok(`s3-get -j 16 < ${manifest}`);
  assert.ok(one.stdout.equals(many.stdout), 'same bytes at -j 1 and -j 16');
  const { recs, complete } = readStream(many.stdout);
  assert.ok(complete);
  assert.deepStrictEqual(recs.map((x) => x.key), objects.map((o) => o.key));
  for (const [i, rec] of recs.entries()) assert.ok(rec.data.equals(objects[i].data), rec.key);
  // A journal read back: its volume record passes through s3-get untouched.
  const journal = (await seed(fresh(), objects.slice(0, 3))).stdout;
  const r = await ok(`s3-get`, { input: journal });
  assert.deepStrictEqual(readStream(r.stdout).recs.map((x) => x.type), ['volume', 'object', 'object', 'object']);
});

test('s3-get reads from the URL given when records name no store', async () => {
  const store = fresh();
  await seed(store);
  const input = writeFrames([{ type: 'object', key: 'a/b' }, { type: 'object', key: 'empty', size: 0 }]);
  const r = await ok(`s3-get ${store} < ${input}`);
  const { recs } = readStream(r.stdout);
  assert.strictEqual(recs[0].data.toString(), 'slash');
  assert.strictEqual(recs[0].sha256, sha256(Buffer.from('slash')));
  assert.strictEqual(recs[1].len, 0);
  const none = await sh(`s3-get < ${input}`);
  assert.strictEqual(none.code, 4, describe(none));
  assert.match(none.stderr, /^s3-get: stdin:1: object "a\/b" has no "store"/);
});

test('s3-get: a damaged stored file is status 5 naming the key; a missing one status 1', async () => {
  const store = fresh();
  await seed(store);
  const manifest = path.join(work, `manifest-${n++}`);
  await ok(`s3-list ${store} > ${manifest}`);
  // Cut short: the listing's size and the stored checksum both disagree now.
  fs.truncateSync(path.join(store, 'a-c'), 2);
  let r = await sh(`s3-get < ${manifest} > /dev/null`);
  assert.strictEqual(r.code, 5, describe(r));
  assert.match(r.stderr, /^s3-get: stdin:\d+: .*"a-c".*(2 bytes|SHA-256)/, describe(r));
  // Changed in place, same size: only the stored checksum can tell, and does.
  fs.writeFileSync(path.join(store, 'a-c'), 'DASH');
  r = await sh(`s3-list ${store} | s3-get > /dev/null`);
  assert.strictEqual(r.code, 5, describe(r));
  assert.match(r.stderr, /"a-c".*SHA-256/, describe(r));
  // A record's own sha256 is checked too.
  const wrong = writeFrames([{ type: 'object', key: 'a/b', sha256: sha256(Buffer.from('other')) }]);
  r = await sh(`s3-get ${store} < ${wrong} > /dev/null`);
  assert.strictEqual(r.code, 5, describe(r));
  assert.match(r.stderr, /^s3-get: stdin:1: object "a\/b": the data's SHA-256/, describe(r));
  fs.unlinkSync(path.join(store, 'a', 'b'));
  r = await sh(`s3-get ${store} < ${wrong} > /dev/null`);
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /^s3-get: stdin:1: .*no object "a\/b"/, describe(r));
});

test('s3-put writes a commit object last, after the trailer, whatever its place in the input', async () => {
  const store = fresh();
  const input = writeFrames([
    { type: 'volume', format: 1, blockSize: 524288 },
    { type: 'object', key: 'layout/header', commit: true, data: Buffer.from('{"index": "all"}') },
    ...Array.from({ length: 10 }, (_, i) => ({ type: 'object', key: `c/${i}`, data: crypto.randomBytes(20000) })),
  ]);
  const r = await ok(`s3-put -j 3 ${store} < ${input}`);
  const objects = readStream(r.stdout).recs.filter((x) => x.type === 'object');
  assert.strictEqual(objects.length, 11);
  assert.strictEqual(objects[10].key, 'layout/header');
  assert.strictEqual(objects[10].commit, true);
  assert.ok(fs.existsSync(path.join(store, 'layout', 'header')));
});

test('s3-put on a truncated input: status 3, no commit object, what was written journaled', async () => {
  const store = fresh();
  const objects = Array.from({ length: 8 }, (_, i) => ({ type: 'object', key: `t/${i}`, data: crypto.randomBytes(100000) }));
  const input = writeFrames([{ type: 'object', key: 'head', commit: true, data: Buffer.from('commit') }, ...objects]);
  // Cut in the middle of the sixth object's payload.
  const cut = fs.statSync(input).size - 2.5 * 100000;
  const r = await sh(`head -c ${Math.round(cut)} ${input} | s3-put -j 2 ${store} > ${store}.journal`);
  assert.strictEqual(r.code, 3, describe(r));
  assert.match(r.stderr, /^s3-put: stdin:\d+: input ended without its end trailer/, describe(r));
  assert.ok(!fs.existsSync(path.join(store, 'head')), 'the commit object was not written');
  const { recs, complete } = readStream(fs.readFileSync(`${store}.journal`));
  assert.ok(!complete, 'the journal of a failed run has no trailer');
  assert.deepStrictEqual(recs.map((x) => x.key), ['t/0', 't/1', 't/2', 't/3', 't/4'], 'every whole object written and journaled');
  for (const rec of recs) assert.ok(fs.readFileSync(path.join(store, rec.key)).equals(objects[Number(rec.key.slice(2))].data));
  const left = fs.readdirSync(path.join(store, 't')).filter((f) => f.startsWith('%.tmp.'));
  assert.deepStrictEqual(left, [], 'no temporary file left');
});

test('s3-put refuses objects without data, and block frames, with status 4 naming the line', async () => {
  const store = fresh();
  const manifest = writeFrames([{ type: 'volume', format: 1, blockSize: 524288 }, { type: 'object', key: 'k', size: 3 }]);
  let r = await sh(`s3-put ${store} < ${manifest}`);
  assert.strictEqual(r.code, 4, describe(r));
  assert.match(r.stderr, /^s3-put: stdin:2: object "k" has no data/, describe(r));
  const img = path.join(work, `img-${n++}`);
  fs.writeFileSync(img, crypto.randomBytes(600000));
  r = await sh(`file-blocks ${img} | s3-put ${store}`);
  assert.strictEqual(r.code, 4, describe(r));
  assert.match(r.stderr, /^s3-put: stdin:2: a block with data/, describe(r));
  const badKey = writeFrames([{ type: 'object', key: '', data: Buffer.from('x') }]);
  r = await sh(`s3-put ${store} < ${badKey}`);
  assert.strictEqual(r.code, 4, describe(r));
  assert.match(r.stderr, /^s3-put: stdin:1: a key must not be empty/, describe(r));
  assert.ok(!fs.existsSync(store), 'nothing written, not even the store directory');
});

test('s3-put checks size and sha256 before storing: status 5, the object not stored', async () => {
  const store = fresh();
  const data = Buffer.from('the data');
  for (const [field, value, held] of [['size', 99, false], ['sha256', sha256(Buffer.from('other')), false], ['sha256', sha256(Buffer.from('other')), true]]) {
    const input = writeFrames([{ type: 'object', key: 'ok', data }, { type: 'object', key: 'bad', [field]: value, commit: held, data }]);
    const r = await sh(`s3-put -j 1 ${store} < ${input}`);
    assert.strictEqual(r.code, 5, describe(r));
    assert.match(r.stderr, /^s3-put: stdin:2: .*object "bad": .*(99|SHA-256)/, describe(r));
    assert.ok(!fs.existsSync(path.join(store, 'bad')));
  }
  const right = writeFrames([{ type: 'object', key: 'good', size: data.length, sha256: sha256(data), data }]);
  await ok(`s3-put ${store} < ${right}`);
  assert.ok(fs.readFileSync(path.join(store, 'good')).equals(data));
});

test('s3-put reports a key that cannot be stored beside another (a and a/b), journaling the rest', async () => {
  const store = fresh();
  const input = writeFrames([
    { type: 'object', key: 'x', data: Buffer.from('1') },
    { type: 'object', key: 'x/y', data: Buffer.from('2') },
  ]);
  const r = await sh(`s3-put -j 1 ${store}`, { input: fs.readFileSync(input) });
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /^s3-put: stdin:2: .*cannot store "x\/y": object "x" exists/, describe(r));
  assert.deepStrictEqual(readStream(r.stdout).recs.map((x) => x.key), ['x']);
});

test('s3-put journals every object it stored when writes fail, those after a failed one too', async () => {
  const store = fresh();
  // The object "blocker" makes "blocker/..." impossible to store in a directory: two failures.
  await seed(store, [{ key: 'blocker', data: Buffer.from('file') }]);
  const objects = (name) => Array.from({ length: 3 }, (_, i) => ({ type: 'object', key: `${name}/${i}`, data: crypto.randomBytes(3000) }));
  const input = writeFrames([...objects('a'), { type: 'object', key: 'blocker/1', data: Buffer.from('1') }, ...objects('b'), { type: 'object', key: 'blocker/2', data: Buffer.from('2') }, ...objects('c')]);
  const r = await sh(`s3-put -j 16 ${store} < ${input}`);
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /^s3-put: stdin:4: .*cannot store "blocker\/1": object "blocker" exists/, describe(r));
  const { recs, complete } = readStream(r.stdout);
  assert.ok(!complete, 'a failed run has no trailer');
  const stored = ['a', 'b', 'c'].flatMap((name) => [0, 1, 2].map((i) => `${name}/${i}`)).filter((key) => fs.existsSync(path.join(store, key)));
  assert.strictEqual(stored.length, 9, 'all the other objects were written (16 jobs)');
  assert.deepStrictEqual(recs.map((x) => x.key), stored, 'journaled: every object stored, in input order');
});

test('s3-put on SIGTERM mid-stream: status 143, no commit object, journals only objects really stored', async () => {
  const { spawn } = require('node:child_process');
  const store = fresh();
  const objects = Array.from({ length: 6 }, (_, i) => ({ type: 'object', key: `s/${i}`, data: crypto.randomBytes(200000) }));
  const stream = frames([{ type: 'object', key: 'head', commit: true, data: Buffer.from('commit') }, ...objects]);
  // Everything but the last object and the trailer: the input stays open, as from a slow upstream.
  const last = stream.lastIndexOf(Buffer.from('{"type":"object","key":"s/5"'));
  const child = spawn(path.join(BIN, 's3-put'), ['-j', '2', store], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = [];
  let err = '';
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => (err += d));
  child.stdin.write(stream.subarray(0, last));
  // Wait until some objects are journaled (so the stream is truly under way), then terminate.
  while (!Buffer.concat(out).includes('"s/3"')) await new Promise((resolve) => setTimeout(resolve, 20));
  child.kill('SIGTERM');
  const code = await new Promise((resolve) => child.on('close', (c) => resolve(c)));
  child.stdin.destroy();
  assert.strictEqual(code, 143, err);
  assert.match(err, /^s3-put: terminated$/m);
  assert.ok(!fs.existsSync(path.join(store, 'head')), 'no commit object');
  const { recs, complete } = readStream(Buffer.concat(out));
  assert.ok(!complete, 'no trailer after a signal');
  assert.ok(recs.length >= 4, `${recs.length} journaled`);
  for (const rec of recs) {
    const data = objects[Number(rec.key.slice(2))].data;
    assert.ok(fs.readFileSync(path.join(store, rec.key)).equals(data), `${rec.key} journaled and stored whole`);
    assert.strictEqual(rec.sha256, sha256(data));
  }
  assert.ok(!fs.existsSync(path.join(store, 's', '5')), 'nothing of the object that never came');
  assert.deepStrictEqual(fs.readdirSync(path.join(store, 's')).filter((f) => f.startsWith('%.tmp.')), [], 'no temporary file left');
});
