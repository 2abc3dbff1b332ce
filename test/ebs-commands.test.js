'use strict';
// ebs-blocks, delta, ebs-get and ebs-put against the real ebs-emulator, in bash pipes of the real
// executables: round trips byte for byte, deltas and parents with zeroed blocks, a truncated
// input left pending and resumed, faults, a permanent error, and a dry run.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe, tmpdir } = require('./lib/run');
const { startEmulator, synthetic, siblingSnapshots, emulatorEnv, control, describeSnapshot, listAll } = require('./lib/emulator');
const { writePattern } = require('./lib/pattern');

const BLOCK = 524288;
const GIB = 1 << 30;
const work = tmpdir('sluice-ebs-');
let n = 0;
const file = (name) => path.join(work, `${n++}-${name}`);

let emu;
let env;
test.before(async () => {
  // Quotas are rehearsed by the fault test on its own server; here they would only slow tests.
  emu = await startEmulator(['--completion-ms', '50', '--no-quotas']);
  env = emulatorEnv(emu);
});
test.after(() => emu.stop());

const run = (script) => sh(script, { env });
const must = (script) => ok(script, { env });

/** The records of a stream printed on stdout. */
const records = (r) => r.stdout.toString().trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** Puts a file into a new snapshot; resolves with its id and the journal's records. */
async function put(img, flags = '') {
  const r = await must(`file-blocks ${img} | ebs-put ${flags}`);
  const recs = records(r);
  const last = recs[recs.length - 2];
  assert.strictEqual(last.type, 'snapshot', describe(r));
  assert.strictEqual(last.status, 'completed', describe(r));
  return { id: last.snapshotId, recs };
}

/** Reads a snapshot back into a new file; resolves with its path. */
async function restore(id, flags = '') {
  const out = file(`${id}.img`);
  await must(`ebs-blocks ${id} | ebs-get ${flags} | file-write ${out}`);
  return out;
}

/** Checks that `restored` (whole GiB) holds `img` followed by zeros (cmp: a JS loop over a GiB is slow). */
async function assertHolds(restored, img) {
  const size = fs.statSync(img).size;
  const total = fs.statSync(restored).size;
  assert.strictEqual(total % GIB, 0, 'a restored snapshot is whole GiB');
  await must(`cmp -n ${size} ${img} ${restored}`);
  await must(`cmp -n ${total - size} -i ${size}:0 ${restored} /dev/zero`);
}

/** Checks two files are identical. */
const assertSame = (a, b) => must(`cmp ${a} ${b}`);

function patterned(pattern, size = 24 << 20, opts) {
  const img = file(`${pattern}.img`);
  writePattern(img, size, pattern, opts);
  return img;
}

for (const pattern of ['every', 'every2nd', 'every4th', 'every3rd4th']) {
  test(`round trip of the ${pattern} pattern: file-blocks | ebs-put, ebs-blocks | ebs-get | file-write`, async () => {
    const img = patterned(pattern, 20 << 20, { holes: [[4 * BLOCK, 6 * BLOCK]] });
    const { id, recs } = await put(img);
    assert.strictEqual(recs[0].type, 'snapshot');
    assert.strictEqual(recs[0].status, 'pending');
    // Holes are neither listed nor put.
    assert.strictEqual(recs.filter((r) => r.type === 'block').length, 38);
    await assertHolds(await restore(id), img);
    const snap = await describeSnapshot(emu.ec2(), id);
    assert.strictEqual(snap.State, 'completed');
  });
}

