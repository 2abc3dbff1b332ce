'use strict';
// The composed commands (bin/ebs-size, ebs-download, ... : bash pipelines of the toolkit's
// commands, one per Flexible Snapshot Proxy job) against two real ebs-emulators and a local
// store. Every result is read back and compared byte for byte with what went in.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe } = require('./lib/run');
const { startEmulator, siblingSnapshots, synthetic, emulatorEnv, listAll, listPages } = require('./lib/emulator');
const { COMPOSITIONS, scratch, records, completedId, assertHolds, patternImage } = require('./lib/compositions');

const BLOCK = 524288;
const { file } = scratch('sluice-compose-');

// Two servers: the source (its URL is the default endpoint of every script) and a destination.
let src;
let dst;
let env;
test.before(async () => {
  [src, dst] = await Promise.all([0, 1].map(() => startEmulator(['--completion-ms', '50', '--no-quotas'])));
  env = emulatorEnv(src);
});
test.after(() => Promise.all([src.stop(), dst.stop()]));

const run = (script) => sh(script, { env });
const must = (script) => ok(script, { env });

/** A patterned image with a hole, a zeroed block and, unless told, a partial last block. */
const image = (pattern, size) => patternImage(file(`${pattern}.img`), pattern, size);

/** Uploads an image with ebs-upload (flags before it); resolves with the new snapshot's id. */
async function upload(img, flags = '') {
  return completedId(await must(`ebs-upload ${flags} ${img}`));
}

const siblings = () => siblingSnapshots(src, { seed: 21, rootSparseFraction: 0.97, sparseFraction: 0.98 });

test('each composition: --help prints its usage (status 0); no arguments or an unknown flag is a usage error (2)', async () => {
  for (const c of COMPOSITIONS) {
    const help = await must(`${c} --help`);
    assert.match(help.stdout.toString(), new RegExp(`^Usage: ${c} `), c);
    assert.match(help.stdout.toString(), /^  5 +integrity/m, `${c}: the exit statuses`);
    const bare = await run(c);
    assert.strictEqual(bare.code, 2, `${c} without arguments${describe(bare)}`);
    assert.match(bare.stderr, new RegExp(`^${c}: expected `), c);
    const bad = await run(`${c} --no-such-flag snap-00000000000000001 x y`);
    assert.strictEqual(bad.code, 2, `${c} --no-such-flag${describe(bad)}`);
    assert.match(bad.stderr, new RegExp(`^${c}: unknown option --no-such-flag\n`), c);
    const missing = await run(`${c} snap-00000000000000001 --region`);
    assert.strictEqual(missing.code, 2, `${c} --region without a value${describe(missing)}`);
  }
});

test('each composition is a package.json bin entry with a README section under "### Compositions"', () => {
  const { ROOT } = require('./lib/run');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n### Compositions\n'), readme.indexOf('\n### `ebs-emulator`'));
  for (const c of COMPOSITIONS) {
    assert.strictEqual(pkg.bin[c], `bin/${c}`, c);
    assert.ok(fs.statSync(path.join(ROOT, 'bin', c)).mode & 0o111, `bin/${c} is executable`);
    assert.match(section, new RegExp(`^#### \`${c}\`$`, 'm'), c);
  }
});

test('sluice runs each composition: listed in its --help, the same usage, status and output as the script', async () => {
  const { COMMANDS } = require('../dist/commands.js');
  assert.deepStrictEqual(COMMANDS.filter((c) => c.kind === 'compositions').map((c) => c.name).sort(), [...COMPOSITIONS].sort());
  const listing = (await must('sluice --help')).stdout.toString();
  for (const c of COMPOSITIONS) assert.match(listing, new RegExp(`^  ${c} +\\S`, 'm'), `sluice --help lists ${c}`);

  const help = await must('sluice ebs-size --help');
  assert.match(help.stdout.toString(), /^Usage: ebs-size \[--parent PARENT-ID\]/);
  assert.ok(help.stdout.equals((await must('ebs-size --help')).stdout), 'the script\'s own usage, byte for byte');
  const missing = await run('sluice ebs-download');
  assert.strictEqual(missing.code, 2, describe(missing));
  assert.strictEqual(missing.stdout.length, 0, describe(missing));
  assert.match(missing.stderr, /^ebs-download: expected SNAPSHOT-ID and one FILE or DEVICE\n\nUsage: ebs-download /);
  const unknown = await run('sluice ebs-size snap-0123456789abcdef0');
  assert.strictEqual(unknown.code, 1, `a failing stage's status passes through${describe(unknown)}`);
  assert.match(unknown.stderr, /snap-0123456789abcdef0/);

  const { a } = await siblings();
  const via = await must(`sluice ebs-size ${a}`);
  assert.ok(via.stdout.equals((await must(`ebs-size ${a}`)).stdout), describe(via));
});

