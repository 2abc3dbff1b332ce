'use strict';
// A stage reads a pipe, a socket or a file in place (src/core/input-reader.ts): the bulk of each
// payload straight into its buffer, the rest through one scratch buffer. Here real commands read
// pipes fed in uneven pieces with pauses, a file given by path and on stdin, and stop on a
// signal while no input comes.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { BIN, tmpdir, sh, describe } = require('./lib/run');
const { frames } = require('./lib/frames');
const { initDigest } = require('../dist/core/digest.js');

const work = tmpdir('sluice-input-');
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');

test.before(() => initDigest());

// Objects from empty to 9 MiB: shorter than a read, spanning reads, and some the size of a
// pooled buffer (s3-put reads those into shared buffers it uses again).
function objects() {
  const sizes = [0, 1, 100, 16383, 16384, 16385, 70000, 3 << 20, 8 << 20, (9 << 20) + 7, 5];
  return sizes.map((size, i) => ({ type: 'object', key: `k/${i}`, size, data: crypto.randomBytes(size) }));
}

function input(objs) {
  return frames(objs.map(({ data, ...rec }) => ({ ...rec, sha256: sha256(data), data })));
}

/** Runs a command with its stdin a pipe that we write in pieces of 1 to `max` bytes, pausing now and then. */
function runFed(args, bytes, { max = 200000, seed = 1 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(BIN, args[0]), args.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    let err = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.on('error', () => {});
    let x = seed;
    const next = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
    let pos = 0;
    const write = () => {
      while (pos < bytes.length) {
        const n = 1 + Math.floor(next() * max);
        const more = child.stdin.write(bytes.subarray(pos, pos + n));
        pos += n;
        if (!more) return child.stdin.once('drain', write);
        if (next() < 0.05) return setTimeout(write, 5);
      }
      child.stdin.end();
    };
    write();
  });
}

test('s3-put stores every object whole from a pipe fed in uneven pieces with pauses', async () => {
  const objs = objects();
  const bytes = input(objs);
  for (const [seed, max] of [[1, 7], [2, 3000], [3, 200000], [4, 1 << 20]]) {
    const store = path.join(work, `store-${seed}`);
    // Tiny pieces through the whole stream take long: those only up to the first large object.
    const fed = max < 100 ? input(objs.slice(0, 6)) : bytes;
    const r = await runFed(['s3-put', '--no-fsync', store], fed, { max, seed });
    assert.strictEqual(r.code, 0, r.stderr);
    for (const o of max < 100 ? objs.slice(0, 6) : objs) assert.ok(fs.readFileSync(path.join(store, o.key)).equals(o.data), `${o.key}, pieces up to ${max} bytes`);
  }
});

test('a stage reads its input by path and as a file on stdin the same as from a pipe', async () => {
  const objs = objects();
  const file = path.join(work, 'frames.bin');
  fs.writeFileSync(file, input(objs));
  const counts = [];
  for (const script of [`count ${file}`, `count < ${file}`, `cat ${file} | count`]) {
    const r = await sh(script);
    assert.strictEqual(r.code, 0, describe(r));
    counts.push(JSON.parse(r.stdout.toString()));
  }
  assert.deepStrictEqual(counts[1], counts[0]);
  assert.deepStrictEqual(counts[2], counts[0]);
  assert.strictEqual(counts[0].objects, objs.length);
  assert.strictEqual(counts[0].payloadBytes, objs.reduce((n, o) => n + o.data.length, 0));
  // A file cut in the middle of a payload: status 3, as from a pipe.
  fs.writeFileSync(file, input(objs).subarray(0, 5 << 20));
  for (const script of [`count ${file}`, `count < ${file}`, `cat ${file} | count`]) {
    const r = await sh(script);
    assert.strictEqual(r.code, 3, describe(r));
    assert.match(r.stderr, /input ended without its end trailer \(payload ended after \d+ of 8388608 bytes\)/);
  }
});

test('a stage waiting on a pipe that brings nothing stops on SIGTERM (status 143)', async () => {
  const child = spawn(path.join(BIN, 's3-put'), [path.join(work, 'idle')], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  // The first record's line, and then nothing.
  child.stdin.write('{"type":"object","key":"a","len":10}\n');
  await new Promise((r) => setTimeout(r, 500));
  const code = await new Promise((resolve) => {
    child.on('close', (c) => resolve(c));
    child.kill('SIGTERM');
  });
  assert.strictEqual(code, 143, err);
  assert.match(err, /s3-put: terminated/);
});