test('ebs-blocks writes a header with the snapshot, size and encryption, and tokens in ascending order', async () => {
  const id = await synthetic(emu, { VolumeSize: 2, Pattern: 'every2nd', Seed: 3, SparseFraction: 0.5 });
  const r = await must(`ebs-blocks ${id}`);
  const recs = records(r);
  assert.deepStrictEqual(recs[0], { type: 'volume', format: 1, source: id, snapshotId: id, size: 2 * GIB, blocks: 4096, blockSize: BLOCK, encrypted: false });
  const blocks = recs.filter((x) => x.type === 'block');
  const listed = await listAll(emu.ebs(), id);
  assert.deepStrictEqual(blocks.map((b) => b.index), listed.map((b) => b.BlockIndex));
  assert.ok(blocks.every((b) => typeof b.token === 'string'));
  assert.strictEqual(recs[recs.length - 1].type, 'end');
});

test('a synthetic snapshot read by ebs-get equals what the emulator serves, zero blocks marked', async () => {
  const id = await synthetic(emu, { VolumeSize: 1, Pattern: 'every3rd4th', Seed: 5, SparseFraction: 0.9, ZeroFraction: 0.3 });
  const r = await must(`ebs-blocks ${id} | ebs-get | strip`);
  const blocks = records(r).filter((x) => x.type === 'block');
  assert.ok(blocks.some((b) => b.zero === true), 'written zero blocks come out as zero');
  assert.ok(blocks.every((b) => typeof b.sha256 === 'string'));
  // The data matches the pattern wherever the block was written and is not a zero block.
  const out = await restore(id);
  const fd = fs.openSync(out, 'r');
  const word = Buffer.alloc(4);
  for (const b of blocks.filter((x) => !x.zero).slice(0, 50)) {
    const sector = (b.index * BLOCK) / 512;
    fs.readSync(fd, word, 0, 4, b.index * BLOCK);
    assert.strictEqual(word.readUInt32LE(0), sector % 3 === 0 || sector % 4 === 0 ? sector : 0);
  }
  fs.closeSync(fd);
});

const siblings = () => siblingSnapshots(emu, { seed: 11, rootSparseFraction: 0.9, sparseFraction: 0.95 });

test('delta of B from A applied in place to a copy of A yields B exactly, blocks B lacks zeroed', async () => {
  const { a, b } = await siblings();
  const copyOfA = await restore(a);
  const wantB = await restore(b);
  const counted = records(await must(`ebs-blocks ${b} | delta --parent ${a} | count`))[0];
  const full = records(await must(`ebs-blocks ${b} | count`))[0];
  assert.ok(counted.blocks < full.blocks, `the delta (${counted.blocks} blocks) is smaller than B (${full.blocks})`);
  assert.ok(counted.zeroBlocks > 0, 'blocks A has and B lacks come out as zero blocks');
  const header = records(await must(`ebs-blocks ${b} | delta --parent ${a} | head -1`))[0];
  assert.strictEqual(header.parent, a);
  assert.strictEqual(header.snapshotId, b);
  await must(`ebs-blocks ${b} | delta --parent ${a} | ebs-get | file-write --in-place ${copyOfA}`);
  await assertSame(copyOfA, wantB);
});

test('ebs-put --parent from a delta stream writes the zeroed blocks as zeros', async () => {
  const { a, b } = await siblings();
  const wantB = await restore(b);
  const r = await must(`ebs-blocks ${b} | delta --parent ${a} | ebs-get | ebs-put --parent ${a}`);
  const recs = records(r);
  assert.ok(recs.some((x) => x.type === 'block' && x.zero === true), `zero blocks were put${describe(r)}`);
  const child = recs[recs.length - 2].snapshotId;
  await assertSame(await restore(child), wantB);
});

test('ebs-put --parent from a whole image zeroes what the image zeroed or left as a hole', async () => {
  const parentImg = patterned('every', 16 << 20);
  const { id: parent } = await put(parentImg);
  const childImg = file('child.img');
  const data = fs.readFileSync(parentImg);
  data.fill(0, 3 * BLOCK, 5 * BLOCK); // zeroed blocks
  data.write('changed', 9 * BLOCK);
  fs.writeFileSync(childImg, data);
  // A hole where the parent had data: file-blocks does not list it at all.
  await must(`fallocate -p -o ${12 * BLOCK} -l ${2 * BLOCK} ${childImg}`);
  const { id: child, recs } = await put(childImg, `--parent ${parent}`);
  const zeroPuts = recs.filter((x) => x.type === 'block' && x.zero).map((x) => x.index);
  assert.deepStrictEqual(zeroPuts, [3, 4, 12, 13]);
  await assertHolds(await restore(child), childImg);
});