test('ebs-upload then ebs-download: the file back byte for byte, partial last block, hole and zero block included', async () => {
  const img = image('every2nd');
  const id = await upload(img, '--description every2nd');
  const out = file('download.img');
  await must(`ebs-download --endpoint-url ${src.url} ${id} ${out}`);
  await assertHolds(out, img);
  // Only the blocks with data were put: not the hole (block 2), nor the zeroed block 4.
  assert.deepStrictEqual((await listAll(src.ebs(), id)).map((b) => b.BlockIndex), [0, 1, 3, 5, 6]);
  const again = await run(`ebs-download ${id} ${out}`);
  assert.strictEqual(again.code, 1, `an existing file is refused without -f${describe(again)}`);
  await must(`ebs-download -f -j 4 ${id} ${out} && cmp -n ${fs.statSync(img).size} ${img} ${out}`);
});

test('ebs-upload --full-copy puts the zero block too (listed, reads as zeros), not the hole', async () => {
  const img = image('every2nd');
  const id = await upload(img, '--full-copy');
  assert.deepStrictEqual((await listAll(src.ebs(), id)).map((b) => b.BlockIndex), [0, 1, 3, 4, 5, 6]);
  const out = file('full-copy.img');
  await must(`ebs-download --endpoint-url ${src.url} ${id} ${out}`);
  await assertHolds(out, img);
});

test('ebs-download of an unknown snapshot fails with status 1 naming it, and leaves no file', async () => {
  const out = file('none.img');
  const r = await run(`ebs-download snap-0123456789abcdef0 ${out}`);
  assert.strictEqual(r.code, 1, describe(r));
  assert.match(r.stderr, /snap-0123456789abcdef0/);
  assert.ok(!fs.existsSync(out));
});

test('ebs-size: blocks and bytes of a 1 GiB synthetic snapshot, and of the delta between siblings', async () => {
  const { root, a, b } = await siblings();
  const size = records(await must(`ebs-size ${a}`))[0];
  const listed = await listAll(src.ebs(), a);
  assert.strictEqual(size.blocks, listed.length);
  assert.strictEqual(size.dataBytes, listed.length * BLOCK);
  assert.ok(listed.length > 20 && listed.length < 2048, `a mostly sparse snapshot (${listed.length} blocks)`);
  const diff = records(await must(`ebs-size --parent ${a} ${b}`))[0];
  const changed = (await listPages(src.ebs(), b, { first: a })).flatMap((p) => p.ChangedBlocks);
  assert.strictEqual(diff.blocks, changed.length);
  assert.strictEqual(diff.dataBytes, changed.length * BLOCK);
  // The blocks a has and b lost (neither b nor the root wrote them) come out as zero blocks.
  const lost = changed.filter((c) => !c.SecondBlockToken).length;
  assert.ok(lost > 0, 'the siblings lose blocks to each other');
  assert.ok(diff.zeroBlocks >= lost);
  const human = await must(`ebs-size -H --parent=${root} ${b}`);
  assert.match(human.stdout.toString(), /\d/);
});

// The siblings and their reference copies (ebs-download), shared by the tests that need them.
let family;
async function downloaded() {
  if (!family) {
    const { a, b } = await siblings();
    family = { a, b, refA: file('ref-a.img'), refB: file('ref-b.img') };
    await must(`ebs-download ${a} ${family.refA} && ebs-download ${b} ${family.refB}`);
    const differ = await run(`cmp ${family.refA} ${family.refB}`);
    assert.strictEqual(differ.code, 1, 'A and B differ to begin with');
  }
  return family;
}

test('ebs-multiclone makes copies equal to ebs-download\'s; ebs-deltadownload turns one into B, zeros where B lost A\'s blocks', async () => {
  const { a, b, refA, refB } = await downloaded();
  const [copy1, copy2] = [file('a1.img'), file('a2.img')];
  await must(`ebs-multiclone ${a} ${copy1} ${copy2}`);
  await must(`cmp ${copy1} ${refA} && cmp ${copy2} ${refA}`);
  await must(`ebs-deltadownload ${a} ${b} ${copy1}`);
  await must(`cmp ${copy1} ${refB}`);
  const missing = await run(`ebs-deltadownload ${a} ${b} ${file('absent.img')}`);
  assert.strictEqual(missing.code, 2, describe(missing));
});

