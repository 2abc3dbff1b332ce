'use strict';
// Properties every command that reads a stream must have: bad input gets a one-line error with
// its position and a non-zero status; a truncated upstream is refused with status 3 by every
// committing sink, leaving nothing behind; `| head -1` ends every stage quietly with status 0.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe, tmpdir } = require('./lib/run');
const { COMMANDS } = require('../dist/commands.js');

const work = tmpdir();
const img = path.join(work, 'disk.img');
const journal = path.join(work, 'empty.journal');

// How to run each stream-reading command, reading stdin. OUT is replaced by a fresh path.
const READERS = {
  strip: 'strip',
  progress: 'progress -q',
  skip: `skip --done ${journal}`,
  shard: 'shard -n 2 -i 0',
  count: 'count',
  'zstd-chunk': 'zstd-chunk',
  'zstd-unchunk': 'zstd-unchunk',
  's3-get': `s3-get ${work}/nostore`,
  'file-write': 'file-write OUT',
  's3-put': 's3-put OUT',
};

test.before(async () => {
  await ok(`head -c 3000000 /dev/urandom > ${img} && truncate -s 4M ${img} && : > ${journal}`);
});

test('every registered command that reads a stream is covered here', () => {
  const readers = COMMANDS.filter((c) => c.kind !== 'sources').map((c) => c.name).sort();
  assert.deepStrictEqual(Object.keys(READERS).sort(), readers);
});

let n = 0;
function outPath() {
  return path.join(work, `out-${n++}`);
}

const GARBAGE = {
  'random bytes': `head -c 5000 /dev/urandom`,
  'a JSON array': `echo '[1,2,3]'`,
  'a record without type': `echo '{"index":1}'`,
  'a payload shorter than len': `printf '%s\\n%s' '{"type":"block","index":0,"len":100}' 'short'`,
  'an over-long line': `{ printf '{"type":"block","x":"'; head -c 2100000 /dev/zero | tr '\\0' a; printf '"}\\n'; }`,
};

for (const [name, cmd] of Object.entries(READERS)) {
  for (const [what, producer] of Object.entries(GARBAGE)) {
    test(`${name}: ${what} gets a one-line error with a position`, async () => {
      const out = outPath();
      const r = await sh(`${producer} | ${cmd.replace('OUT', out)}`);
      assert.notStrictEqual(r.code, 0, describe(r));
      const lines = r.stderr.trim().split('\n');
      assert.strictEqual(lines.length, 1, `expected one line of error${describe(r)}`);
      assert.match(lines[0], new RegExp(`^${name}: stdin:\\d+: `), describe(r));
      assert.ok(!fs.existsSync(out), `nothing committed at ${out}`);
    });
  }
  test(`${name}: a record of a type it cannot take, or one it passes on, is handled`, async () => {
    // An object record where blocks are expected (or vice versa) is not silently dropped.
    const out = outPath();
    const r = await sh(`file-blocks ${img} | ${cmd.replace('OUT', out)} > /dev/null`);
    // Commands that take blocks succeed; the rest must say what they expected, not crash.
    if (r.code !== 0) assert.match(r.stderr, new RegExp(`^${name}: `), describe(r));
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, `no stack trace${describe(r)}`);
  });
}

for (const name of ['file-write', 's3-put']) {
  test(`${name}: a truncated upstream is refused with status 3 and nothing committed`, async () => {
    const out = outPath();
    const chunk = name === 's3-put' ? ' | zstd-chunk' : '';
    const r = await sh(`file-blocks ${img}${chunk} | head -c 1500000 | ${READERS[name].replace('OUT', out)}`);
    assert.strictEqual(r.code, 3, describe(r));
    assert.match(r.stderr, /without its end trailer/, describe(r));
    if (name === 'file-write') {
      assert.ok(!fs.existsSync(out), 'no file renamed into place');
      const leftovers = fs.readdirSync(work).filter((f) => f.includes(path.basename(out)));
      assert.deepStrictEqual(leftovers, [], 'no temporary file left');
    }
  });
}

for (const [name, cmd] of Object.entries(READERS)) {
  if (['file-write', 's3-put', 'count'].includes(name)) continue;
  test(`${name}: | head -1 ends every stage quietly with status 0`, async () => {
    const upstream = name === 'zstd-unchunk' ? `file-blocks ${img} | zstd-chunk` : `file-blocks ${img}`;
    const r = await sh(`${upstream} | ${cmd} | head -1 > /dev/null`);
    assert.ok(r.statuses.every((s) => s === 0), describe(r));
    assert.strictEqual(r.stderr, '', describe(r));
  });
}