test('a truncated input leaves the snapshot pending with status 3; skip + --resume completes it', async () => {
  const img = patterned('every2nd', 24 << 20);
  const journal = file('run1.journal');
  const r = await run(`file-blocks ${img} | head -c 9000000 | ebs-put > ${journal}`);
  assert.strictEqual(r.code, 3, describe(r));
  assert.match(r.stderr, /^ebs-put: stdin:\d+: input ended without its end trailer.*left pending: resume with .*--resume snap-/, describe(r));
  assert.strictEqual(r.stderr.trim().split('\n').length, 1, 'one line');
  const lines = fs.readFileSync(journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const id = lines[0].snapshotId;
  assert.ok(!lines.some((l) => l.type === 'end'), 'no trailer');
  assert.strictEqual((await describeSnapshot(emu.ec2(), id)).State, 'pending');
  const done = lines.filter((l) => l.type === 'block').length;
  assert.ok(done > 0 && done < 48, `${done} blocks journaled`);
  const r2 = await must(`file-blocks ${img} | skip --done ${journal} | ebs-put --resume ${id} --done ${journal}`);
  const recs = records(r2);
  const final = recs[recs.length - 2];
  assert.deepStrictEqual([final.snapshotId, final.status, final.blocks, final.blocksPut], [id, 'completed', 48, 48 - done]);
  await assertHolds(await restore(id), img);
});

test('faults (internal errors, resets, read-block, throttling, expired tokens) still give identical bytes', async () => {
  const img = patterned('every3rd4th', 24 << 20);
  const noisy = await startEmulator(['--fault', 'internal=0.05', '--fault', 'reset=0.02', '--fault', 'read-block=0.05', '--fault', 'not-found-after-start=1', '--not-found-ms', '300', '--quota', 'get-snapshot=60', '--quota', 'put-snapshot=60', '--completion-ms', '50', '--seed', '7']);
  const local = emulatorEnv(noisy);
  try {
    const r = await ok(`file-blocks ${img} | ebs-put -j 16`, { env: local });
    const recs = records(r);
    const id = recs[recs.length - 2].snapshotId;
    assert.match(r.stderr, /retried/, `retries were made and counted${describe(r)}`);
    // Expire every token between the listing and the reads: ebs-get lists again.
    const manifest = file('manifest');
    await ok(`ebs-blocks ${id} > ${manifest}`, { env: local });
    assert.strictEqual((await control(noisy, 'POST', 'expire-tokens')).status, 204);
    const out = file('noisy.img');
    const g = await ok(`ebs-get -j 16 < ${manifest} | file-write ${out}`, { env: local });
    assert.match(g.stderr, /block-token/, `expired tokens were refreshed${describe(g)}`);
    await assertHolds(out, img);
    const stats = JSON.parse((await control(noisy, 'GET', 'stats')).body);
    assert.ok(Object.values(stats.throttled).reduce((a, b) => a + b, 0) > 0, `the quota was hit: ${JSON.stringify(stats)}`);
  } finally {
    await noisy.stop();
  }
});

test('an unknown snapshot fails at once with status 1, naming it', async () => {
  for (const cmd of ['ebs-blocks snap-0123456789abcdef1', 'ebs-blocks snap-0123456789abcdef1 --dry-run']) {
    const r = await run(cmd);
    assert.strictEqual(r.code, 1, describe(r));
    assert.match(r.stderr, /^ebs-blocks: snap-0123456789abcdef1: .*(NotFound|does not exist)/, describe(r));
    assert.strictEqual(r.stderr.trim().split('\n').length, 1, describe(r));
  }
  const img = patterned('every4th', 2 << 20);
  const r = await run(`file-blocks ${img} | ebs-put --parent snap-0123456789abcdef1`);
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /snap-0123456789abcdef1/, describe(r));
  assert.doesNotMatch(r.stderr, /retried/, 'a permanent error is not retried');
});

