'use strict';
// file-write end to end: real pipes from file-blocks, byte-identical round trips, commits only
// after a valid trailer, in-place deltas, and refusal of data that fails its checksum.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { sh, ok, describe, tmpdir } = require('./lib/run');
const { writePattern, checkPattern, PATTERNS, BLOCK } = require('./lib/pattern');
const { Encoder } = require('../dist/core/encode.js');
const { initDigest } = require('../dist/core/digest.js');
const { PAYLOAD, ZERO_BLOCK_SHA256 } = require('../dist/core/records.js');

const MiB = 1 << 20;
const work = tmpdir();
// Not a whole number of blocks, with a 16 MiB sparse hole in the middle.
const SIZE = 40 * MiB + 12345;
const HOLES = [[8 * MiB, 24 * MiB]];
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
const fresh = (name = 'out') => path.join(work, `${name}-${n++}.img`);

/** Files in the work directory that are temporary files of file-write. */
function leftovers() {
  return fs.readdirSync(work).filter((f) => f.includes('.sluice-'));
}

/** Writes a stream made of `records` (payloads under their `data` key) to a file. */
function writeStream(file, records, { end = true } = {}) {
  const out = new Encoder();
  for (const { data, ...rec } of records) {
    if (data) rec[PAYLOAD] = data;
    out.push(rec);
  }
  if (end) out.end();
  fs.writeFileSync(file, Buffer.concat(out.take()));
  return file;
}

const sha = (data) => crypto.createHash('sha256').update(data).digest('base64');
const dataBlock = (index, byte) => {
  const data = Buffer.alloc(BLOCK, byte);
  return { type: 'block', index, sha256: sha(data), data };
};
const zeroBlock = (index) => ({ type: 'block', index, sha256: ZERO_BLOCK_SHA256, zero: true });
const volume = (size) => ({ type: 'volume', format: 1, source: 'test', blockSize: BLOCK, size, blocks: Math.ceil(size / BLOCK) });

for (const pattern of Object.keys(PATTERNS)) {
  test(`${pattern}: file-blocks IMG | file-write OUT is byte-identical and sparse`, async () => {
    const out = fresh(pattern);
    const r = await ok(`file-blocks ${images[pattern]} | file-write ${out} && cmp ${images[pattern]} ${out}`);
    assert.strictEqual(r.stdout.length, 0, 'nothing on stdout');
    assert.strictEqual(checkPattern(out, SIZE, pattern, { holes: HOLES }), null);
    // The hole is zeros in the stream (or absent): either way it is not written.
    // (A margin of 1 MiB for the file system's own rounding and metadata.)
    const allocated = fs.statSync(out).blocks * 512;
    assert.ok(allocated <= SIZE - 15 * MiB, `${out} should keep a 16 MiB hole, but ${allocated} bytes are allocated`);
  });

  test(`${pattern}: through stdin (cat IMG | file-blocks - | file-write OUT)`, async () => {
    const out = fresh(pattern);
    await ok(`cat ${images[pattern]} | file-blocks - | file-write ${out} && cmp ${images[pattern]} ${out}`);
  });
}

test('two targets at once get the same bytes', async () => {
  const [a, b] = [fresh('a'), fresh('b')];
  await ok(`file-blocks ${images.every3rd4th} | file-write -j 2 ${a} ${b} && cmp ${images.every3rd4th} ${a} && cmp ${images.every3rd4th} ${b}`);
});

test('a zero-length volume makes an empty file', async () => {
  const empty = path.join(work, 'empty.img');
  fs.writeFileSync(empty, '');
  const [a, b] = [fresh(), fresh()];
  await ok(`file-blocks ${empty} | file-write ${a} && : | file-blocks - | file-write ${b}`);
  assert.strictEqual(fs.statSync(a).size, 0);
  assert.strictEqual(fs.statSync(b).size, 0);
});

// A truncated upstream (status 3, nothing renamed, no temporary file) is tested for every
// stream reader in every-command.test.js.

