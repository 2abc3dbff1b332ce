'use strict';
// Every composition (bin/ebs-size, ebs-download, ...) on 1 GiB volumes of the Flexible Snapshot
// Proxy's test patterns, against two ebs-emulators (seeds 101 and 202) that fail on purpose: 5%
// of the data and list calls answer 500, 1% lose their connection, 2% of the block reads answer
// "Failed to read block data", 1% of the block bodies come slowly, every new snapshot is "not
// found" for 300 ms after StartSnapshot; the per-snapshot Get and Put quotas are 200/s, and 5/s
// for 0.4 s of every 3 s, so that readers and writers are throttled however slow the machine;
// the list quotas are 2/s; block tokens live 5 s, so every reader (2,048 blocks at no more than
// 200/s: 10 s at least) outlives the tokens of its listing and must list again; and the first
// download has every token expired (POST expire-tokens) between its listing and most of its
// reads. Each result is read back and compared byte for byte (cmp) with its pattern image.
//
// What is covered, and what is not. The full matrix (10 compositions x 4 patterns, each result
// read back) moves about 80 GiB through the emulators, far beyond CI's budget on two cores; one
// run of this file moves about 20. Each composition runs at 1 GiB under the faults above on the
// patterns in the places A, B, C, D (below; by default every2nd, every4th, every3rd4th, every):
//
//   ebs-upload        A (a root), B (its child), C (the child of that)
//   ebs-size          those three, and the pairs A/B, B/C and A/C, all at once so that the list
//                     quota throttles them
//   ebs-download      A (the upload, at the source), B and C (the ebs-sync results, at the
//                     destination), D (ebs-fanout's and ebs-getfroms3's)
//   ebs-deltadownload A -> B -> C, in place on the downloaded file
//   ebs-copy          A, source -> destination emulator
//   ebs-sync          A -> B and B -> C, onto that copy
//   ebs-multiclone    A (the copy), into two files
//   ebs-fanout        D, from the file to both emulators
//   ebs-movetos3      D (ebs-fanout's snapshot at the source, into a local store)
//   ebs-getfroms3     D, into a file and into a new snapshot at the destination
//
// SLUICE_FAULTS_ROTATION=1, 2, 3 rotates the patterns through the places (and 1 and 3 store in
// the fsp layout): the four runs together are the whole matrix, in both layouts, which
// bench/ebs-faults-matrix.sh runs; CI runs rotation 0. Devices are not covered here.
// The FSP patterns write the first sector of every block, so each image is all data and any two
// patterns differ in every block: the parent/child deltas here are whole volumes (2,048 changed
// blocks). Partial deltas, holes, zero and lost blocks are covered, without faults, by
// ebs-compositions.test.js. The lines of work after the first upload run at the same time (so
// the faults do not fall on the same requests in every run, seeds or not), and each run's own
// retry summary (stderr) is the evidence that it met injected faults and throttling; the
// emulators' counters, checked at the end, that every kind of fault happened at both.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const { ok, describe } = require('./lib/run');
const { startEmulator, emulatorEnv, control } = require('./lib/emulator');
const { GIB, scratch, records, completedId, patternCommand } = require('./lib/compositions');

const BLOCKS = GIB / 524288;
const QUOTA = 200;
const NOISE = [
  ['--completion-ms', '50'],
  ['--fault', 'internal=0.05'],
  ['--fault', 'reset=0.01'],
  ['--fault', 'read-block=0.02'],
  ['--fault', 'slow=0.01'],
  ['--fault', 'not-found-after-start=1'],
  ['--not-found-ms', '300'],
  ['--quota', `get-snapshot=${QUOTA}`],
  ['--quota', `put-snapshot=${QUOTA}`],
  ['--quota', 'list-blocks=2'],
  ['--quota', 'list-changed=2'],
  ['--block-token-ttl', '5'],
].flat();
// The patterns' places in the work below, rotated by SLUICE_FAULTS_ROTATION (0 to 3; 0 by
// default): A is uploaded as a root, B as its child, C as the child of B; D goes through fanout,
// movetos3 and getfroms3. The four rotations together run every composition on every pattern,
// and the odd ones store in the fsp layout (bench/ebs-faults-matrix.sh runs all four).
const ORDER = ['every2nd', 'every4th', 'every3rd4th', 'every'];
const ROTATION = Number(process.env.SLUICE_FAULTS_ROTATION ?? 0);
if (![0, 1, 2, 3].includes(ROTATION)) throw new Error(`SLUICE_FAULTS_ROTATION must be 0 to 3, got ${process.env.SLUICE_FAULTS_ROTATION}`);
const [A, B, C, D] = ORDER.map((_, i) => ORDER[(i + ROTATION) % ORDER.length]);
const LAYOUT = ROTATION % 2 ? 'fsp' : 'default';
// A run that hangs is a failure, not a stuck suite: timeout(1) stops the whole pipeline.
const LIMIT_S = 300;
const { dir: work, file } = scratch('sluice-faults-');

