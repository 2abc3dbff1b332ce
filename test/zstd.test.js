'use strict';
// zstd-chunk and zstd-unchunk in real pipes: byte-identical round trips through a local store
// in both layouts, FSP compatibility checked against the zstd CLI and keys computed here,
// and refusal of truncated, corrupted and incomplete input.
const test = require('node:test');
const { describe: suite, it } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { sh, ok, describe, tmpdir } = require('./lib/run');
const { writePattern, PATTERNS, BLOCK } = require('./lib/pattern');
const { Encoder } = require('../dist/core/encode.js');
const { initDigest } = require('../dist/core/digest.js');
const { PAYLOAD } = require('../dist/core/records.js');

const MiB = 1 << 20;
const GiB = 1 << 30;
const work = tmpdir('sluice-zstd-');
// Not a whole number of blocks (FSP rounds the size up to 1 GiB), mostly one sparse hole.
const SIZE = 64 * MiB + 12345;
const HOLES = [[6 * MiB, 54 * MiB]];
const images = {};

test.before(async () => {
  await initDigest();
  for (const pattern of Object.keys(PATTERNS)) {
    images[pattern] = path.join(work, `${pattern}.img`);
    writePattern(images[pattern], SIZE, pattern, { holes: HOLES });
  }
});

test.after(() => fs.rmSync(work, { recursive: true, force: true }));

