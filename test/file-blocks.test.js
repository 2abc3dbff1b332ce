'use strict';
// file-blocks: the header, block records and payloads it lists for files, stdin, FIFOs and
// devices, and the holes of sparse files left out (found with the native addon, or read).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { sh, ok, describe, tmpdir, ROOT } = require('./lib/run');
const { Decoder } = require('../dist/core/decode.js');
const { initDigest } = require('../dist/core/digest.js');
const { holesSupported } = require('../dist/core/holes.js');
const { PAYLOAD, ZERO_BLOCK_SHA256 } = require('../dist/core/records.js');

const BLOCK = 524288;
const MiB = 1 << 20;
const GiB = 1 << 30;
const work = tmpdir();

test.before(() => initDigest());
test.after(() => fs.rmSync(work, { recursive: true, force: true }));

// A record's JSON fields only (the line number and payload ride along under symbols).
const plain = (rec) => JSON.parse(JSON.stringify(rec));
const sha = (data) => crypto.createHash('sha256').update(data).digest('base64');

/** Runs a pipeline ending in file-blocks and decodes its output, checking the trailer. */
async function records(script) {
  const r = await ok(script);
  const decoder = new Decoder({ command: 'test', source: 'stdout' });
  const recs = [];
  decoder.push(r.stdout, recs);
  decoder.finish();
  return recs;
}

// Block 0 random, block 1 zeros written as data, block 2 random, then 100 bytes.
const blocks = [crypto.randomBytes(BLOCK), Buffer.alloc(BLOCK), crypto.randomBytes(BLOCK), Buffer.alloc(100, 7)];
const image = path.join(work, 'small.img');
const SIZE = 3 * BLOCK + 100;
fs.writeFileSync(image, Buffer.concat(blocks));

function checkBlocks(recs) {
  const listed = recs.filter((r) => r.type === 'block');
  assert.deepStrictEqual(listed.map((r) => r.index), [0, 1, 2, 3]);
  assert.strictEqual(listed[0].sha256, sha(blocks[0]));
  assert.ok(listed[0][PAYLOAD].equals(blocks[0]));
  assert.deepStrictEqual(plain(listed[1]), { type: 'block', index: 1, sha256: ZERO_BLOCK_SHA256, zero: true });
  assert.strictEqual(listed[1][PAYLOAD], undefined);
  // The last partial block is padded with zeros, and its checksum is of the padded block.
  const last = Buffer.concat([blocks[3], Buffer.alloc(BLOCK - 100)]);
  assert.strictEqual(listed[3].sha256, sha(last));
  assert.ok(listed[3][PAYLOAD].equals(last));
}

test('a file: the header gives its size; blocks carry data, zero blocks none', async () => {
  const recs = await records(`file-blocks ${image}`);
  assert.deepStrictEqual(plain(recs[0]), { type: 'volume', format: 1, source: image, blockSize: BLOCK, size: SIZE, blocks: 4 });
  checkBlocks(recs);
  assert.strictEqual(recs.length, 5);
});

test('--source names the volume', async () => {
  const recs = await records(`file-blocks --source vol-1 ${image}`);
  assert.strictEqual(recs[0].source, 'vol-1');
});

test('stdin: the size comes in a second volume record after the last block', async () => {
  const recs = await records(`cat ${image} | file-blocks -`);
  assert.deepStrictEqual(plain(recs[0]), { type: 'volume', format: 1, source: 'stdin', blockSize: BLOCK });
  checkBlocks(recs);
  assert.deepStrictEqual(plain(recs.at(-1)), { type: 'volume', format: 1, source: 'stdin', blockSize: BLOCK, size: SIZE, blocks: 4 });
});

test('a FIFO is read as a stream', async () => {
  const fifo = path.join(work, 'fifo');
  const recs = await records(`mkfifo ${fifo} && { cat ${image} > ${fifo} & } && file-blocks ${fifo}`);
  checkBlocks(recs);
  assert.strictEqual(recs.at(-1).size, SIZE);
});

