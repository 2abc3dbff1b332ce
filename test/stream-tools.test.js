'use strict';
// count, progress, skip and shard, run as real executables in bash pipes.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe, tmpdir } = require('./lib/run');
const { initDigest } = require('../dist/core/digest.js');
const { Encoder } = require('../dist/core/encode.js');

const BLOCK = 524288;
const ZERO_SHA = 'B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=';
const work = tmpdir();
const img = path.join(work, 'disk.img');
// 41 blocks, the last one partial; written in full (not sparse), so every block is listed.
const IMG_SIZE = 40 * BLOCK + 1000;
const ZERO_BLOCKS = new Set([3, 4, 10, 20, 21, 22, 39]);

/** A valid stream (trailer included) of the given records, made with the project's encoder. */
function encode(records) {
  const out = new Encoder();
  for (const rec of records) out.push(rec);
  out.end();
  return Buffer.concat(out.take());
}

/** Records of a stream given as a Buffer of NDJSON without payloads (a manifest). */
function lines(buf) {
  return buf.toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function fnv1a32(text) {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

test.before(async () => {
  await initDigest();
  const fd = fs.openSync(img, 'w');
  for (let i = 0; i * BLOCK < IMG_SIZE; i++) {
    const len = Math.min(BLOCK, IMG_SIZE - i * BLOCK);
    const data = ZERO_BLOCKS.has(i) ? Buffer.alloc(len) : crypto.randomBytes(len);
    fs.writeSync(fd, data, 0, len, i * BLOCK);
  }
  fs.closeSync(fd);
});

// ---------------------------------------------------------------- count

test('count: figures of a known image are exact', async () => {
  const blocks = Math.ceil(IMG_SIZE / BLOCK);
  const nonZero = blocks - ZERO_BLOCKS.size;
  const expected = {
    type: 'count',
    records: 1 + blocks,
    volumes: 1,
    volumeBytes: IMG_SIZE,
    blocks,
    zeroBlocks: ZERO_BLOCKS.size,
    objects: 0,
    objectsWithoutSize: 0,
    pieces: 0,
    payloadBytes: nonZero * BLOCK,
    objectBytes: 0,
    dataBytes: blocks * BLOCK,
    nonZeroBytes: nonZero * BLOCK,
    other: {},
  };
  const r = await ok(`file-blocks ${img} | count`);
  const out = r.stdout.toString();
  assert.strictEqual(out.split('\n').length, 2, `one line${describe(r)}`);
  assert.deepStrictEqual(JSON.parse(out), expected, describe(r));
  // From stdin the size comes in a second header after the blocks: still one volume.
  const s = await ok(`cat ${img} | file-blocks - | count`);
  assert.deepStrictEqual(JSON.parse(s.stdout), { ...expected, records: expected.records + 1 }, describe(s));
});

test('count: objects, compressed chunks and other record types', async () => {
  const file = path.join(work, 'objects.stream');
  fs.writeFileSync(
    file,
    encode([
      { type: 'object', key: 'a', size: 100 },
      { type: 'object', key: 'b', size: 5, [require('../dist/core/records.js').PAYLOAD]: Buffer.from('hello') },
      { type: 'object', key: 'c' },
      { type: 'object', key: 'chunk', size: 3000, codec: 'zstd', firstBlock: 0, blockCount: 2, rawSize: 2 * BLOCK },
      // An object in two pieces: one object of 10 bytes.
      { type: 'object', key: 'p', size: 10, offset: 0 },
      { type: 'object', key: 'p', size: 10, offset: 6 },
      { type: 'snapshot', id: 'snap-1' },
      { type: 'snapshot', id: 'snap-2' },
      { type: 'note' },
    ]),
  );
  const r = await ok(`count ${file}`);
  assert.deepStrictEqual(JSON.parse(r.stdout), {
    type: 'count',
    records: 9,
    volumes: 0,
    volumeBytes: 0,
    blocks: 0,
    zeroBlocks: 0,
    objects: 5,
    objectsWithoutSize: 1,
    pieces: 2,
    payloadBytes: 5,
    objectBytes: 3115,
    dataBytes: 115 + 2 * BLOCK,
    nonZeroBytes: 115 + 2 * BLOCK,
    other: { snapshot: 2, note: 1 },
  });
});

test('count --human prints one readable line', async () => {
  const r = await ok(`file-blocks ${img} | count --human`);
  const text = r.stdout.toString();
  assert.strictEqual(text.trim().split('\n').length, 1, describe(r));
  assert.match(text, /^42 records: 1 volume \(20\.00 MiB\), 41 blocks \(7 zero\), .*data 20\.50 MiB, non-zero 17\.00 MiB/, describe(r));
});

// ---------------------------------------------------------------- progress

test('progress passes frames through byte for byte and prints a summary on stderr', async () => {
  const a = path.join(work, 'direct.frames');
  const b = path.join(work, 'progress.frames');
  const r = await ok(`file-blocks ${img} > ${a} && file-blocks ${img} | progress -q > ${b} && cmp ${a} ${b}`);
  assert.match(r.stderr, /^progress: done: 42 records, 41 blocks, 17\.00 MiB, [\d.]+ MiB\/s, in [\dhms.]+\n$/, describe(r));
  const s = await ok(`cmp <(file-blocks ${img} | progress -q | strip) <(file-blocks ${img} | strip)`);
  assert.strictEqual(s.stdout.length, 0, describe(s));
});

test('progress prints a line with percentage and ETA every --interval seconds', async () => {
  const frames = path.join(work, 'slow.frames');
  await ok(`file-blocks ${img} > ${frames}`);
  // The producer pauses longer than the interval halfway: the next batch must report.
  const half = Math.floor(fs.statSync(frames).size / 2);
  const r = await ok(`{ head -c ${half} ${frames}; sleep 1.3; tail -c +${half + 1} ${frames}; } | progress --interval 1 --label img > /dev/null`);
  const out = r.stderr.trim().split('\n');
  assert.ok(out.length >= 2, describe(r));
  assert.match(out[0], /^img: \d+ records, \d+ blocks, .* MiB\/s, \d+\.\d% of 41 blocks, ETA /, describe(r));
  assert.match(out[out.length - 1], /^img: done: 42 records, 41 blocks/, describe(r));
});

// ---------------------------------------------------------------- skip

test('skip: a block journal of a killed run (cut mid-line) drops exactly the done blocks', async () => {
  const manifest = lines((await ok(`file-blocks ${img} | strip`)).stdout);
  const blocks = manifest.filter((r) => r.type === 'block');
  // Blocks 0-9 committed, the 11th line cut off mid-way; block 12 committed with other data
  // (not done); a chunk object covering 14-16 (done); no trailer.
  const journalLines = blocks.slice(0, 10).map((r) => JSON.stringify(r));
  journalLines.push(JSON.stringify({ ...blocks[12], sha256: blocks[13].sha256 }));
  journalLines.push(JSON.stringify({ type: 'object', key: 'vol/14.x.3.zstd', size: 1234, firstBlock: 14, blockCount: 3 }));
  const partial = JSON.stringify(blocks[10]);
  const journal = path.join(work, 'blocks.journal');
  fs.writeFileSync(journal, journalLines.join('\n') + '\n' + partial.slice(0, 30));

  const out = path.join(work, 'skipped.frames');
  const r = await ok(`file-blocks ${img} | skip --done ${journal} > ${out}`);
  assert.match(r.stderr, /^skip: skipped 13 of 42 records as done \(13 blocks, 0 objects\); 29 passed on\n$/, describe(r));
  const done = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 15, 16]);
  const expected = manifest.filter((rec) => rec.type !== 'block' || !done.has(rec.index)).filter((rec) => rec.type !== 'end');
  const got = lines((await ok(`strip ${out}`)).stdout).filter((rec) => rec.type !== 'end');
  assert.deepStrictEqual(got.map((x) => x.index), expected.map((x) => x.index));
  // The blocks that pass keep their payloads.
  const data = fs.readFileSync(img);
  const frames = fs.readFileSync(out);
  const block17 = data.subarray(17 * BLOCK, 18 * BLOCK);
  assert.ok(frames.includes(block17), 'block 17 passed with its data');
});