test('a producer killed mid-stream: exit 3, nothing renamed, no temporary file left', async () => {
  const out = fresh();
  const dir = tmpdir();
  // file-blocks reads a pipe that stays open, so it is surely alive, mid-stream, when killed.
  const r = await sh(`
    mkfifo ${dir}/in ${dir}/mid
    file-write ${out} < ${dir}/mid 2> ${dir}/err & writer=$!
    file-blocks - < ${dir}/in > ${dir}/mid & producer=$!
    exec 3> ${dir}/in
    head -c 5000000 /dev/urandom >&3
    for i in $(seq 100); do [ -n "$(find ${work} -name '.*.sluice-*' -size +1M)" ] && break; sleep 0.1; done
    kill -9 $producer
    exec 3>&-
    wait $writer; status=$?
    cat ${dir}/err >&2
    exit $status`);
  assert.strictEqual(r.code, 3, describe(r));
  assert.match(r.stderr, /input ended without its end trailer/, describe(r));
  assert.ok(!fs.existsSync(out), 'no file renamed into place');
  assert.deepStrictEqual(leftovers(), []);
});

test('SIGTERM mid-stream: exit 143, no temporary file left', async () => {
  const out = fresh();
  const dir = tmpdir();
  const r = await sh(`
    mkfifo ${dir}/in
    file-write ${out} < ${dir}/in 2> ${dir}/err & writer=$!
    exec 3> ${dir}/in
    file-blocks ${images.every} | head -c 3000000 >&3
    for i in $(seq 100); do [ -n "$(find ${work} -name '.*.sluice-*' -size +1M)" ] && break; sleep 0.1; done
    kill -TERM $writer
    wait $writer; status=$?
    exec 3>&-
    cat ${dir}/err >&2
    exit $status`);
  assert.strictEqual(r.code, 143, describe(r));
  assert.ok(!fs.existsSync(out));
  assert.deepStrictEqual(leftovers(), []);
});

test('--in-place applies a delta: zero blocks become zeros, absent blocks stay', async () => {
  const target = fresh('target');
  const old = Buffer.alloc(8 * BLOCK, 0x11);
  fs.writeFileSync(target, old);
  const header = { ...volume(8 * BLOCK), parent: 'snap-a' };
  const stream = writeStream(path.join(work, 'delta.stream'), [header, zeroBlock(1), dataBlock(2, 0x22), zeroBlock(5)]);
  const r = await ok(`file-write --in-place ${target} < ${stream}`);
  assert.strictEqual(r.stderr, '', 'a delta leaves absent blocks without a note');
  const got = fs.readFileSync(target);
  const want = Buffer.from(old);
  want.fill(0, 1 * BLOCK, 2 * BLOCK).fill(0x22, 2 * BLOCK, 3 * BLOCK).fill(0, 5 * BLOCK, 6 * BLOCK);
  assert.ok(got.equals(want), 'blocks 1 and 5 zeroed, block 2 written, the rest untouched');
});

test('--in-place: absent blocks of a full volume get a note, or zeros with --zero-absent', async () => {
  const [noted, zeroed] = [fresh(), fresh()];
  fs.writeFileSync(noted, Buffer.alloc(4 * BLOCK, 0x11));
  fs.writeFileSync(zeroed, Buffer.alloc(4 * BLOCK, 0x11));
  const stream = writeStream(path.join(work, 'full.stream'), [volume(3 * BLOCK + 7), dataBlock(1, 0x22)]);
  const r = await ok(`file-write --in-place ${noted} < ${stream}`);
  assert.match(r.stderr, /^file-write: \S+: 3 absent blocks left as they were \(give --zero-absent to write zeros there\)\n$/, describe(r));
  await ok(`file-write --in-place --zero-absent ${zeroed} < ${stream}`);
  const want = Buffer.alloc(4 * BLOCK, 0);
  want.fill(0x22, BLOCK, 2 * BLOCK).fill(0x11, 3 * BLOCK + 7);
  assert.ok(fs.readFileSync(zeroed).equals(want), 'zeros up to the volume size, old data after it');
});

