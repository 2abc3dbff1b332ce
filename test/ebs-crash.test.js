'use strict';
// Crash safety of the compositions that write a snapshot: ebs-upload, ebs-copy and ebs-sync. A
// stage, or the script itself, is killed midway through a transfer slowed by the emulators'
// latency. Then no completed snapshot may lack a block, the status must say the run failed, and
// the documented resume (the same arguments plus --resume SNAPSHOT-ID --done JOURNAL..., the
// journals being what the earlier runs printed) must finish the snapshot byte for byte, without
// putting again, nor (from a snapshot) reading again, any block a journal lists. That is counted
// by the emulators (PutSnapshotBlock at the destination, GetSnapshotBlock at the source).
//
// A lister (ebs-blocks, delta) of a snapshot this small writes its whole output into the pipe at
// once, before the first block is put; it is killed while its listing call is held by the
// source's latency: before any snapshot was started, or in the resume of one half put.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { sh, ok, describe, tmpdir, BIN } = require('./lib/run');
const { startEmulator, emulatorEnv, synthetic, control, ec2Client, listAll } = require('./lib/emulator');
const { writePattern } = require('./lib/pattern');
const { DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');

const BLOCK = 524288;
const PUT_LATENCY_MS = 150; // with -j 2: a block put every 75 ms or so
const LIST_LATENCY_MS = 1000; // the window in which a lister is killed
const work = tmpdir('sluice-crash-');
let n = 0;
const file = (name) => path.join(work, `${n++}-${name}`);

let src; // the source snapshots, and the default endpoint of every command
let dst; // where the snapshots are written
let env;
// The sources and their contents, byte for byte (files of the volume's size).
const s = {};
test.before(async () => {
  [src, dst] = await Promise.all([0, 1].map(() => startEmulator(['--completion-ms', '50', '--no-quotas'])));
  env = emulatorEnv(src);
  // ebs-upload: 40 blocks with a hole (block 3) and a zero block (block 5).
  s.img = file('every2nd.img');
  writePattern(s.img, 40 * BLOCK, 'every2nd', { holes: [[3 * BLOCK, 4 * BLOCK]] });
  const fd = fs.openSync(s.img, 'r+');
  fs.writeSync(fd, Buffer.alloc(BLOCK), 0, BLOCK, 5 * BLOCK);
  fs.closeSync(fd);
  s.imgRef = file('every2nd.ref');
  fs.copyFileSync(s.img, s.imgRef);
  fs.truncateSync(s.imgRef, 1 << 30);
  // ebs-copy: a snapshot of some 40 blocks, a fifth of them zeros; ebs-sync: a child of it
  // with as many blocks of its own, and the parent's copy at the destination.
  s.parent = await synthetic(src, { VolumeSize: 1, Pattern: 'every2nd', Seed: 41, SparseFraction: 0.98, ZeroFraction: 0.2 });
  s.child = await synthetic(src, { VolumeSize: 1, Pattern: 'every4th', Seed: 42, SparseFraction: 0.98, ZeroFraction: 0.2, ParentSnapshotId: s.parent });
  [s.parentRef, s.childRef] = [file('parent.ref'), file('child.ref')];
  await must(`ebs-download ${s.parent} ${s.parentRef} && ebs-download ${s.child} ${s.childRef}`);
  s.parentCopyRun = await must(`ebs-copy --dest-endpoint-url ${dst.url} --full-copy ${s.parent}`);
  s.parentCopy = completedId(s.parentCopyRun);
});
test.after(async () => {
  await Promise.all([src.stop(), dst.stop()]);
  fs.rmSync(work, { recursive: true, force: true }); // volume-sized (sparse) files
});

const must = (script) => ok(script, { env });
const lines = (text) => text.split('\n').slice(0, -1).filter(Boolean).map((l) => JSON.parse(l)); // a partial last line is left out
const records = (r) => lines(r.stdout.toString());
const journal = (p) => lines(fs.readFileSync(p, 'utf8'));
const blocks = (recs) => recs.filter((x) => x.type === 'block').map((x) => x.index);
const requests = async (emu) => JSON.parse((await control(emu, 'GET', 'stats')).body).requests;
const latency = (emu, ms) => control(emu, 'PUT', 'config', { latencyMs: ms });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function completedId(r) {
  const done = records(r).filter((x) => x.type === 'snapshot' && x.status === 'completed');
  assert.strictEqual(done.length, 1, `one completed snapshot record${describe(r)}`);
  return done[0].snapshotId;
}

async function snapshots(emu) {
  return (await ec2Client(emu.url).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }))).Snapshots;
}

