'use strict';
// Writes a benchmark image: a third random bytes, a third text-like log lines, a third zeros
// (written as data, not left as holes). Usage: node mixed-image.js FILE BYTES
const fs = require('node:fs');
const crypto = require('node:crypto');

const [file, bytesArg] = process.argv.slice(2);
const size = Number(bytesArg);
if (!file || !Number.isSafeInteger(size) || size <= 0) {
  console.error('usage: node mixed-image.js FILE BYTES');
  process.exit(2);
}

const MIB = 1 << 20;
const third = Math.floor(size / 3 / MIB) * MIB;

// A seeded generator, so every run benchmarks the same text.
let state = 0x9e3779b9;
function next() {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return state >>> 0;
}

const WORDS = ('the of and to in is was for on that with as by at from his her an which or be are this it were had not ' +
  'but have one all their they been has when who will more no if out so said what up its about into than them can only ' +
  'other new some could time these two may then do first any my now such like our over man me even most made after also')
  .split(' ');
const LEVELS = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];

/** 64 MiB of log lines, repeated to fill the text third (zstd -1's window is far smaller). */
function textBlock() {
  const buf = Buffer.alloc(64 * MIB);
  let pos = 0;
  let line = 0;
  while (pos < buf.length) {
    const words = [];
    for (let n = 4 + (next() % 12); n > 0; n--) words.push(WORDS[next() % WORDS.length]);
    const text = `${line++} 2024-${String(1 + (next() % 12)).padStart(2, '0')}-${String(1 + (next() % 28)).padStart(2, '0')}T` +
      `${String(next() % 24).padStart(2, '0')}:${String(next() % 60).padStart(2, '0')}:${String(next() % 60).padStart(2, '0')}Z ` +
      `${LEVELS[next() % LEVELS.length]} ${words.join(' ')} value=${next() % 100000} took=${next() % 1000}ms\n`;
    pos += buf.write(text, pos, 'latin1');
  }
  return buf;
}

const fd = fs.openSync(file, 'w');
try {
  let offset = 0;
  const chunk = Buffer.alloc(8 * MIB);
  while (offset < third) {
    const n = Math.min(chunk.length, third - offset);
    crypto.randomFillSync(chunk, 0, n);
    offset += fs.writeSync(fd, chunk, 0, n, offset);
  }
  const text = textBlock();
  while (offset < 2 * third) {
    const n = Math.min(text.length, 2 * third - offset);
    offset += fs.writeSync(fd, text, 0, n, offset);
  }
  const zeros = Buffer.alloc(8 * MIB);
  while (offset < size) {
    const n = Math.min(zeros.length, size - offset);
    offset += fs.writeSync(fd, zeros, 0, n, offset);
  }
} finally {
  fs.closeSync(fd);
}