test('a FIFO that no writer ever opens: the first SIGTERM or SIGINT ends file-blocks (143, 130), nothing written', async () => {
  const { spawn } = require('node:child_process');
  for (const [signal, status] of [['SIGTERM', 143], ['SIGINT', 130]]) {
    const fifo = path.join(work, `unwritten-${signal}`);
    fs.rmSync(fifo, { force: true });
    await ok(`mkfifo ${fifo}`);
    const child = spawn(path.join(ROOT, 'bin', 'file-blocks'), [fifo], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig)));
    // Signalled once it waits for a writer, with the FIFO open or blocked in opening it.
    while (!waitsOn(child.pid, fifo)) await new Promise((r) => setTimeout(r, 20));
    child.kill(signal);
    // Only a hang detector: a process stuck in open() ignores the signal and is killed here.
    const hung = setTimeout(() => child.kill('SIGKILL'), 15000);
    const code = await exited;
    clearTimeout(hung);
    assert.strictEqual(code, status, `${signal}: ${stderr}`);
    assert.strictEqual(stdout, '', signal);
    assert.match(stderr, signal === 'SIGINT' ? /^file-blocks: interrupted\n$/ : /^file-blocks: terminated\n$/);
  }
});

/** Whether process `pid` has `fifo` open, or has a thread asleep opening a FIFO. */
function waitsOn(pid, fifo) {
  const fds = fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '';
    }
  });
  const tasks = fs.readdirSync(`/proc/${pid}/task`).map((t) => fs.readFileSync(`/proc/${pid}/task/${t}/wchan`, 'utf8'));
  return fds.includes(fifo) || tasks.includes('wait_for_partner');
}

test('an empty file and an empty stdin are volumes of size 0 with no blocks', async () => {
  const empty = path.join(work, 'empty.img');
  fs.writeFileSync(empty, '');
  const fromFile = await records(`file-blocks ${empty}`);
  assert.deepStrictEqual(fromFile.map((r) => [r.type, r.size]), [['volume', 0]]);
  const fromStdin = await records(`file-blocks - < /dev/null`);
  assert.deepStrictEqual(fromStdin.map((r) => [r.type, r.size]), [['volume', undefined], ['volume', 0]]);
});

test('errors: a missing file, a directory, bad arguments', async () => {
  const missing = await sh(`file-blocks ${path.join(work, 'missing')}`);
  assert.strictEqual(missing.code, 1, describe(missing));
  assert.match(missing.stderr, /^file-blocks: cannot open \S+: ENOENT/, describe(missing));
  const dir = await sh(`file-blocks ${work}`);
  assert.strictEqual(dir.code, 1, describe(dir));
  assert.match(dir.stderr, /^file-blocks: \S+ is a directory\n$/, describe(dir));
  for (const args of ['', `${image} ${image}`, `--bogus ${image}`]) {
    const r = await sh(`file-blocks ${args}`);
    assert.strictEqual(r.code, 2, describe(r));
  }
  const help = await sh('file-blocks --help');
  assert.strictEqual(help.code, 0, describe(help));
  assert.match(help.stdout.toString(), /^Usage: file-blocks/);
});

// A 16 GiB sparse file with a few MiB of data: where, in bytes, and which blocks that makes.
const SPARSE_SIZE = 16 * GiB + 12345;
const WRITES = [
  [0, 3 * MiB], // blocks 0-5
  [1000 * MiB + 100, 10], // block 2000 ...
  [1000 * MiB + 300000, 10], // ... again: two extents in one block, listed once
  [8 * GiB - 5000, 10000], // straddles blocks 16383 and 16384
  [16 * GiB + 12000, 345], // the last, partial block 32768
];
const SPARSE_BLOCKS = [0, 1, 2, 3, 4, 5, 2000, 16383, 16384, 32768];