test('skip: objects match by key, and by sha256 when both sides have it', async () => {
  const input = path.join(work, 'objects.in');
  fs.writeFileSync(
    input,
    encode([
      { type: 'object', key: 'same-sha', sha256: 'AAA=' },
      { type: 'object', key: 'other-sha', sha256: 'BBB=' },
      { type: 'object', key: 'no-sha-here' },
      { type: 'object', key: 'no-sha-there', sha256: 'CCC=' },
      { type: 'object', key: 'not-in-journal' },
      { type: 'future', key: 'same-sha' },
    ]),
  );
  const j1 = path.join(work, 'objects1.journal');
  const j2 = path.join(work, 'objects2.journal');
  fs.writeFileSync(j1, [{ type: 'object', key: 'same-sha', sha256: 'AAA=' }, { type: 'object', key: 'other-sha', sha256: 'ZZZ=' }].map((x) => JSON.stringify(x) + '\n').join(''));
  // A complete journal (with its trailer) is fine too.
  fs.writeFileSync(j2, encode([{ type: 'object', key: 'no-sha-here', sha256: 'DDD=' }, { type: 'object', key: 'no-sha-there' }]));
  const r = await ok(`skip --done ${j1} --done ${j2} < ${input}`);
  const keys = lines(r.stdout).filter((x) => x.type !== 'end').map((x) => `${x.type}:${x.key}`);
  assert.deepStrictEqual(keys, ['object:other-sha', 'object:not-in-journal', 'future:same-sha'], describe(r));
  assert.match(r.stderr, /skipped 3 of 6 records/, describe(r));
});