test('ebs-copy to another endpoint, then ebs-sync of the delta onto the copy: each reads back as its source', async () => {
  const { a, b, refA, refB } = await downloaded();
  const aCopy = completedId(await must(`ebs-copy --dest-endpoint-url ${dst.url} --description copy ${a}`));
  const synced = await must(`ebs-sync --dest-endpoint-url=${dst.url} ${a} ${b} ${aCopy}`);
  const bSync = completedId(synced);
  const [dstA, dstB] = [file('a-copy.img'), file('b-sync.img')];
  await must(`ebs-download --endpoint-url ${dst.url} ${aCopy} ${dstA} && cmp ${dstA} ${refA}`);
  await must(`ebs-download --endpoint-url ${dst.url} ${bSync} ${dstB} && cmp ${dstB} ${refB}`);
  // The sync put exactly the delta's blocks (zeros where b lost a's), not the whole of b.
  const delta = records(await must(`ebs-size --parent ${a} ${b}`))[0].blocks;
  const last = records(synced).filter((x) => x.type === 'snapshot').pop();
  assert.strictEqual(last.blocksPut, delta);
});

test('ebs-movetos3 and ebs-getfroms3, default layout: back into a file and into a new snapshot', async () => {
  const img = image('every4th');
  const id = await upload(img);
  const store = file('store');
  const moved = await must(`ebs-movetos3 ${id} ${store}`);
  assert.ok(records(moved).some((x) => x.key === 'volume.json'), describe(moved));
  const out = file('from-s3.img');
  await must(`ebs-getfroms3 ${store} ${out}`);
  await assertHolds(out, img);
  const back = completedId(await must(`ebs-getfroms3 ${store} --to-snapshot`));
  const out2 = file('from-s3-snap.img');
  await must(`ebs-download ${back} ${out2}`);
  await assertHolds(out2, img);
  const both = await run(`ebs-getfroms3 --region us-east-1 ${store} ${file('x.img')}`);
  assert.strictEqual(both.code, 2, `AWS settings without --to-snapshot${describe(both)}`);
});

test('ebs-movetos3 --layout fsp leaves zero blocks out, --full-copy keeps them; ebs-getfroms3 --layout fsp reads both back', async () => {
  const img = image('every2nd');
  const id = await upload(img);
  // A snapshot listing a zero block: the delta of a re-upload with block 1 zeroed since.
  const fd = fs.openSync(img, 'r+');
  fs.writeSync(fd, Buffer.alloc(BLOCK), 0, BLOCK, BLOCK);
  fs.closeSync(fd);
  const child = await upload(img, `--parent ${id}`);
  // Chunks as first.count: without --full-copy the zero block 1 is a gap; block 4 is in no snapshot.
  for (const [flags, chunks] of [['', ['0.1', '3.1', '5.2']], ['--full-copy', ['0.2', '3.1', '5.2']]]) {
    const store = file('fsp');
    await must(`ebs-movetos3 --layout fsp ${flags} ${child} ${store}`);
    const keys = records(await must(`s3-list ${store}/${child}.1`)).filter((x) => x.type === 'object').map((x) => x.key);
    const firstCount = keys.map((k) => k.split('.')).map((p) => `${p[0]}.${p[p.length - 2]}`);
    assert.deepStrictEqual(firstCount.sort(), chunks, `${flags}: ${keys}`);
    const out = file('fsp.img');
    await must(`ebs-getfroms3 --layout fsp ${store}/${child}.1 ${out}`);
    await assertHolds(out, img);
  }
});

/**
 * Starts bin/COMMAND with `args` ({tag} in them replaced by a path unique to this run), waits
 * until `ready` says the pipeline is going, sends `signal` to the command's pid and resolves
 * with its exit status (waited for up to 30 s), what it printed, and the processes still running
 * whose command line matches `pattern` (an extended regex, built from the tag).
 */