function writeSparse(file) {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, SPARSE_SIZE);
  for (const [offset, length] of WRITES) fs.writeSync(fd, crypto.randomBytes(length), 0, length, offset);
  fs.closeSync(fd);
}

test('a 16 GiB sparse file: only the data blocks are listed, and it round-trips', async (t) => {
  if (!holesSupported()) return t.skip('the sparse-hole addon is not built (build/Release/sluice_holes.node)');
  const sparse = path.join(work, 'sparse.img');
  writeSparse(sparse);
  const recs = await records(`file-blocks ${sparse}`);
  assert.strictEqual(recs[0].size, SPARSE_SIZE);
  assert.deepStrictEqual(recs.filter((r) => r.type === 'block').map((r) => r.index), SPARSE_BLOCKS);
  // Reading it back from the copy lists the same blocks with the same checksums.
  const copy = path.join(work, 'sparse.copy');
  const r = await ok(`file-blocks ${sparse} | file-write ${copy} && file-blocks --source x ${sparse} | strip > ${work}/a && file-blocks --source x ${copy} | strip > ${work}/b && cmp ${work}/a ${work}/b`);
  assert.strictEqual(fs.statSync(copy).size, SPARSE_SIZE, describe(r));
  assert.ok(fs.statSync(copy).blocks * 512 < 16 * MiB, 'the copy is sparse too');
});

test('a file with no data at all lists no blocks', async (t) => {
  if (!holesSupported()) return t.skip('the sparse-hole addon is not built (build/Release/sluice_holes.node)');
  const hollow = path.join(work, 'hollow.img');
  fs.writeFileSync(hollow, '');
  fs.truncateSync(hollow, GiB);
  const recs = await records(`file-blocks ${hollow}`);
  assert.deepStrictEqual(recs.map((r) => r.type), ['volume']);
  assert.strictEqual(recs[0].size, GiB);
});

test('without the addon, holes are read and listed as zero blocks', async () => {
  // A copy of the built commands with no build/ beside it, so the addon cannot load.
  const bare = path.join(work, 'bare');
  fs.mkdirSync(path.join(bare, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'dist'), path.join(bare, 'dist'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(bare, 'node_modules'));
  fs.copyFileSync(path.join(ROOT, 'bin/file-blocks'), path.join(bare, 'bin/file-blocks'));
  const img = path.join(work, 'holes.img');
  const fd = fs.openSync(img, 'w');
  fs.ftruncateSync(fd, 8 * MiB);
  fs.writeSync(fd, Buffer.alloc(10, 1), 0, 10, 5 * MiB);
  fs.closeSync(fd);
  const recs = await records(`node ${bare}/bin/file-blocks ${img}`);
  const listed = recs.filter((r) => r.type === 'block');
  assert.deepStrictEqual(listed.map((r) => r.index), [...Array(16).keys()]);
  assert.deepStrictEqual(listed.filter((r) => !r.zero).map((r) => r.index), [10]);
});

test('a block device, when loop devices are available', async (t) => {
  const backing = path.join(work, 'backing.img');
  fs.writeFileSync(backing, Buffer.concat([blocks[0], blocks[1], blocks[2]]));
  const setup = await sh(`losetup -f --show ${backing}`);
  if (setup.code !== 0) return t.skip(`no loop device: ${setup.stderr.trim()}`);
  const dev = setup.stdout.toString().trim();
  try {
    const recs = await records(`file-blocks ${dev}`);
    assert.deepStrictEqual(plain(recs[0]), { type: 'volume', format: 1, source: dev, blockSize: BLOCK, size: 3 * BLOCK, blocks: 3 });
    const listed = recs.filter((r) => r.type === 'block');
    assert.deepStrictEqual(listed.map((r) => [r.index, r.sha256]), blocks.slice(0, 3).map((b, i) => [i, sha(b)]));
  } finally {
    await sh(`losetup -d ${dev}`);
  }
});