test('--in-place keeps a larger file unless --truncate, and extends a smaller one', async () => {
  const size = 2 * BLOCK + 100;
  const stream = writeStream(path.join(work, 'small.stream'), [volume(size), dataBlock(2, 0x33)]);
  const [large, cut, small] = [fresh(), fresh(), fresh()];
  fs.writeFileSync(large, Buffer.alloc(4 * BLOCK, 0x11));
  fs.writeFileSync(cut, Buffer.alloc(4 * BLOCK, 0x11));
  fs.writeFileSync(small, Buffer.alloc(100, 0x11));
  await ok(`file-write --in-place ${large} < ${stream} && file-write --in-place --truncate ${cut} < ${stream} && file-write --in-place ${small} < ${stream}`);
  const l = fs.readFileSync(large);
  assert.strictEqual(l.length, 4 * BLOCK);
  assert.ok(l.subarray(2 * BLOCK, size).equals(Buffer.alloc(100, 0x33)), 'the partial last block is written up to the size');
  assert.ok(l.subarray(size).equals(Buffer.alloc(4 * BLOCK - size, 0x11)), 'nothing past the volume is overwritten');
  assert.strictEqual(fs.statSync(cut).size, size);
  const s = fs.readFileSync(small);
  assert.strictEqual(s.length, size);
  assert.ok(s.subarray(0, 100).equals(Buffer.alloc(100, 0x11)) && s.subarray(2 * BLOCK).equals(Buffer.alloc(100, 0x33)));
});

test('--in-place from stdin (size known only at the end) writes nothing past the volume', async () => {
  const target = fresh();
  fs.writeFileSync(target, Buffer.alloc(3 * BLOCK, 0x11));
  const source = path.join(work, 'short.bin');
  fs.writeFileSync(source, Buffer.alloc(BLOCK + 10, 0x44));
  await ok(`cat ${source} | file-blocks - | file-write --in-place --zero-absent ${target}`);
  const got = fs.readFileSync(target);
  assert.ok(got.subarray(0, BLOCK + 10).equals(Buffer.alloc(BLOCK + 10, 0x44)));
  assert.ok(got.subarray(BLOCK + 10).equals(Buffer.alloc(2 * BLOCK - 10, 0x11)), 'the padding of the last block is not written');
});

test('altered data fails its checksum: exit 5 naming the block, nothing renamed', async () => {
  const out = fresh();
  // Flips one byte inside block 3's payload; the trailer covers lines only, so it stays valid.
  const corrupt = `node -e '
    const s = require("fs").readFileSync(0);
    const at = s.indexOf("\\n", s.indexOf("{\\"type\\":\\"block\\",\\"index\\":3,")) + 1000;
    s[at] ^= 0xff;
    process.stdout.on("error", () => {});
    process.stdout.write(s);'`;
  const r = await sh(`file-blocks ${images.every} | ${corrupt} | file-write ${out}`);
  assert.strictEqual(r.code, 5, describe(r));
  assert.match(r.stderr, /^file-write: stdin:\d+: block 3: SHA-256 of the data is \S+, the record says \S+\n$/, describe(r));
  assert.ok(!fs.existsSync(out));
  assert.deepStrictEqual(leftovers(), []);
});

test('a wrong sha256 or a short payload: exit 5 naming the block', async () => {
  const bad = dataBlock(1, 0x55);
  bad.sha256 = sha(Buffer.from('something else'));
  const wrongSha = writeStream(path.join(work, 'wrong-sha.stream'), [volume(2 * BLOCK), dataBlock(0, 1), bad]);
  const short = writeStream(path.join(work, 'short.stream'), [volume(2 * BLOCK), { type: 'block', index: 1, sha256: 'x', data: Buffer.alloc(1000, 1) }]);
  const zeroLie = writeStream(path.join(work, 'zero-lie.stream'), [volume(2 * BLOCK), { ...zeroBlock(1), sha256: bad.sha256 }]);
  const cases = [
    [wrongSha, /stdin:3: block 1: SHA-256/],
    [short, /stdin:2: block 1: 1000 bytes of data, expected 524288/],
    [zeroLie, /stdin:2: block 1: marked zero/],
  ];
  await Promise.all(
    cases.map(async ([stream, what]) => {
      const out = fresh();
      const r = await sh(`file-write ${out} < ${stream}`);
      assert.strictEqual(r.code, 5, describe(r));
      assert.match(r.stderr, what, describe(r));
      assert.ok(!fs.existsSync(out));
    }),
  );
});

test('a manifest (blocks without data) is refused: exit 4 naming the line and block', async () => {
  const out = fresh();
  const r = await sh(`file-blocks ${images.every} | strip | file-write ${out}`);
  assert.strictEqual(r.code, 4, describe(r));
  assert.match(r.stderr, /^file-write: stdin:2: block 0 has no data and is not marked "zero": true\n$/, describe(r));
  assert.ok(!fs.existsSync(out));
});