test('skip: garbage in the middle of a journal is an error naming the journal and line', async () => {
  const journal = path.join(work, 'bad.journal');
  fs.writeFileSync(journal, '{"type":"block","index":1}\nnot json\n{"type":"block","index":2}\n');
  const r = await sh(`file-blocks ${img} | skip --done ${journal} > /dev/null`);
  assert.strictEqual(r.code, 4, describe(r));
  assert.match(r.stderr, new RegExp(`^skip: ${journal}:2: not a JSON record`), describe(r));
  const missing = await sh(`file-blocks ${img} | skip --done ${work}/no-such.journal > /dev/null`);
  assert.strictEqual(missing.code, 1, describe(missing));
  assert.match(missing.stderr, /^skip: cannot read journal .*no-such\.journal/, describe(missing));
  const noDone = await sh(`file-blocks ${img} | skip > /dev/null`);
  assert.strictEqual(noDone.code, 2, describe(noDone));
});

// ---------------------------------------------------------------- shard

test('shard: FNV-1a 32 reference values (the assignment must never change)', () => {
  assert.strictEqual(fnv1a32(''), 0x811c9dc5);
  assert.strictEqual(fnv1a32('a'), 0xe40c292c);
  assert.strictEqual(fnv1a32('foobar'), 0xbf9cf968);
  const { fnv1a32: impl } = require('../dist/core/fnv.js');
  for (const key of ['', 'a', 'foobar', 'vols/snap-0123.8/0.abc=.64.zstd', 'ünïcødé/ключ']) assert.strictEqual(impl(key), fnv1a32(key), key);
});