async function interrupted(command, args, { signal, ready, pattern = (tag) => tag }) {
  const { spawn, execFileSync } = require('node:child_process');
  const { BIN } = require('./lib/run');
  const tag = file('stopped');
  const stages = () => {
    try {
      return execFileSync('pgrep', ['-f', '--', pattern(tag)], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch (err) {
      if (err.status === 1) return []; // none
      throw err;
    }
  };
  const child = spawn(path.join(BIN, command), args.map((a) => a.replaceAll('{tag}', tag)), { env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const ended = new Promise((resolve) => child.on('close', (code) => resolve(code)));
  try {
    const until = Date.now() + 30000;
    while (!(await ready({ tag, stdout, stages: stages() }))) {
      assert.ok(Date.now() < until, `${command} never got going: ${stdout}${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill(signal);
    let timer;
    const code = await Promise.race([ended, new Promise((r) => (timer = setTimeout(() => r('still running after 30 s'), 30000)))]);
    clearTimeout(timer);
    return { code, tag, stdout, stderr, left: stages() };
  } finally {
    for (const pid of stages()) {
      try {
        process.kill(Number(pid), 'SIGKILL'); // only after a failure: none is left otherwise
      } catch {}
    }
  }
}

/** Every snapshot an emulator holds with this description. */
async function described(emu, description) {
  const { ec2Client } = require('./lib/emulator');
  const { DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');
  const out = await ec2Client(emu.url).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
  return out.Snapshots.filter((s) => s.Description === description);
}

test('ebs-upload from a FIFO that says nothing, stopped by SIGTERM or (through sluice) SIGINT: every stage ends, 128+n, no snapshot completed', async () => {
  const { execFileSync } = require('node:child_process');
  for (const [command, signal, status] of [['ebs-upload', 'SIGTERM', 143], ['sluice', 'SIGINT', 130]]) {
    let holder;
    // The FIFO is the tag: file-blocks reads it, ebs-put has it as --description.
    const ready = ({ tag, stdout }) => {
      if (holder === undefined) {
        execFileSync('mkfifo', [tag]);
        holder = fs.openSync(tag, 'r+'); // a writer that stays and never ends the stream
        fs.writeSync(holder, Buffer.alloc(BLOCK, 7));
      }
      return /"status":"pending"/.test(stdout);
    };
    const args = ['--size', '1', '--description', '{tag}', '{tag}'];
    try {
      const r = await interrupted(command, command === 'sluice' ? ['ebs-upload', ...args] : args, { signal, ready });
      const what = `${command} ${signal}: ${r.stderr}`;
      assert.strictEqual(r.code, status, what);
      assert.deepStrictEqual(r.left, [], `no stage of the pipeline is left: ${what}`);
      assert.ok(!records({ stdout: Buffer.from(r.stdout) }).some((x) => x.status === 'completed'), what);
      const snaps = await described(src, r.tag);
      assert.strictEqual(snaps.length, 1, `the snapshot was started: ${what}`);
      assert.notStrictEqual(snaps[0].State, 'completed', what);
    } finally {
      if (holder !== undefined) fs.closeSync(holder);
    }
  }
});

test('ebs-fanout of a slowly read snapshot, stopped by SIGTERM: the read and every ebs-put end, 143, no snapshot completed', async () => {
  const slow = await startEmulator(['--latency', '300', '--no-quotas']);
  try {
    const id = await synthetic(slow, { VolumeSize: 1, Pattern: 'every', Seed: 9 });
    // Going: a snapshot started at each destination (the tag is their description).
    const ready = async ({ tag }) => (await described(src, tag)).length === 1 && (await described(dst, tag)).length === 1;
    // The destinations' journals, kept for a resume, go to the test's own folder.
    const journals = file('journals');
    const r = await interrupted('ebs-fanout', ['--endpoint-url', slow.url, '--description', '{tag}', '--journal-dir', journals, id, '--to', src.url, '--to', dst.url], {
      signal: 'SIGTERM',
      ready,
      pattern: (tag) => `${tag}|${slow.url}`, // the ebs-puts, and ebs-blocks and ebs-get
    });
    assert.strictEqual(r.code, 143, r.stderr);
    assert.deepStrictEqual(r.left, [], `no stage of the pipeline is left: ${r.stderr}`);
    assert.strictEqual(fs.readdirSync(journals).filter((f) => f.endsWith('.journal')).length, 2, `each destination's journal is kept: ${r.stderr}`);
    for (const emu of [src, dst]) {
      const snaps = await described(emu, r.tag);
      assert.strictEqual(snaps.length, 1, r.stderr);
      assert.notStrictEqual(snaps[0].State, 'completed', r.stderr);
    }
  } finally {
    await slow.stop();
  }
});
