'use strict';
// The Flexible Snapshot Proxy test patterns: a 32-bit little-endian sector number written at
// the start of selected 512-byte sectors; everything else zero.
const fs = require('node:fs');

const SECTOR = 512;
const BLOCK = 524288;

const PATTERNS = {
  every: (s) => true,
  every2nd: (s) => s % 2 === 0,
  every4th: (s) => s % 4 === 0,
  every3rd4th: (s) => s % 3 === 0 || s % 4 === 0,
};

/**
 * Writes a patterned image of `size` bytes. `holes` is a list of [startByte, endByte) ranges left
 * as sparse holes (not written at all), to exercise sparse reading.
 */
function writePattern(file, size, pattern, { holes = [] } = {}) {
  const select = PATTERNS[pattern];
  if (!select) throw new Error(`unknown pattern ${pattern}`);
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    const buf = Buffer.alloc(BLOCK);
    for (let offset = 0; offset < size; offset += BLOCK) {
      const len = Math.min(BLOCK, size - offset);
      if (holes.some(([a, b]) => offset >= a && offset + len <= b)) continue;
      buf.fill(0);
      for (let o = 0; o < len; o += SECTOR) {
        const sector = (offset + o) / SECTOR;
        if (select(sector)) buf.writeUInt32LE(sector >>> 0, o);
      }
      fs.writeSync(fd, buf, 0, len, offset);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Checks a file against a pattern; returns null when it matches, or the first bad sector. */
function checkPattern(file, size, pattern, { holes = [] } = {}) {
  const select = PATTERNS[pattern];
  const data = fs.readFileSync(file);
  if (data.length !== size) return `size ${data.length}, expected ${size}`;
  for (let o = 0; o < size; o += SECTOR) {
    const inHole = holes.some(([a, b]) => o >= a && o < b);
    const want = !inHole && select(o / SECTOR) ? (o / SECTOR) >>> 0 : 0;
    if (data.readUInt32LE(o) !== want) return `sector ${o / SECTOR}: ${data.readUInt32LE(o)}, expected ${want}`;
  }
  return null;
}

module.exports = { writePattern, checkPattern, PATTERNS, BLOCK, SECTOR };
