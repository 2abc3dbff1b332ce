#!/usr/bin/env node
'use strict';
// Writes a patterned disk image for demos: the Flexible Snapshot Proxy test pattern (a 32-bit
// sector number at the start of every 2nd sector), a stretch of random data, a stretch of zeros
// written as data, a sparse hole, and a last partial block.
// Usage: make-image.js FILE [MiB]
const fs = require('node:fs');
const crypto = require('node:crypto');

const [file, mib = '64'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: make-image.js FILE [MiB]\n');
  process.exitCode = 2;
} else {
  const MiB = 1 << 20;
  const size = Number(mib) * MiB + 12345; // not a whole number of blocks
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, size);
  const quarter = Math.floor(size / 4 / MiB) * MiB;
  const buf = Buffer.alloc(MiB);
  for (let off = 0; off < quarter; off += MiB) {
    buf.fill(0);
    for (let o = 0; o < MiB; o += 1024) buf.writeUInt32LE(((off + o) / 512) >>> 0, o);
    fs.writeSync(fd, buf, 0, MiB, off);
  }
  for (let off = quarter; off < 2 * quarter; off += MiB) fs.writeSync(fd, crypto.randomBytes(MiB), 0, MiB, off);
  buf.fill(0);
  for (let off = 2 * quarter; off < 3 * quarter; off += MiB) fs.writeSync(fd, buf, 0, MiB, off);
  // 3 * quarter .. size - 1 MiB stays a hole; the tail is patterned again.
  const tail = size - MiB;
  buf.fill(0x5a);
  fs.writeSync(fd, buf, 0, size - tail, tail);
  fs.closeSync(fd);
}