test('--dry-run checks access, prints a plan and writes nothing', async () => {
  const img = patterned('every', 8 << 20);
  const before = JSON.parse((await control(emu, 'GET', 'stats')).body);
  const r = await must(`file-blocks ${img} | ebs-put --dry-run`);
  const [plan, end] = records(r);
  assert.deepStrictEqual(plan, { type: 'plan', command: 'ebs-put', calls: { StartSnapshot: 1, PutSnapshotBlock: 16, CompleteSnapshot: 1 }, blocks: 16, bytes: 16 * BLOCK });
  assert.strictEqual(end.type, 'end');
  const after = JSON.parse((await control(emu, 'GET', 'stats')).body);
  for (const op of ['StartSnapshot', 'PutSnapshotBlock', 'CompleteSnapshot']) assert.strictEqual(after.requests[op] ?? 0, before.requests[op] ?? 0, op);
  const id = await synthetic(emu, { VolumeSize: 1, Pattern: 'every', Seed: 1, SparseFraction: 0.9 });
  const g = records(await must(`ebs-blocks ${id} | ebs-get --dry-run`));
  assert.strictEqual(g[0].type, 'plan');
  assert.strictEqual(g[0].calls.GetSnapshotBlock, g[0].blocks);
  assert.ok(g[0].blocks > 100);
});

test('bad input: a block before a header, out of order, without data, beyond the volume', async () => {
  const cases = [
    [`echo '{"type":"block","index":0,"zero":true}'`, 'ebs-put', /before any volume header/],
    [`printf '%s\\n' '{"type":"volume","format":1,"blockSize":524288,"size":1073741824,"snapshotId":"snap-0123456789abcdef1"}' '{"type":"block","index":5,"token":"x"}' '{"type":"block","index":2,"token":"y"}'`, 'ebs-get --dry-run', /block 2 comes after block 5/],
    [`printf '%s\\n' '{"type":"volume","format":1,"blockSize":524288,"size":1073741824}' '{"type":"block","index":1,"token":"x"}'`, 'delta --parent snap-0123456789abcdef1', /names no "snapshotId"/],
    [`printf '%s\\n' '{"type":"volume","format":1,"blockSize":524288,"size":1073741824}' '{"type":"block","index":3}'`, 'ebs-put --dry-run', /block 3 has no data/],
    [`printf '%s\\n' '{"type":"volume","format":1,"blockSize":524288,"size":1073741824}' '{"type":"block","index":2048,"zero":true}'`, 'ebs-put --dry-run', /block 2048 is beyond/],
  ];
  for (const [producer, cmd, message] of cases) {
    const r = await run(`${producer} | ${cmd}`);
    assert.strictEqual(r.code, 4, describe(r));
    assert.match(r.stderr, new RegExp(`^${cmd.split(' ')[0]}: stdin:\\d+: `), describe(r));
    assert.match(r.stderr, message, describe(r));
  }
});

test('ebs-blocks | head -1 ends quietly; usage errors exit 2', async () => {
  const id = await synthetic(emu, { VolumeSize: 4, Pattern: 'every', Seed: 2 });
  const r = await run(`ebs-blocks ${id} | head -1`);
  assert.deepStrictEqual(r.statuses, [0, 0], describe(r));
  assert.strictEqual(r.stderr, '', describe(r));
  for (const bad of ['ebs-blocks', 'ebs-blocks 12', 'delta', 'ebs-put --resume snap-0123456789abcdef1', 'ebs-get --bogus']) {
    const u = await run(`${bad} < /dev/null`);
    assert.strictEqual(u.code, 2, describe(u));
  }
});