let src;
let dst;
let env;
let squeezes = [];
test.before(async () => {
  [src, dst] = await Promise.all([101, 202].map((seed) => startEmulator([...NOISE, '--seed', String(seed)])));
  src.name = 'source';
  dst.name = 'destination';
  env = emulatorEnv(src);
  squeezes = [src, dst].map(squeeze);
});
test.after(async () => {
  await Promise.all(squeezes.map((stop) => stop()));
  await Promise.all([src?.stop(), dst?.stop()]);
  fs.rmSync(work, { recursive: true, force: true });
});

// Each 1 GiB image exists only while a command reads it: results are compared with the pattern
// made again on the fly, so that the lines of work running at once fill less of the disk.
/** Writes the 1 GiB image of `pattern`, resolves with `use(path)`, and removes the image. */
async function withImage(pattern, use) {
  const img = file(`${pattern}.img`);
  await ok(`${patternCommand(pattern, GIB)} > ${img}`);
  try {
    return await use(img);
  } finally {
    fs.rmSync(img, { force: true });
  }
}

/** Checks that the file `out` holds the 1 GiB image of `pattern`, byte for byte, and removes it. */
async function assertHoldsPattern(out, pattern) {
  assert.strictEqual(fs.statSync(out).size, GIB, `${out} is the volume's size`);
  await ok(`cmp ${out} <(${patternCommand(pattern, GIB)})`);
  fs.rmSync(out);
}