/** Reads snapshot `id` back from the destination and compares it with `ref`, byte for byte. */
async function assertContent(id, ref) {
  const out = file('readback.img');
  await must(`ebs-download --endpoint-url ${dst.url} ${id} ${out} && cmp ${out} ${ref}`);
  fs.unlinkSync(out);
}

/** The processes under `pid` (not itself): [{ pid, stage }], stage being the bin/ command it runs. */
function processTree(pid) {
  const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), stage: /\/bin\/([a-z0-9-]+)(\s|$)/.exec(m[3])?.[1] }));
  const out = [];
  const walk = (p) => rows.filter((r) => r.ppid === p).forEach((r) => (out.push(r), walk(r.pid)));
  walk(pid);
  return out;
}

function running(pids) {
  if (!pids.length) return [];
  try {
    const out = execFileSync('ps', ['-o', 'pid=,stat=', '-p', pids.join(',')], { encoding: 'utf8' });
    return out.split('\n').filter((l) => l.trim() && !/\sZ/.test(l)); // a zombie has ended
  } catch {
    return []; // none left
  }
}

/**
 * Runs bin/COMMAND ARGS with its output into a new journal file, waits until `ready` says the
 * moment has come while `target` (a stage, or 'script') runs, sends it `signal`, and resolves
 * once the script and every process under it are gone, with { code, signal, stderr, journal }.
 */