test('blocks out of order, past the size, or before the header: exit 4', async () => {
  const cases = [
    [[volume(4 * BLOCK), dataBlock(2, 1), dataBlock(1, 1)], /stdin:3: block 1 follows block 2/],
    [[volume(4 * BLOCK), dataBlock(2, 1), dataBlock(2, 1)], /stdin:3: block 2 follows block 2/],
    [[volume(2 * BLOCK), dataBlock(2, 1)], /stdin:2: block 2 lies past the volume's size/],
    [[dataBlock(0, 1)], /stdin:1: a block record before the "volume" header/],
    [[{ ...volume(BLOCK), blockSize: 4096 }], /stdin:1: blockSize 4096 is not 524288/],
    [[{ type: 'volume', format: 1, blockSize: BLOCK }, dataBlock(0, 1)], /the stream never gave the volume's size/],
    [[{ type: 'object', key: 'a', size: 3 }], /stdin:1: expected block records, got an object record/],
  ];
  await Promise.all(
    cases.map(async ([records, what]) => {
      const out = fresh();
      const r = await sh(`file-write ${out} < ${writeStream(fresh('stream'), records)}`);
      assert.strictEqual(r.code, 4, describe(r));
      assert.match(r.stderr, what, describe(r));
      assert.ok(!fs.existsSync(out));
    }),
  );
});

test('an existing file is refused without --force and replaced with it', async () => {
  const out = fresh();
  fs.writeFileSync(out, 'precious');
  const r = await sh(`file-blocks ${images.every2nd} | file-write ${out}`);
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /exists: give --force/, describe(r));
  assert.strictEqual(fs.readFileSync(out, 'utf8'), 'precious');
  await ok(`file-blocks ${images.every2nd} | file-write --force ${out} && cmp ${images.every2nd} ${out}`);
  assert.deepStrictEqual(leftovers(), []);
});

test('usage: --help on stdout with exit 0; unknown flags and bad combinations exit 2', async () => {
  const help = await sh('file-write --help');
  assert.strictEqual(help.code, 0, describe(help));
  assert.match(help.stdout.toString(), /^Usage: file-write \[options\] PATH\.\.\.\n[\s\S]*EXIT STATUS/);
  const misuses = ['--bogus x', '', '--truncate x', '--force --in-place x', '-j 0 x', 'x x', '-'];
  await Promise.all(
    misuses.map(async (args) => {
      const r = await sh(`file-write ${args} < /dev/null`, { cwd: work });
      assert.strictEqual(r.code, 2, describe(r));
      assert.match(r.stderr, /^file-write: .*\n\nUsage: file-write/, describe(r));
    }),
  );
  assert.deepStrictEqual(fs.readdirSync(work).filter((f) => f === 'x' || f.startsWith('.x.')), []);
});

test('--in-place needs an existing file', async () => {
  const r = await sh(`file-blocks ${images.every} | file-write --in-place ${path.join(work, 'missing.img')}`);
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /does not exist/, describe(r));
});

test('a block device, when loop devices are available', async (t) => {
  const backing = fresh('backing');
  const small = fresh('small-backing');
  fs.writeFileSync(backing, '');
  fs.truncateSync(backing, 44 * MiB);
  fs.writeFileSync(small, '');
  fs.truncateSync(small, 8 * MiB);
  const setup = await sh(`losetup -f --show ${backing} && losetup -f --show ${small}`);
  if (setup.code !== 0) return t.skip(`no loop device: ${setup.stderr.trim()}`);
  const [dev, smallDev] = setup.stdout.toString().trim().split('\n');
  try {
    // A used device: its old data must give way to the volume's zeros and holes, and survive
    // past the volume's end.
    await ok(`head -c ${44 * MiB} /dev/urandom > ${dev}`);
    const before = fs.readFileSync(dev).subarray(SIZE);
    await ok(`file-blocks ${images.every4th} | file-write --zero-absent ${dev} && cmp -n ${SIZE} ${images.every4th} ${dev}`);
    assert.ok(fs.readFileSync(dev).subarray(SIZE).equals(before), 'the device past the volume is untouched');
    const back = fresh();
    await ok(`file-blocks ${dev} | file-write ${back} && cmp -n ${SIZE} ${images.every4th} ${back}`);
    const r = await sh(`file-blocks ${images.every4th} | file-write ${smallDev}`);
    assert.strictEqual(r.code, 1, describe(r));
    assert.match(r.stderr, /does not fit/, describe(r));
  } finally {
    await sh(`losetup -d ${dev} ${smallDev}`);
  }
});