async function stats(emu) {
  const r = await control(emu, 'GET', 'stats');
  assert.strictEqual(r.status, 200);
  return r.json();
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Until the function it returns is called, drops the block Get and Put quotas of `emu` to 5/s
 * for 0.4 s of every 3 s: whatever the machine's speed, every run of 2,048 blocks is throttled.
 */
function squeeze(emu) {
  let stopped = false;
  const quotas = async (rate) => assert.strictEqual((await control(emu, 'PUT', 'config', { quotas: { 'get-snapshot': rate, 'put-snapshot': rate } })).status, 204);
  const loop = (async () => {
    for (;;) {
      await sleep(2600);
      if (stopped) return;
      await quotas(5);
      await sleep(400);
      await quotas(QUOTA);
    }
  })();
  return () => {
    stopped = true;
    return loop;
  };
}

/**
 * Once `running` has made 64 GetSnapshotBlock calls at `emu` (its listing is done, most of its
 * reads are not), expires every token `emu` handed out. Resolves true when it did.
 */
async function expireOnceReading(emu, running) {
  let done = false;
  running.then(
    () => (done = true),
    () => (done = true),
  );
  const reads = async () => (await stats(emu)).requests.GetSnapshotBlock ?? 0;
  const mark = await reads();
  while (!done) {
    await sleep(25);
    if ((await reads()) - mark >= 64) {
      assert.strictEqual((await control(emu, 'POST', 'expire-tokens')).status, 204);
      return true;
    }
  }
  return false;
}

// A command's closing summary when it had to retry: `ebs-get: 2048 blocks read; retried 12 times
// (throttled 10, InternalServerException 2)`; the kinds that only injected faults cause.
const FAULTED = /retried \d+ times? \([^)]*\b(InternalServerException|ECONNRESET|read-block)\b/;
const THROTTLED = /retried \d+ times? \([^)]*\bthrottled \d+/;
const summaries = (r, command) => r.stderr.split('\n').filter((l) => l.startsWith(`${command}: `) && /retried/.test(l));
let notFoundSeen = 0;

/**
 * Runs a composition that must succeed despite the faults: its ebs-get (when it `reads`) and
 * each of its `puts` ebs-puts must have retried injected faults and throttling. With `expire`,
 * the tokens of the `reads` emulator are expired while it reads, and ebs-get must have listed
 * them again: nothing else may read from that emulator meanwhile.
 */
async function underFaults(script, { reads, puts = 0, expire = false } = {}) {
  const running = ok(`timeout -k 10 ${LIMIT_S} ${script}`, { env, timeoutMs: (LIMIT_S + 30) * 1000 });
  const expired = expire && expireOnceReading(reads, running);
  const r = await running;
  const gets = summaries(r, 'ebs-get');
  const putLines = summaries(r, 'ebs-put');
  assert.strictEqual(gets.length, reads ? 1 : 0, `ebs-get retried${describe(r)}`);
  assert.strictEqual(putLines.length, puts, `each ebs-put retried${describe(r)}`);
  for (const line of [...gets, ...putLines]) {
    assert.match(line, FAULTED, describe(r));
    assert.match(line, THROTTLED, describe(r));
  }
  if (expire) {
    assert.ok(await expired, `the tokens of the ${reads.name} were expired while it read${describe(r)}`);
    assert.match(gets[0], /\bblock-token \d+/, `the expired block tokens were listed again${describe(r)}`);
  }
  notFoundSeen += putLines.filter((l) => /\bnot-found-yet \d+/.test(l)).length;
  return r;
}

/** Downloads a snapshot of `emu` and checks it holds the image of `pattern`. */
async function assertSnapshotHolds(emu, id, pattern) {
  const out = file('download.img');
  await underFaults(`ebs-download --endpoint-url ${emu.url} ${id} ${out}`, { reads: emu });
  await assertHoldsPattern(out, pattern);
}

// The FSP chain at the source, by ebs-upload: A, B as its child, C as the child of that. Each a promise of its id, started by the first test that needs it.
let chain;
function uploaded() {
  if (!chain) {
    const put = async (pattern, parent) => {
      const flags = parent ? `--parent ${await parent}` : '';
      return completedId(await withImage(pattern, (img) => underFaults(`ebs-upload ${flags} ${img}`, { puts: 1 })));
    };
    const first = put(A);
    const second = put(B, first);
    const third = put(C, second);
    chain = { [A]: first, [B]: second, [C]: third };
    for (const id of Object.values(chain)) id.catch(() => {}); // a failure is reported by the tests that await it
  }
  return chain;
}

// The download of A at the source, the first read there, is its only reader while it runs,
// so that the tokens expired in the middle of it are its own: the other reads of the source wait
// for it, done or failed. Resolves with the downloaded file.
let firstRead;
function downloaded() {
  firstRead ??= (async () => {
    const out = file('chain.img');
    await underFaults(`ebs-download ${await uploaded()[A]} ${out}`, { reads: src, expire: true });
    return out;
  })();
  return firstRead;
}
const sourceQuiet = () => downloaded().catch(() => {});

test.describe('under faults, at the same time', { concurrency: true }, () => {
  test(`ebs-upload, ebs-download and ebs-deltadownload: the FSP chain ${A} -> ${B} -> ${C}, byte for byte`, async () => {
    const s = uploaded();
    const out = await downloaded();
    await ok(`cmp ${out} <(${patternCommand(A, GIB)})`);
    await underFaults(`ebs-deltadownload ${await s[A]} ${await s[B]} ${out}`, { reads: src });
    await ok(`cmp ${out} <(${patternCommand(B, GIB)})`);
    await underFaults(`ebs-deltadownload ${await s[B]} ${await s[C]} ${out}`, { reads: src });
    await assertHoldsPattern(out, C);
  });

  test('ebs-size of each snapshot of the chain and of each parent/child pair, all at once under throttled lists', async () => {
    const s = uploaded();
    const [a, b, c] = await Promise.all([s[A], s[B], s[C]]);
    const runs = await Promise.all([...[a, b, c].map((id) => `ebs-size ${id}`), ...[[a, b], [b, c], [a, c]].map(([p, q]) => `ebs-size --parent ${p} ${q}`)].map((cmd) => ok(cmd, { env })));
    for (const r of runs) {
      // Every block of a 1 GiB pattern image is data, and differs from every other pattern's.
      const [{ type, blocks, zeroBlocks, dataBytes }, ...more] = records(r);
      assert.deepStrictEqual({ type, blocks, zeroBlocks, dataBytes, more: more.length }, { type: 'count', blocks: BLOCKS, zeroBlocks: 0, dataBytes: GIB, more: 0 }, describe(r));
    }
    assert.ok(runs.some((r) => /retried .*\bthrottled \d+/.test(r.stderr)), `the lists were throttled and retried${runs.map(describe).join('')}`);
  });

  test(`ebs-copy of ${A} to the destination, ebs-multiclone of the copy, ebs-sync of ${B} and ${C} onto it: each reads back as its pattern`, async () => {
    const s = uploaded();
    await sourceQuiet();
    const copy = completedId(await underFaults(`ebs-copy --dest-endpoint-url ${dst.url} ${await s[A]}`, { reads: src, puts: 1 }));
    const clones = [file('clone-1.img'), file('clone-2.img')];
    await underFaults(`ebs-multiclone --endpoint-url ${dst.url} ${copy} ${clones.join(' ')}`, { reads: dst });
    for (const out of clones) await assertHoldsPattern(out, A);
    let parent = copy;
    for (const [from, to] of [[A, B], [B, C]]) {
      const synced = await underFaults(`ebs-sync --dest-endpoint-url ${dst.url} ${await s[from]} ${await s[to]} ${parent}`, { reads: src, puts: 1 });
      parent = completedId(synced);
      assert.strictEqual(records(synced).filter((x) => x.type === 'snapshot').pop().blocksPut, BLOCKS, `the whole delta was put${describe(synced)}`);
      await assertSnapshotHolds(dst, parent, to);
    }
  });

  test(`ebs-fanout of the ${D} image to both emulators, ebs-movetos3 of one (${LAYOUT} layout), ebs-getfroms3 into a file and a snapshot: each reads back as the image`, async () => {
    const r = await withImage(D, (img) => underFaults(`ebs-fanout ${img} --to ${src.url} --to ${dst.url}`, { puts: 2 }));
    const done = records(r);
    assert.deepStrictEqual(done.map((x) => x.status), ['completed', 'completed'], describe(r));
    await assertSnapshotHolds(dst, done[1].snapshotId, D);
    const store = file('store');
    await sourceQuiet();
    const moved = await underFaults(`ebs-movetos3 --layout ${LAYOUT} ${done[0].snapshotId} ${store}`, { reads: src });
    const marker = LAYOUT === 'fsp' ? `${done[0].snapshotId}.1/` : 'volume.json';
    assert.ok(records(moved).some((x) => x.type === 'object' && x.key.startsWith(marker)), `objects under ${marker}${describe(moved)}`);
    const out = file('from-s3.img');
    await ok(`ebs-getfroms3 --layout ${LAYOUT} ${store} ${out}`);
    await assertHoldsPattern(out, D);
    const back = completedId(await underFaults(`ebs-getfroms3 --layout ${LAYOUT} --endpoint-url ${dst.url} ${store} --to-snapshot`, { puts: 1 }));
    await assertSnapshotHolds(dst, back, D);
  });
});

test('the emulators throttled Get, Put and List calls, injected every kind of fault, and gave every new snapshot its not-found window', async () => {
  const [a, b] = await Promise.all([stats(src), stats(dst)]);
  const seen = JSON.stringify({ source: a, destination: b });
  for (const op of ['GetSnapshotBlock', 'PutSnapshotBlock', 'ListSnapshotBlocks']) assert.ok(a.throttled[op] > 0 && b.throttled[op] > 0, `${op} throttled at both: ${seen}`);
  for (const kind of ['internal', 'reset', 'read-block', 'slow']) assert.ok(a.faults[kind] > 0 && b.faults[kind] > 0, `${kind} at both: ${seen}`);
  // Every snapshot here was started by a composition (none is synthetic), each with its window.
  assert.deepStrictEqual([a.snapshots, b.snapshots], [4, 5], seen);
  assert.deepStrictEqual([a.faults['not-found-after-start'], b.faults['not-found-after-start']], [a.snapshots, b.snapshots], seen);
  assert.ok(notFoundSeen > 0, 'some ebs-put met a snapshot not found yet, and waited');
});