test('shard: the shards are disjoint, their union is the input, headers go to every shard', async () => {
  const records = [{ type: 'volume', format: 1, source: 'x', blockSize: BLOCK, blocks: 1000, size: 1000 * BLOCK }];
  for (let i = 0; i < 1000; i += 1 + (i % 3)) records.push({ type: 'block', index: i, sha256: ZERO_SHA, zero: true });
  for (let i = 0; i < 200; i++) records.push({ type: 'object', key: `dir/${i}/file-${i * 7}.bin`, size: i });
  records.push({ type: 'mystery', n: 1 });
  const input = path.join(work, 'shard.in');
  fs.writeFileSync(input, encode(records));
  const N = 3;
  const shards = [];
  for (let i = 0; i < N; i++) {
    const r = await ok(`shard -n ${N} -i ${i} ${input} | count > /dev/null && shard -n ${N} -i ${i} < ${input}`);
    shards.push(lines(r.stdout).filter((x) => x.type !== 'end'));
  }
  const id = (x) => (x.type === 'block' ? `b${x.index}` : x.type === 'object' ? `o${x.key}` : x.type);
  const seen = new Map();
  shards.forEach((recs, i) => {
    assert.strictEqual(recs[0].type, 'volume', `shard ${i} starts with the header`);
    assert.ok(recs.some((x) => x.type === 'mystery'), `shard ${i} has the unknown record`);
    for (const x of recs) {
      if (x.type === 'block') assert.strictEqual(Math.floor(x.index / 64) % N, i, `block ${x.index} in shard ${i}`);
      if (x.type === 'object') assert.strictEqual(fnv1a32(x.key) % N, i, `object ${x.key} in shard ${i}`);
      if (x.type !== 'block' && x.type !== 'object') continue;
      assert.ok(!seen.has(id(x)), `${id(x)} in shards ${seen.get(id(x))} and ${i}`);
      seen.set(id(x), i);
    }
    assert.ok(recs.length > 100, `shard ${i} got a fair share (${recs.length})`);
  });
  const wanted = records.filter((x) => x.type === 'block' || x.type === 'object').map(id).sort();
  assert.deepStrictEqual([...seen.keys()].sort(), wanted);
});

test('shard: frames keep their payloads; -n 1 is the identity', async () => {
  const a = path.join(work, 'all.frames');
  const b = path.join(work, 'shard1.frames');
  await ok(`file-blocks ${img} > ${a} && shard -n 1 -i 0 < ${a} > ${b} && cmp ${a} ${b}`);
  const r = await ok(`shard -n 2 -i 1 ${a} | strip`);
  assert.deepStrictEqual(lines(r.stdout).map((x) => x.type), ['volume', 'end'], describe(r));
});

/** A bash script that runs the pipelines in parallel and fails if any of them fails. */
function inParallel(pipelines) {
  return `pids=()\n${pipelines.map((p) => `${p} &\npids+=($!)`).join('\n')}\nfor pid in "\${pids[@]}"; do wait $pid || exit 1; done`;
}

/** A sparse image of 200 blocks and a bit, with data in four of its 64-block groups. */
function spreadImage() {
  const file = path.join(work, 'spread.img');
  const size = 200 * BLOCK + 1000;
  const fd = fs.openSync(file, 'w');
  for (const [first, count] of [[0, 10], [70, 6], [130, 11], [199, 1]]) fs.writeSync(fd, crypto.randomBytes(count * BLOCK), 0, count * BLOCK, first * BLOCK);
  fs.ftruncateSync(fd, size);
  fs.closeSync(fd);
  return { file, size };
}

test('shard (usage example): parallel chunking into the fsp layout restores the image', async () => {
  const { file, size } = spreadImage();
  const store = path.join(work, 'fsp-store');
  const journals = [0, 1].map((i) => path.join(work, `fsp.${i}.journal`));
  const shards = journals.map(
    (j, i) => `file-blocks ${file} | shard -n 2 -i ${i} | zstd-chunk --layout fsp --snapshot-id snap-0123456789abcdef0 | s3-put ${store} > ${j}`,
  );
  await ok(inParallel(shards));
  // Each shard wrote chunks of its own groups only, and between them every chunk.
  const written = journals.map((j) => lines(fs.readFileSync(j)).filter((x) => x.type === 'object'));
  written.forEach((objects, i) => {
    assert.ok(objects.length > 0, `shard ${i} wrote chunks`);
    for (const o of objects) assert.strictEqual(Math.floor(o.firstBlock / 64) % 2, i, o.key);
  });
  const out = path.join(work, 'fsp-restored.img');
  await ok(`s3-list ${store} | s3-get | zstd-unchunk --layout fsp --size ${size} | file-write ${out} && cmp ${file} ${out}`);
});

