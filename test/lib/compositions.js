'use strict';
// What the tests of the composed commands (bin/ebs-size, ebs-download, ...) share: their names,
// a scratch folder, the records they print, the byte-for-byte check of a restored volume, and an
// FSP pattern image streamed to stdout (run as `node compositions.js PATTERN SIZE`).
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { ok, describe, tmpdir } = require('./run');
const { PATTERNS, BLOCK, SECTOR, writePattern } = require('./pattern');

const GIB = 1 << 30;
const COMPOSITIONS = ['ebs-size', 'ebs-download', 'ebs-deltadownload', 'ebs-upload', 'ebs-copy', 'ebs-sync', 'ebs-multiclone', 'ebs-fanout', 'ebs-movetos3', 'ebs-getfroms3'];

/** A new temporary folder, and a function that names a new file in it (numbered: never twice). */
function scratch(prefix) {
  const dir = tmpdir(prefix);
  let n = 0;
  return { dir, file: (name) => path.join(dir, `${n++}-${name}`) };
}

/** The NDJSON records a run printed. */
const records = (r) => r.stdout.toString().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** The id of the snapshot an ebs-put journal (or ebs-fanout's output line) says was completed. */
function completedId(r) {
  const done = records(r).filter((x) => x.type === 'snapshot' && x.status === 'completed');
  assert.strictEqual(done.length, 1, `one completed snapshot record${describe(r)}`);
  return done[0].snapshotId;
}

/** Checks that `restored` holds `img` and then only zeros up to whole GiB. */
async function assertHolds(restored, img) {
  const size = fs.statSync(img).size;
  const total = fs.statSync(restored).size;
  assert.strictEqual(total, Math.ceil(size / GIB) * GIB, `${restored} is the volume's size`);
  await ok(`cmp -n ${size} ${img} ${restored} && cmp -n ${total - size} -i ${size}:0 ${restored} /dev/zero`);
}

/** Writes at `img` a patterned image with a hole (block 2), a zeroed block (4) and, unless told, a partial last block. */
function patternImage(img, pattern, size = 6 * BLOCK + 1000) {
  writePattern(img, size, pattern, { holes: [[2 * BLOCK, 3 * BLOCK]] });
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, Buffer.alloc(BLOCK), 0, BLOCK, 4 * BLOCK);
  fs.closeSync(fd);
  return img;
}

/**
 * A shell command that writes `size` bytes of an FSP pattern image to stdout, as writePattern
 * writes them into a file: `cmp FILE <(COMMAND)` checks a restored volume without a second file.
 */
function patternCommand(pattern, size) {
  if (!PATTERNS[pattern]) throw new Error(`unknown pattern ${pattern}`);
  return `node ${JSON.stringify(__filename)} ${pattern} ${size}`;
}

async function streamPattern(pattern, size) {
  const select = PATTERNS[pattern];
  for (let offset = 0; offset < size; offset += BLOCK) {
    const buf = Buffer.alloc(Math.min(BLOCK, size - offset));
    for (let o = 0; o < buf.length; o += SECTOR) {
      const sector = (offset + o) / SECTOR;
      if (select(sector)) buf.writeUInt32LE(sector >>> 0, o);
    }
    if (!process.stdout.write(buf)) await new Promise((resolve) => process.stdout.once('drain', resolve));
  }
}

if (require.main === module) {
  process.stdout.on('error', () => process.exit(0)); // cmp stops reading at the first difference
  streamPattern(process.argv[2], Number(process.argv[3]));
}

module.exports = { COMPOSITIONS, GIB, scratch, records, completedId, assertHolds, patternCommand, patternImage };
