'use strict';
// Properties every command that reads a stream must have: bad input gets a one-line error with
// its position and a non-zero status; a truncated upstream is refused with status 3, with no
// trailer written on and nothing committed; `| head -1` ends every stage quietly with status 0.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { sh: shLocal, ok: okLocal, describe, tmpdir } = require('./lib/run');
const { startEmulator, synthetic, emulatorEnv } = require('./lib/emulator');
const { COMMANDS } = require('../dist/commands.js');

const work = tmpdir();
const img = path.join(work, 'disk.img');
const journal = path.join(work, 'empty.journal');
const store = path.join(work, 'store');

// The EBS commands talk to an ebs-emulator; every script runs with its endpoint.
let emu;
let env;
const sh = (script) => shLocal(script, { env });
const ok = (script) => okLocal(script, { env });
const snapshots = {}; // a parent and a child of it, both synthetic

// How to run each stream-reading command, reading stdin. OUT is replaced by a fresh path;
// PARENT by the parent snapshot's id.
const READERS = {
  delta: 'delta --parent PARENT',
  'ebs-get': 'ebs-get',
  'ebs-put': 'ebs-put --no-wait',
  strip: 'strip',
  progress: 'progress -q',
  skip: `skip --done ${journal}`,
  shard: 'shard -n 2 -i 0',
  pick: 'pick --type block',
  count: 'count',
  'zstd-chunk': 'zstd-chunk',
  'zstd-unchunk': 'zstd-unchunk',
  's3-get': `s3-get ${store}`,
  'file-write': 'file-write OUT',
  's3-put': 's3-put OUT',
  's3-copy': 's3-copy --to OUT',
  'stream-join': 'stream-join OUT',
  's3-delete': 's3-delete OUT',
  's3-restore': 's3-restore',
};

// What each command reads when it is given a valid stream; a block stream unless said here.
const chunks = `file-blocks ${img} | zstd-chunk`;
const UPSTREAM = {
  'zstd-unchunk': () => chunks,
  's3-put': () => chunks,
  's3-get': () => `s3-list ${store}`,
  'stream-join': () => `stream-chunk --size 1M ${img}`,
  's3-delete': () => `s3-list ${store}`,
  's3-copy': () => `s3-list ${store}`,
  's3-restore': () => `s3-list ${store}`,
  delta: () => `ebs-blocks ${snapshots.child}`,
  'ebs-get': () => `ebs-blocks ${snapshots.child}`,
};
const upstream = (name) => (UPSTREAM[name] ?? (() => `file-blocks ${img}`))();
const commandLine = (name, out) => READERS[name].replace('OUT', out).replace('PARENT', snapshots.parent);

/** Stream readers are every command but the sources, and the servers and compositions, which take arguments, not a stream. */
const streamReaders = (commands) => commands.filter((c) => !['sources', 'servers', 'compositions'].includes(c.kind)).map((c) => c.name);

test.before(async () => {
  emu = await startEmulator(['--completion-ms', '50', '--no-quotas']);
  env = emulatorEnv(emu);
  // 1 GiB each, about 100 of the 2048 blocks written, so a listing is quick to read.
  const shape = { VolumeSize: 1, Pattern: 'random', SparseFraction: 0.95, ZeroFraction: 0.1 };
  snapshots.parent = await synthetic(emu, { ...shape, Seed: 1 });
  snapshots.child = await synthetic(emu, { ...shape, Seed: 2, ParentSnapshotId: snapshots.parent });
  await ok(`head -c 3000000 /dev/urandom > ${img} && truncate -s 4M ${img} && : > ${journal} && ${chunks} | s3-put ${store} > /dev/null`);
});

test('every registered command that reads a stream is covered here', () => {
  assert.deepStrictEqual(Object.keys(READERS).sort(), streamReaders(COMMANDS).sort());
  const kinds = [{ name: 'a-server', kind: 'servers' }, { name: 'a-composition', kind: 'compositions' }, { name: 'a-sink', kind: 'sinks' }];
  assert.deepStrictEqual(streamReaders(kinds), ['a-sink']);
});

test.after(() => emu?.stop());

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

for (const name of Object.keys(READERS)) {
  for (const [what, producer] of Object.entries(GARBAGE)) {
    test(`${name}: ${what} gets a one-line error with a position`, async () => {
      const out = outPath();
      const r = await sh(`${producer} | ${commandLine(name, out)}`);
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
    const r = await sh(`file-blocks ${img} | ${commandLine(name, out)} > /dev/null`);
    // Commands that take blocks succeed; the rest must say what they expected, not crash.
    if (r.code !== 0) assert.match(r.stderr, new RegExp(`^${name}: `), describe(r));
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, `no stack trace${describe(r)}`);
  });
}

for (const name of Object.keys(READERS)) {
  test(`${name}: a truncated upstream is refused with status 3; no trailer written, nothing committed`, async () => {
    const out = outPath();
    const whole = await ok(`${upstream(name)} | wc -c`);
    const cut = Math.floor(Number(whole.stdout.toString()) / 2);
    const output = path.join(work, `stdout-${n}`);
    const r = await sh(`${upstream(name)} | head -c ${cut} | ${commandLine(name, out)} > ${output}`);
    assert.strictEqual(r.code, 3, describe(r));
    assert.match(r.stderr, new RegExp(`^${name}: stdin:\\d+: input ended without its end trailer.*\\n$`), `one line naming the position${describe(r)}`);
    assert.ok(!fs.readFileSync(output).includes('{"type":"end"'), `no trailer passed on${describe(r)}`);
    if (name === 'count') assert.strictEqual(fs.statSync(output).size, 0, 'no count printed');
    if (name === 'ebs-put') assert.doesNotMatch(fs.readFileSync(output, 'utf8'), /"status":"completed"/, 'no snapshot completed');
    // s3-put and s3-copy may have stored whole chunks; the commit object is what must not be there.
    const committed = name === 's3-put' || name === 's3-copy' ? path.join(out, 'volume.json') : out;
    assert.ok(!fs.existsSync(committed), `nothing committed at ${committed}`);
    const leftovers = fs.readdirSync(work).filter((f) => f !== path.basename(out) && f.includes(path.basename(out)));
    assert.deepStrictEqual(leftovers, [], 'no temporary file left');
  });

  test(`${name}: | head -1 ends every stage quietly with status 0`, async () => {
    const r = await sh(`${upstream(name)} | ${commandLine(name, outPath())} | head -1 > /dev/null`);
    assert.ok(r.statuses.every((s) => s === 0), describe(r));
    assert.strictEqual(r.stderr, '', describe(r));
  });
}