test('shard (usage example): parallel object copies make the same store', async () => {
  const { file } = spreadImage();
  const [source, mirror] = ['copy-source', 'copy-mirror'].map((d) => path.join(work, d));
  await ok(`file-blocks ${file} | zstd-chunk | s3-put ${source} > /dev/null`);
  const copies = [0, 1, 2].map((i) => `s3-list ${source} | shard -n 3 -i ${i} | s3-get | s3-put ${mirror} > ${work}/copy.${i}.journal`);
  await ok(inParallel(copies));
  const listing = async (store) => lines((await ok(`s3-list ${store}`)).stdout).filter((x) => x.type === 'object').map((x) => `${x.key} ${x.sha256}`);
  assert.deepStrictEqual(await listing(mirror), await listing(source));
  const copied = [0, 1, 2].flatMap((i) => lines(fs.readFileSync(`${work}/copy.${i}.journal`)).filter((x) => x.type === 'object').map((x) => x.key));
  assert.strictEqual(new Set(copied).size, copied.length, 'each object copied by one shard only');
  const out = path.join(work, 'copy-restored.img');
  await ok(`s3-list ${mirror} | s3-get | zstd-unchunk | file-write ${out} && cmp ${file} ${out}`);
});

test('shard: a sharded default-layout chunking is refused at restore; the documented unsharded run repairs volume.json', async () => {
  const { file } = spreadImage();
  const store = path.join(work, 'sharded-default');
  const journals = [0, 1].map((i) => path.join(work, `default.${i}.journal`));
  await ok(inParallel(journals.map((j, i) => `file-blocks ${file} | shard -n 2 -i ${i} | zstd-chunk | s3-put ${store} > ${j}`)));
  const out = path.join(work, 'sharded-default.img');
  const refused = await sh(`s3-list ${store} | s3-get | zstd-unchunk | file-write ${out}`);
  assert.strictEqual(refused.statuses[2], 5, describe(refused));
  assert.ok(!fs.existsSync(out), 'nothing restored');
  const done = journals.map((j) => `--done ${j}`).join(' ');
  const counted = journals.map((j) => `--journal ${j}`).join(' ');
  const repair = await ok(`file-blocks ${file} | skip ${done} | zstd-chunk ${counted} | s3-put ${store}`);
  assert.deepStrictEqual(lines(repair.stdout).filter((x) => x.type === 'object').map((x) => x.key), ['volume.json'], describe(repair));
  await ok(`s3-list ${store} | s3-get | zstd-unchunk | file-write ${out} && cmp ${file} ${out}`);
});

test('shard: bad -n / -i are usage errors; a block without an index is invalid input', async () => {
  for (const args of ['-n 2', '-i 0', '-n 2 -i 2', '-n 0 -i 0', '-n x -i 0']) {
    const r = await sh(`shard ${args} < /dev/null`);
    assert.strictEqual(r.code, 2, describe(r));
  }
  const file = path.join(work, 'noindex.stream');
  fs.writeFileSync(file, encode([{ type: 'block', index: -1 }]));
  const r = await sh(`shard -n 2 -i 0 < ${file}`);
  assert.strictEqual(r.code, 4, describe(r));
  assert.match(r.stderr, /^shard: stdin:1: block record has an invalid "index": -1\n$/, describe(r));
});

// Bad input, a truncated upstream and `| head -1` are tested for every stream reader in
// every-command.test.js; unknown flags and --help for every command in runtime.test.js.