async function killMidway(command, args, { target, signal = 'SIGKILL', ready }) {
  const out = file(`${command}-${target}.journal`);
  const fd = fs.openSync(out, 'w');
  const child = spawn(path.join(BIN, command), args, { env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, ...env }, stdio: ['ignore', fd, 'pipe'] });
  fs.closeSync(fd);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise((resolve) => child.on('close', (code, sig) => resolve({ code, signal: sig })));
  const what = () => `${command} ${args.join(' ')}, ${signal} to ${target}\n--- stderr:\n${stderr}\n--- journal:\n${fs.readFileSync(out, 'utf8').slice(0, 2000)}`;
  let tree = [];
  try {
    for (const until = Date.now() + 60000; ; await sleep(50)) {
      assert.ok(child.exitCode === null && child.signalCode === null, `it ended before ${target} was killed: ${what()}`);
      assert.ok(Date.now() < until, `never ready to kill ${target}: ${what()}`);
      if (!(await ready(journal(out)))) continue;
      tree = processTree(child.pid);
      const pid = target === 'script' ? child.pid : tree.find((p) => p.stage === target)?.pid;
      if (pid !== undefined) {
        process.kill(pid, signal);
        break;
      }
    }
    let timer;
    const ended = await Promise.race([closed, new Promise((r) => (timer = setTimeout(() => r('still running after 60 s'), 60000)))]);
    clearTimeout(timer);
    assert.notStrictEqual(ended, 'still running after 60 s', what());
    for (const until = Date.now() + 30000; running(tree.map((p) => p.pid)).length; await sleep(50)) {
      assert.ok(Date.now() < until, `processes of the pipeline left running: ${running(tree.map((p) => p.pid))}\n${what()}`);
    }
    return { ...ended, stderr, journal: out, what: what() };
  } finally {
    // Only after a failure is any of them left.
    for (const pid of [child.pid, ...tree.map((p) => p.pid)]) {
      try {
        if (running([pid]).length) process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
}

/** Ready once the journal lists `count` blocks put. */
const puts = (count) => (recs) => blocks(recs).length >= count;
/** Ready once `emu` got an `op` call (a listing, held by its latency) after this was made. */
async function calling(emu, op) {
  const before = (await requests(emu))[op] ?? 0;
  return async () => ((await requests(emu))[op] ?? 0) > before;
}

/**
 * After a kill: the status says so, no new snapshot at the destination is completed but with
 * every block of `ref`, the journal's snapshot (if one was started) is pending, and the message
 * says how to resume. Resolves with the journal's snapshot id.
 */
async function assertFailedSafely(r, { command, target, signal = 'SIGKILL', ref, known, resumed }) {
  if (target === 'script' && signal === 'SIGKILL') assert.strictEqual(r.signal, 'SIGKILL', r.what);
  else assert.strictEqual(r.code, signal === 'SIGTERM' ? 143 : 137, `the status of the killed stage${r.what}`);
  // A resume killed before its stream's header came has not named its snapshot yet.
  const id = journal(r.journal).find((x) => x.type === 'snapshot')?.snapshotId ?? resumed;
  for (const snap of await snapshots(dst)) {
    if (known.has(snap.SnapshotId)) continue;
    known.add(snap.SnapshotId);
    if (snap.State === 'completed') await assertContent(snap.SnapshotId, ref); // whole, or a failure
    if (snap.SnapshotId === id) assert.strictEqual(snap.State, 'pending', `the journal's snapshot is left pending: ${r.what}`);
  }
  if (id === undefined) {
    assert.match(r.stderr, new RegExp(`^${command}: no snapshot was started: nothing to resume$`, 'm'), r.what);
  } else {
    assert.ok(known.has(id), `${id} is at the destination: ${r.what}`);
    const hint = `${command}: ${id} is left pending; to finish it, run ${command} again with`;
    assert.ok(r.stderr.includes(hint) && r.stderr.includes(`--resume ${id} `) && r.stderr.includes(`--done ${fs.realpathSync(r.journal)}`), `the message says how to resume: ${r.what}`);
  }
  return id;
}

/**
 * The documented resume: COMMAND ARGS --resume ID --done JOURNAL... into a new journal. Checks
 * it completes ID, byte for byte as `ref`, having put (and, `reads`, read from the source) only
 * the blocks its own journal lists, none of which an earlier journal lists.
 */
async function assertResumes(command, args, id, journals, { ref, reads }) {
  const out = file(`${command}-resumed.journal`);
  const [puts0, reads0] = [await requests(dst), await requests(src)];
  const r = await must(`${command} ${args.join(' ')} --resume ${id} ${journals.map((j) => `--done ${j}`).join(' ')} > ${out}`);
  const [puts1, reads1] = [await requests(dst), await requests(src)];
  const recs = journal(out);
  const final = recs.filter((x) => x.type === 'snapshot').pop();
  assert.deepStrictEqual([final.snapshotId, final.status], [id, 'completed'], r.stderr);
  const earlier = journals.map((j) => blocks(journal(j)));
  const all = [...earlier, blocks(recs)].flat();
  assert.strictEqual(new Set(all).size, all.length, `no block is in two journals: ${JSON.stringify(earlier)} ${JSON.stringify(blocks(recs))}`);
  const own = blocks(recs).length;
  assert.strictEqual(puts1.PutSnapshotBlock - puts0.PutSnapshotBlock, own, `only the blocks not journaled before were put (${own}): ${r.stderr}`);
  if (reads) assert.strictEqual((reads1.GetSnapshotBlock ?? 0) - (reads0.GetSnapshotBlock ?? 0), own, `only they were read: ${r.stderr}`);
  assert.strictEqual(final.blocks, all.length, 'the snapshot counts the blocks of every run');
  await assertContent(id, ref);
  return recs;
}

/**
 * One crash and its resume: `first` is the run that is killed ({ args, target, signal, ready,
 * slow: the emulator whose latency holds the run }), `again` (optional) a resume of it that is
 * killed too, `resume` the arguments the resumes add --resume and --done to.
 */
async function crash(command, { first, again, resume, ref, reads }) {
  const known = new Set((await snapshots(dst)).map((x) => x.SnapshotId));
  const killed = async (args, { target, signal, ready, slow }, resumed) => {
    await latency(slow, slow === src ? LIST_LATENCY_MS : PUT_LATENCY_MS);
    let r;
    try {
      r = await killMidway(command, args, { target, signal, ready: await ready() });
    } finally {
      await latency(slow, 0);
    }
    return { r, id: await assertFailedSafely(r, { command, target, signal, ref, known, resumed }) };
  };
  const { r, id } = await killed(first.args, first);
  assert.ok(blocks(journal(r.journal)).length > 0, `killed midway: blocks were put: ${r.what}`);
  const journals = [r.journal];
  if (again) {
    const next = await killed([...resume, '--resume', id, '--done', r.journal], again, id);
    assert.strictEqual(next.id, id);
    journals.push(next.r.journal);
  }
  return assertResumes(command, resume, id, journals, { ref, reads });
}

const putsDst = (count) => async () => puts(count);
const listing = (op) => () => calling(src, op);

test('ebs-upload: file-blocks killed midway; the resume puts the rest', () =>
  crash('ebs-upload', {
    first: { args: ['--endpoint-url', dst.url, '-j', '2', '--description', 'crash', s.img], target: 'file-blocks', ready: putsDst(4), slow: dst },
    resume: ['--endpoint-url', dst.url, '-j', '2', s.img],
    ref: s.imgRef,
  }));

test('ebs-upload: ebs-put killed midway, then the resume\'s skip; a second resume with both journals finishes', () =>
  crash('ebs-upload', {
    first: { args: ['--endpoint-url', dst.url, '-j', '2', s.img], target: 'ebs-put', ready: putsDst(4), slow: dst },
    again: { target: 'skip', ready: putsDst(3), slow: dst },
    resume: ['--endpoint-url', dst.url, '-j', '2', s.img],
    ref: s.imgRef,
  }));

for (const signal of ['SIGKILL', 'SIGTERM']) {
  test(`ebs-upload: the script itself gets ${signal} midway; the pipeline stops, and the resume finishes`, () =>
    crash('ebs-upload', {
      first: { args: ['--endpoint-url', dst.url, '-j', '2', s.img], target: 'script', signal, ready: putsDst(4), slow: dst },
      resume: ['--endpoint-url', dst.url, '-j', '2', s.img],
      ref: s.imgRef,
    }));
}

// The copies are --full-copy (zero blocks put and listed); the resumes take that from the journal.
const copyArgs = () => ['--dest-endpoint-url', dst.url, '-j', '2', s.parent];
const copyFirst = (more) => ({ args: ['--full-copy', '--description', 'crash', ...copyArgs()], slow: dst, ready: putsDst(4), ...more });

test('ebs-copy: ebs-blocks killed while listing, before a snapshot was started; nothing to resume, a new run copies', async () => {
  const known = new Set((await snapshots(dst)).map((x) => x.SnapshotId));
  await latency(src, LIST_LATENCY_MS);
  let r;
  try {
    r = await killMidway('ebs-copy', copyArgs(), { target: 'ebs-blocks', ready: await listing('ListSnapshotBlocks')() });
  } finally {
    await latency(src, 0);
  }
  assert.strictEqual(await assertFailedSafely(r, { command: 'ebs-copy', target: 'ebs-blocks', ref: s.parentRef, known }), undefined);
  assert.deepStrictEqual((await snapshots(dst)).filter((x) => !known.has(x.SnapshotId)), [], 'no snapshot was started');
  await assertContent(completedId(await must(`ebs-copy ${copyArgs().join(' ')}`)), s.parentRef);
});

test('ebs-copy: ebs-get killed midway, then ebs-blocks in the resume\'s listing; a second resume finishes, zero blocks listed', async () => {
  const recs = await crash('ebs-copy', {
    first: copyFirst({ target: 'ebs-get' }),
    again: { target: 'ebs-blocks', ready: listing('ListSnapshotBlocks'), slow: src },
    resume: copyArgs(),
    ref: s.parentRef,
    reads: true,
  });
  const id = recs.find((x) => x.type === 'snapshot').snapshotId;
  assert.deepStrictEqual((await listAll(dst.ebs(), id)).map((b) => b.BlockIndex), (await listAll(src.ebs(), s.parent)).map((b) => b.BlockIndex), '--full-copy carried over');
});

test('ebs-copy: ebs-put killed midway; a resume from another snapshot is refused, from the same one finishes, and once more has nothing to do', async () => {
  const known = new Set((await snapshots(dst)).map((x) => x.SnapshotId));
  await latency(dst, PUT_LATENCY_MS);
  let r;
  try {
    r = await killMidway('ebs-copy', copyFirst().args, { target: 'ebs-put', ready: puts(4) });
  } finally {
    await latency(dst, 0);
  }
  const id = await assertFailedSafely(r, { command: 'ebs-copy', target: 'ebs-put', ref: s.parentRef, known });
  const before = await requests(dst);
  const wrong = await sh(`ebs-copy --dest-endpoint-url ${dst.url} --resume ${id} --done ${r.journal} ${s.child} > ${file('wrong.journal')}`, { env });
  assert.strictEqual(wrong.code, 4, describe(wrong));
  assert.match(wrong.stderr, new RegExp(`the journal's run read ${s.parent}, this stream is of ${s.child}: resume from the same source`), describe(wrong));
  assert.strictEqual((await requests(dst)).PutSnapshotBlock, before.PutSnapshotBlock, 'nothing was put');
  const done = file('done.journal');
  fs.writeFileSync(done, (await assertResumes('ebs-copy', copyArgs(), id, [r.journal], { ref: s.parentRef, reads: true })).map((x) => `${JSON.stringify(x)}\n`).join(''));
  const late = await sh(`ebs-copy ${copyArgs().join(' ')} --resume ${id} --done ${r.journal} --done ${done} > ${file('late.journal')}`, { env });
  assert.strictEqual(late.code, 1, describe(late));
  assert.match(late.stderr, new RegExp(`ebs-copy: ${id} was completed by the run of ${done}: nothing to resume`), describe(late));
  assert.doesNotMatch(late.stderr, /left pending/, describe(late));
});

for (const signal of ['SIGKILL', 'SIGTERM']) {
  test(`ebs-copy: the script itself gets ${signal} midway; the pipeline stops, and the resume finishes`, () =>
    crash('ebs-copy', { first: copyFirst({ target: 'script', signal }), resume: copyArgs(), ref: s.parentRef, reads: true }));
}

const syncArgs = () => ['--dest-endpoint-url', dst.url, '-j', '2', s.parent, s.child, s.parentCopy];
const syncFirst = (more) => ({ args: ['--description', 'crash', ...syncArgs()], slow: dst, ready: putsDst(4), ...more });

for (const [first, again, op] of [['ebs-get', 'ebs-blocks', 'ListSnapshotBlocks'], ['ebs-put', 'delta', 'ListChangedBlocks']]) {
  test(`ebs-sync: ${first} killed midway, then ${again} in the resume's listing; a second resume finishes`, () =>
    crash('ebs-sync', {
      first: syncFirst({ target: first }),
      again: { target: again, ready: listing(op), slow: src },
      resume: syncArgs(),
      ref: s.childRef,
      reads: true,
    }));
}

for (const signal of ['SIGKILL', 'SIGTERM']) {
  test(`ebs-sync: the script itself gets ${signal} midway; the pipeline stops, and the resume finishes`, () =>
    crash('ebs-sync', { first: syncFirst({ target: 'script', signal }), resume: syncArgs(), ref: s.childRef, reads: true }));
}

test('ebs-upload --resume of a file changed since: a journaled block now other data, or zeros, is put again', async () => {
  const first = file('first.journal');
  const r = await sh(`file-blocks ${s.img} | head -c 6000000 | ebs-put --endpoint-url ${dst.url} > ${first}`, { env });
  assert.strictEqual(r.code, 3, describe(r));
  const id = journal(first)[0].snapshotId;
  assert.deepStrictEqual(blocks(journal(first)).slice(0, 3), [0, 1, 2], 'blocks 0 to 2 were put');
  // Block 0 becomes zeros, block 1 other data.
  const changed = file('changed.img');
  fs.copyFileSync(s.img, changed);
  const fd = fs.openSync(changed, 'r+');
  fs.writeSync(fd, Buffer.alloc(BLOCK), 0, BLOCK, 0);
  fs.writeSync(fd, Buffer.alloc(BLOCK, 1), 0, BLOCK, BLOCK);
  fs.closeSync(fd);
  const ref = file('changed.ref');
  fs.copyFileSync(changed, ref);
  fs.truncateSync(ref, 1 << 30);
  const again = file('again.journal');
  await must(`ebs-upload --endpoint-url ${dst.url} --resume ${id} --done ${first} ${changed} > ${again}`);
  assert.deepStrictEqual(blocks(journal(again)).slice(0, 2), [0, 1], 'the changed blocks were put again');
  assert.ok(!blocks(journal(again)).includes(2), 'the unchanged one was not');
  await assertContent(id, ref);
});

test('--full-copy: ebs-copy lists the source\'s zero blocks (without it, it does not); ebs-sync lists the child\'s', async () => {
  const listed = async (emu, id) => (await listAll(emu.ebs(), id)).map((b) => b.BlockIndex);
  const zerosOf = (r) => records(r).filter((x) => x.type === 'block' && x.zero).map((x) => x.index);
  // The parent's copy at the destination was made with --full-copy.
  const zeros = zerosOf(s.parentCopyRun);
  assert.ok(zeros.length > 0, `the source lists zero blocks${describe(s.parentCopyRun)}`);
  const source = await listed(src, s.parent);
  assert.deepStrictEqual(await listed(dst, s.parentCopy), source);
  await assertContent(s.parentCopy, s.parentRef);
  const plain = completedId(await must(`ebs-copy --dest-endpoint-url ${dst.url} ${s.parent}`));
  assert.deepStrictEqual(await listed(dst, plain), source.filter((i) => !zeros.includes(i)));

  const synced = await must(`ebs-sync --dest-endpoint-url ${dst.url} --full-copy ${s.parent} ${s.child} ${s.parentCopy}`);
  assert.ok(zerosOf(synced).length > 0, `the child's own blocks include zero blocks${describe(synced)}`);
  const id = completedId(synced);
  assert.deepStrictEqual(await listed(dst, id), await listed(src, s.child));
  await assertContent(id, s.childRef);
});

test('--resume and --done: usage errors (status 2) before anything runs', async () => {
  const j = file('some.journal');
  fs.writeFileSync(j, '');
  const cases = [
    [`ebs-copy --done ${j} ${s.parent}`, /--done goes with --resume/],
    [`ebs-upload --resume snap-0123456789abcdef0 ${s.img}`, /--resume needs the earlier runs' journals/],
    [`ebs-upload --resume snap-0123456789abcdef0 --done ${j} --description x ${s.img}`, /--description is given when a snapshot starts/],
    [`ebs-copy --resume snap-0123456789abcdef0 --resume snap-0123456789abcdef1 --done ${j} ${s.parent}`, /--resume is given once/],
    [`ebs-sync --resume snap-0123456789abcdef0 --done ${j} a b c >> ${j}`, new RegExp(`the output is the journal ${j}`)],
    [`ebs-download --resume snap-0123456789abcdef0 ${s.parent} x`, /unknown option --resume/],
  ];
  for (const [script, message] of cases) {
    const r = await sh(script, { env });
    assert.strictEqual(r.code, 2, describe(r));
    assert.match(r.stderr, message, describe(r));
  }
  for (const c of ['ebs-upload', 'ebs-copy', 'ebs-sync']) {
    const help = (await must(`${c} --help`)).stdout.toString();
    for (const flag of ['--resume', '--done JOURNAL', '--full-copy']) assert.ok(help.includes(flag), `${c} --help documents ${flag}`);
  }
});