let n = 0;
const fresh = (name) => path.join(work, `${name}-${n++}`);
const sha = (data) => crypto.createHash('sha256').update(data).digest('base64');
const urlsafe = (b64) => b64.replace(/\+/g, '-').replace(/\//g, '_');

function expectStatus(r, code, pattern) {
  assert.strictEqual(r.code, code, `expected exit ${code}${describe(r)}`);
  if (pattern) assert.match(r.stderr, pattern, describe(r));
}

// The cases are independent: run a few at once (most of their time is process start-up).
suite('zstd-chunk and zstd-unchunk', { concurrency: 4 }, () => {
  for (const pattern of Object.keys(PATTERNS)) {
    it(`default layout: ${pattern} image round trip through a store is byte-identical`, async () => {
      const store = fresh('store');
      const out = fresh('out.img');
      await ok(`file-blocks ${images[pattern]} | zstd-chunk | s3-put ${store} > /dev/null`);
      assert.ok(fs.existsSync(path.join(store, 'volume.json')));
      await ok(`s3-list ${store} | s3-get | zstd-unchunk | file-write ${out}`);
      await ok(`cmp ${images[pattern]} ${out}`);
    });

    it(`fsp layout: ${pattern} image round trip through a store, --size restores the true size`, async () => {
      const store = fresh('store');
      const out = fresh('out.img');
      await ok(`file-blocks ${images[pattern]} | zstd-chunk --layout fsp --snapshot-id snap-0123abcd | s3-put ${store} > /dev/null`);
      assert.deepStrictEqual(fs.readdirSync(store).filter((f) => !f.startsWith('%')), ['snap-0123abcd.1']);
      await ok(`s3-list ${store} | s3-get | zstd-unchunk --layout fsp --size ${SIZE} | file-write ${out}`);
      await ok(`cmp ${images[pattern]} ${out}`);
    });
  }

  it('fsp layout: without --size the volume is restored at its whole GiB size', async () => {
    const store = fresh('store');
    const out = fresh('out.img');
    await ok(`file-blocks ${images.every} | zstd-chunk --layout fsp --snapshot-id snap-1 | s3-put ${store} > /dev/null`);
    // Listing the snapshot's folder itself: the keys have no folder, the store URL names it.
    await ok(`s3-list ${store}/snap-1.1 | s3-get | zstd-unchunk --layout fsp | file-write ${out}`);
    assert.strictEqual(fs.statSync(out).size, GiB);
    await ok(`cmp -n ${SIZE} ${images.every} ${out} && cmp -i ${SIZE}:0 -n ${GiB - SIZE} ${out} /dev/zero`);
  });

  it('straight through: zstd-chunk | zstd-unchunk gives the blocks file-blocks gave, in both layouts', async () => {
    const want = (await ok(`file-blocks ${images.every3rd4th} | strip | grep -v '"end"'`)).stdout.toString();
    const got = (await ok(`file-blocks ${images.every3rd4th} | zstd-chunk | zstd-unchunk | strip | grep -v '"end"'`)).stdout.toString();
    assert.strictEqual(got, want);
    const gotFsp = (await ok(`file-blocks ${images.every3rd4th} | zstd-chunk --layout fsp --snapshot-id s | zstd-unchunk --layout fsp | strip | grep -v '"end"'`)).stdout.toString();
    assert.strictEqual(gotFsp, want);
  });

  /** A small image whose chunks start at 0, 64 and 128 (a listing sorts "128" before "64"), with zero blocks. */
  // Made once and only read: each block a random 4 KiB piece repeated (unique, and quick to
  // compress), every 7th block zero.
  let small;
  function smallImage() {
    if (small) return small;
    const file = fresh('small.img');
    const data = Buffer.alloc(140 * BLOCK);
    for (let i = 0; i < 140; i++) {
      if (i % 7 === 0) continue;
      const piece = crypto.randomBytes(4096);
      for (let o = 0; o < BLOCK; o += piece.length) piece.copy(data, i * BLOCK + o);
    }
    fs.writeFileSync(file, data);
    return (small = { file, data });
  }

  it('fsp layout: keys are exactly FSP\'s, frames are plain zstd with content size and no checksum', async () => {
    const { file, data } = smallImage();
    const store = fresh('store');
    await ok(`file-blocks ${file} | zstd-chunk --layout fsp --snapshot-id snap-0abc | s3-put ${store} > /dev/null`);
    // FSP's rules, computed here: zero blocks are gaps; a new object at each gap and each index
    // divisible by 64; the key names the first block, the urlsafe base64 (padded) SHA-256 of
    // the raw bytes, and the block count, under {snapshotId}.{GiB}.
    const expected = [];
    let run = [];
    const flush = () => {
      if (!run.length) return;
      const raw = data.subarray(run[0] * BLOCK, (run[run.length - 1] + 1) * BLOCK);
      expected.push({ name: `${run[0]}.${urlsafe(sha(raw))}.${run.length}.zstd`, raw });
      run = [];
    };
    for (let i = 0; i < 140; i++) {
      const zero = data.subarray(i * BLOCK, (i + 1) * BLOCK).every((b) => b === 0);
      if (zero || i % 64 === 0) flush();
      if (!zero) run.push(i);
    }
    flush();
    const dir = path.join(store, 'snap-0abc.1');
    const names = fs.readdirSync(dir).filter((f) => !f.startsWith('%')).sort();
    assert.deepStrictEqual(names, expected.map((e) => e.name).sort());
    for (const { name, raw } of expected) {
      const object = path.join(dir, name);
      const list = await ok(`zstd -lv ${object}`);
      assert.match(list.stdout.toString(), /Check: None/);
      assert.match(list.stdout.toString(), new RegExp(`Decompressed Size: .*\\(${raw.length} B\\)`));
      const plain = await ok(`zstd -d -c ${object}`);
      assert.ok(plain.stdout.equals(raw), `${name} decompresses to the raw blocks`);
    }
  });

  it('fsp layout: objects written by FSP\'s rules (zstd CLI) are read back in block order', async () => {
    const { data } = smallImage();
    const store = fresh('store');
    const dir = path.join(store, 'snap-77.1');
    fs.mkdirSync(dir, { recursive: true });
    // Chunks at 0, 64 and 128 with their zero blocks included (FULL_COPY), made with the zstd CLI.
    for (const [first, count] of [[0, 64], [64, 64], [128, 12]]) {
      const raw = data.subarray(first * BLOCK, (first + count) * BLOCK);
      const rawFile = path.join(work, `raw-${first}`);
      fs.writeFileSync(rawFile, raw);
      await ok(`zstd -q -1 --no-check ${rawFile} -o ${path.join(dir, `${first}.${urlsafe(sha(raw))}.${count}.zstd`)}`);
    }
    const listing = (await ok(`s3-list ${store} | strip | grep -o '"key":"[^"]*"'`)).stdout.toString();
    assert.ok(listing.indexOf('/128.') < listing.indexOf('/64.'), 'the listing is in key order, not block order');
    const out = fresh('out.img');
    await ok(`s3-list ${store} | s3-get | zstd-unchunk --layout fsp --size ${data.length} | file-write ${out}`);
    assert.ok(fs.readFileSync(out).equals(data));
    const blocks = (await ok(`s3-list ${store} | s3-get | zstd-unchunk --layout fsp | strip | grep -c '"zero":true'`)).stdout.toString().trim();
    assert.strictEqual(Number(blocks), 20, 'the zero blocks inside the chunks come out as zero blocks');
  });

  it('fsp layout: a snapshot id is required, from the header or --snapshot-id', async () => {
    const { file } = smallImage();
    const r = await sh(`file-blocks ${file} | zstd-chunk --layout fsp > /dev/null`);
    expectStatus(r, 4, /snapshot id.*--snapshot-id/);
  });

  it('default layout: volume.json is written last and names the layout and totals', async () => {
    const { file } = smallImage();
    const r = await ok(`file-blocks ${file} | zstd-chunk | strip`);
    const recs = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.strictEqual(recs[0].type, 'volume');
    const last = recs[recs.length - 2];
    assert.deepStrictEqual([last.key, last.commit], ['volume.json', true]);
    const chunks = recs.filter((x) => x.type === 'object' && x.key.startsWith('zstd/'));
    assert.deepStrictEqual(chunks.map((c) => [c.firstBlock, c.blockCount]), [[0, 64], [64, 64], [128, 12]]);
    for (const c of chunks) assert.match(c.key, /^zstd\/\d{10}-\d+-[A-Za-z0-9_-]{43}\.zst$/);
    const store = fresh('store');
    await ok(`file-blocks ${file} | zstd-chunk | s3-put ${store} > /dev/null`);
    const doc = JSON.parse(fs.readFileSync(path.join(store, 'volume.json'), 'utf8'));
    assert.strictEqual(doc.layout, 'sluice-zstd');
    assert.strictEqual(doc.layoutVersion, 1);
    assert.strictEqual(doc.size, 140 * BLOCK);
    assert.strictEqual(doc.chunks, 3);
    assert.strictEqual(doc.dataBlocks, 140);
  });

  it('default layout: chunks without volume.json are refused; a missing chunk is found', async () => {
    const { file } = smallImage();
    const store = fresh('store');
    await ok(`file-blocks ${file} | zstd-chunk | s3-put ${store} > /dev/null`);
    const chunk = fs.readdirSync(path.join(store, 'zstd')).find((f) => f.startsWith('0000000064-'));
    fs.renameSync(path.join(store, 'zstd', chunk), path.join(work, chunk));
    fs.rmSync(path.join(store, 'zstd', `%.meta.${chunk}`), { force: true });
    expectStatus(await sh(`s3-list ${store} | s3-get | zstd-unchunk > /dev/null`), 5, /2 chunks read, volume.json lists 3/);
    await ok(`s3-list ${store} | s3-get | zstd-unchunk --partial | strip > /dev/null`);
    fs.rmSync(path.join(store, 'volume.json'));
    fs.rmSync(path.join(store, '%.meta.volume.json'), { force: true });
    expectStatus(await sh(`s3-list ${store} | s3-get | zstd-unchunk --partial > /dev/null`), 4, /without a header/);
  });

  it('a resumed upload (skip --done, zstd-chunk --journal) restores with the exact chunk count', async () => {
    const { file, data } = smallImage();
    const store = fresh('store');
    const run1 = fresh('run1.journal');
    const run2 = fresh('run2.journal');
    // The first run dies after two chunks: s3-put stores and journals what it got.
    const stream = fresh('chunks');
    await ok(`file-blocks ${file} | zstd-chunk > ${stream}`);
    const cut = fs.readFileSync(stream).indexOf('{"type":"object","key":"zstd/0000000128-');
    const r = await sh(`head -c ${cut} ${stream} | s3-put ${store} > ${run1}`);
    assert.strictEqual(r.statuses[1], 3, describe(r));
    assert.ok(!fs.existsSync(path.join(store, 'volume.json')));
    await ok(`file-blocks ${file} | skip --done ${run1} | zstd-chunk --journal ${run1} | s3-put ${store} > ${run2}`);
    assert.strictEqual(fs.readFileSync(run2, 'utf8').match(/"key":"zstd\//g).length, 1, 'the second run wrote only the missing chunk');
    const out = fresh('out.img');
    await ok(`s3-list ${store} | s3-get | zstd-unchunk | file-write ${out}`);
    assert.ok(fs.readFileSync(out).equals(data));
    // Without --journal, volume.json counts only the second run's chunks: the restore says so.
    const store2 = fresh('store');
    await sh(`head -c ${cut} ${stream} | s3-put ${store2} > ${run1}`);
    await ok(`file-blocks ${file} | skip --done ${run1} | zstd-chunk | s3-put ${store2} > /dev/null`);
    expectStatus(await sh(`s3-list ${store2} | s3-get | zstd-unchunk > /dev/null`), 5, /3 chunks read, volume.json lists 1: .*--journal/);
  });

  it('a chunk whose data does not match the checksum in its key: exit 5 naming the key', async () => {
    const { file } = smallImage();
    for (const layout of ['default', 'fsp']) {
      const store = fresh('store');
      await ok(`file-blocks ${file} | zstd-chunk --layout ${layout} ${layout === 'fsp' ? '--snapshot-id s' : ''} | s3-put ${store} > /dev/null`);
      const dir = layout === 'fsp' ? path.join(store, 's.1') : path.join(store, 'zstd');
      const names = fs.readdirSync(dir).filter((f) => !f.startsWith('%') && f !== 'volume.json');
      // Give two chunks of the same length each other's checksum (in the key).
      const count = (f) => (layout === 'fsp' ? f.match(/\.(\d+)\.zstd$/) : f.match(/^\d+-(\d+)-/))[1];
      const a = names[0];
      const b = names.find((f) => f !== a && count(f) === count(a));
      const first = (f) => f.match(/^(\d+)/)[1];
      const wrongA = b.replace(/^\d+/, first(a));
      const wrongB = a.replace(/^\d+/, first(b));
      fs.renameSync(path.join(dir, a), path.join(work, 'tmp-a'));
      fs.renameSync(path.join(dir, b), path.join(dir, wrongB));
      fs.renameSync(path.join(work, 'tmp-a'), path.join(dir, wrongA));
      for (const f of fs.readdirSync(dir)) if (f.startsWith('%')) fs.rmSync(path.join(dir, f));
      const r = await sh(`s3-list ${store} | s3-get | zstd-unchunk --layout ${layout} --partial > /dev/null`);
      expectStatus(r, 5, new RegExp(`object "[^"]*${wrongA.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"`));
    }
  });

  it('a flipped byte in a chunk\'s data: exit 5 naming the key', async () => {
    const { file } = smallImage();
    const stream = fresh('chunks');
    await ok(`file-blocks ${file} | zstd-chunk > ${stream}`);
    const bytes = fs.readFileSync(stream);
    // The payload of the second chunk starts after its line.
    const line = bytes.indexOf('{"type":"object","key":"zstd/0000000064-');
    const start = bytes.indexOf(0x0a, line) + 1;
    bytes[start + 1000] ^= 0x40;
    fs.writeFileSync(stream, bytes);
    const r = await sh(`zstd-unchunk < ${stream} > /dev/null`);
    expectStatus(r, 5, /object "zstd\/0000000064-/);
  });

  it('zstd-chunk checks the SHA-256 of every block it compresses (exit 5 naming the block)', async () => {
    const { file } = smallImage();
    const stream = fresh('blocks');
    await ok(`file-blocks ${file} > ${stream}`);
    const bytes = fs.readFileSync(stream);
    const line = bytes.indexOf('{"type":"block","index":71,');
    bytes[bytes.indexOf(0x0a, line) + 5] ^= 1;
    fs.writeFileSync(stream, bytes);
    expectStatus(await sh(`zstd-chunk < ${stream} > /dev/null`), 5, /block 71: SHA-256 of the data is/);
    // With --no-verify the bad block goes through, and the restore finds it.
    const r = await sh(`zstd-chunk --no-verify < ${stream} | zstd-unchunk > /dev/null`);
    expectStatus(r, 5, /object "zstd\/0000000064-/);
  });

  it('truncated input: zstd-unchunk exits 3; zstd-chunk exits 3 and writes no volume.json', async () => {
    const { file } = smallImage();
    const stream = fresh('chunks');
    await ok(`file-blocks ${file} | zstd-chunk > ${stream}`);
    const size = fs.statSync(stream).size;
    for (const cut of [100, Math.floor(size / 2), size - 10]) {
      const r = await sh(`head -c ${cut} ${stream} | zstd-unchunk | strip > /dev/null`);
      assert.strictEqual(r.statuses[1], 3, describe(r));
    }
    const r = await sh(`file-blocks ${file} | head -c 30000000 | zstd-chunk | strip`);
    assert.strictEqual(r.statuses[2], 3, describe(r));
    assert.doesNotMatch(r.stdout.toString(), /volume\.json/);
  });

  it('garbage input: a one-line error with the position, non-zero exit', async () => {
    for (const cmd of ['zstd-chunk', 'zstd-unchunk', 'zstd-unchunk --layout fsp']) {
      const r = await sh(`printf '{"type":"volume","format":1,"blockSize":524288}\\nnot json\\n' | ${cmd} > /dev/null`);
      expectStatus(r, 4, /^zstd-(un)?chunk: stdin:2: not a JSON record/);
      assert.strictEqual(r.stderr.trim().split('\n').length, 1, describe(r));
    }
  });

  it('objects of another layout are refused with a hint, or dropped with --skip-unknown', async () => {
    const { file } = smallImage();
    const stream = fresh('chunks');
    await ok(`file-blocks ${file} | zstd-chunk --layout fsp --snapshot-id s > ${stream}`);
    expectStatus(await sh(`zstd-unchunk < ${stream} > /dev/null`), 4, /is not of the default layout \(it looks like the fsp layout/);
    const r = await ok(`zstd-unchunk --skip-unknown --partial < ${stream} | strip`);
    assert.doesNotMatch(r.stdout.toString(), /"type":"block"/);
    assert.match(r.stderr, /dropped \d+ objects not of the default layout/);
  });

  it('incompressible chunks round trip through pipes while frame and chunk buffers are reused', async () => {
    // Six chunks of random bytes: frames as large as their chunks, more of them than the
    // buffers kept, so later chunks are compressed into (and decompressed into) buffers whose
    // earlier contents were written out; s3-put checks every frame's SHA-256.
    const img = fresh('random.img');
    fs.writeFileSync(img, crypto.randomBytes(6 * 32 * MiB - 3 * BLOCK));
    const store = fresh('store');
    const out = fresh('out.img');
    await ok(`file-blocks ${img} | zstd-chunk -j 2 | s3-put ${store} > /dev/null`);
    await ok(`s3-list ${store} | s3-get | zstd-unchunk -j 2 | file-write ${out}`);
    await ok(`cmp ${img} ${out}`);
    await ok(`file-blocks ${img} | zstd-chunk -j 3 | zstd-unchunk -j 1 | file-write ${out}.direct && cmp ${img} ${out}.direct`);
    for (const f of [img, out, `${out}.direct`]) fs.rmSync(f);
    fs.rmSync(store, { recursive: true });
  });

  it('| head -1 ends every stage with status 0', async () => {
    const r = await sh(`file-blocks ${images.every} | zstd-chunk | zstd-unchunk | head -1 > /dev/null`);
    assert.deepStrictEqual(r.statuses, [0, 0, 0, 0], describe(r));
    const r2 = await sh(`file-blocks ${images.every} | zstd-chunk --layout fsp --snapshot-id s | head -1 > /dev/null`);
    assert.deepStrictEqual(r2.statuses, [0, 0, 0], describe(r2));
  });

  it('a stream of unknown size (stdin) gets its size into volume.json', async () => {
    const { file, data } = smallImage();
    const store = fresh('store');
    await ok(`file-blocks - < ${file} | zstd-chunk | s3-put ${store} > /dev/null`);
    assert.strictEqual(JSON.parse(fs.readFileSync(path.join(store, 'volume.json'), 'utf8')).size, data.length);
    const r = await sh(`file-blocks - < ${file} | zstd-chunk --layout fsp --snapshot-id s > /dev/null`);
    expectStatus(r, 4, /size in GiB/);
  });

  it('usage errors exit 2', async () => {
    for (const cmd of ['zstd-chunk --level 0', 'zstd-chunk --layout zip', 'zstd-chunk --full-copy', 'zstd-unchunk --size 10', 'zstd-unchunk --layout fsp --snapshot-id x']) {
      const r = await sh(`${cmd} < /dev/null`);
      expectStatus(r, 2);
    }
  });

  // Streams made here, to reach cases file-blocks never produces.
  function writeStream(file, records) {
    const out = new Encoder();
    for (const { data, ...rec } of records) {
      if (data) rec[PAYLOAD] = data;
      out.push(rec);
    }
    out.end();
    fs.writeFileSync(file, Buffer.concat(out.take()));
    return file;
  }

  it('FSP chunks in key order come back in block order; early ones wait on disk, holes are not waited for', async () => {
    const { Reorder, lexMax } = require('../dist/core/reorder.js');
    assert.strictEqual(lexMax(64, 127), '99');
    assert.strictEqual(lexMax(100, 127), '127');
    assert.strictEqual(lexMax(0, 0), '0');
    // Chunks as FSP cuts a volume of 20,000 blocks with gaps (seeded), then listed in key order.
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const chunks = [];
    let index = 0;
    while (index < 20000) {
      if (random() < 0.3) index += 1 + Math.floor(random() * 300);
      const count = Math.min(64 - (index % 64), 1 + Math.floor(random() * 64), 20000 - index);
      if (count > 0) chunks.push({ first: index, count, text: String(index) });
      index += count;
    }
    for (const order of ['listing', 'blocks']) {
      const input = order === 'listing' ? [...chunks].sort((a, b) => (a.text + '.' < b.text + '.' ? -1 : 1)) : chunks;
      const reorder = new Reorder(work);
      const out = [];
      for (const c of input) {
        for await (const r of reorder.add({ ...c, meta: c.first }, Buffer.from(`frame ${c.first}`))) out.push(r);
      }
      for await (const r of reorder.finish()) out.push(r);
      await reorder.close();
      assert.deepStrictEqual(out.map((r) => r.first), chunks.map((c) => c.first), order);
      for (const r of out) assert.strictEqual(r.frame.toString(), `frame ${r.first}`);
      if (order === 'listing') assert.ok(reorder.spooledBytes > 0, 'chunks that came early waited in the spool');
    }
  });

  it('zstd-chunk refuses blocks out of order, past the volume, or without data', async () => {
    const block = Buffer.alloc(BLOCK, 7);
    const vol = { type: 'volume', format: 1, source: 't', blockSize: BLOCK, size: 4 * BLOCK, blocks: 4 };
    const cases = [
      [[vol, { type: 'block', index: 2, sha256: sha(block), data: block }, { type: 'block', index: 1, sha256: sha(block), data: block }], /block 1 follows block 2/],
      [[vol, { type: 'block', index: 4, sha256: sha(block), data: block }], /past the volume's 4 blocks/],
      [[vol, { type: 'block', index: 0, sha256: sha(block) }], /has no data/],
      [[{ type: 'block', index: 0, sha256: sha(block), data: block }], /before the "volume" header/],
    ];
    for (const [records, message] of cases) {
      const file = writeStream(fresh('stream'), records);
      expectStatus(await sh(`zstd-chunk < ${file} > /dev/null`), 4, message);
    }
  });
});
