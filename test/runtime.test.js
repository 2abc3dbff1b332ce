'use strict';
// The command runtime as users meet it, through the real executables: quiet ends under `head`,
// signals, usage and --help, ids kept as strings, the sluice front end, no output lost at exit,
// and no binary frames on a terminal.
const test = require('node:test');
const assert = require('node:assert');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { sh, ok, describe, tmpdir, ROOT, BIN } = require('./lib/run');
const { COMMANDS } = require('../dist/commands.js');

const work = tmpdir();
const img = path.join(work, 'disk.img');
const manifest = path.join(work, 'blocks.ndjson');
const IMG_SIZE = 24 * 524288 + 1000;

test.after(() => fs.rmSync(work, { recursive: true, force: true }));

test.before(async () => {
  // Data in every block (no zero blocks), so every block carries a 512 KiB payload.
  await ok(`head -c ${IMG_SIZE} /dev/urandom > ${img}`);
  await ok(`node ${ROOT}/bench/lib/block-manifest.js 200000 > ${manifest}`);
});

test('| head -1 ends every stage of a pipeline quietly, with status 0', async () => {
  const pipelines = [
    `file-blocks ${img} | head -1`,
    `file-blocks ${img} | strip | head -1`,
    `file-blocks ${img} | progress -q | shard -n 1 -i 0 | strip | head -1`,
    `strip < ${manifest} | strip | head -1`,
    `file-blocks ${img} | head -c 100`,
  ];
  const runs = await Promise.all(pipelines.map((script) => sh(`${script} > /dev/null`)));
  for (const r of runs) {
    assert.strictEqual(r.statuses.length, r.script.split('|').length, describe(r));
    assert.ok(r.statuses.every((s) => s === 0), describe(r));
    assert.strictEqual(r.stderr, '', describe(r));
  }
});

/**
 * Starts a command with its stdout read and, if `feed` is given, its stdin written with records
 * until it exits. `streaming` resolves once it has written `bytes` bytes, or, for a command
 * that writes nothing until the end, once it has read `read` bytes of its input (more than a
 * pipe holds, so it is surely running, its signal handlers in place): no timing guesses.
 */
function startMidStream(args, { feed, bytes = 1 << 20, read } = {}) {
  const child = spawn(path.join(BIN, args[0]), args.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let seen = 0;
  let fed = 0;
  let onProgress = () => {};
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.on('error', () => {});
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stderr })));
  if (feed) {
    const write = () => {
      for (;;) {
        if (child.stdin.destroyed) return;
        const chunk = feed();
        // The callback runs once the chunk is in the pipe, that is, once the reader made room.
        const more = child.stdin.write(chunk, () => {
          fed += chunk.length;
          onProgress();
        });
        if (!more) break;
      }
      child.stdin.once('drain', write);
    };
    write();
  } else {
    child.stdin.end();
  }
  const streaming = new Promise((resolve) => {
    onProgress = () => {
      if (read !== undefined && fed >= read) resolve();
    };
    child.stdout.on('data', (d) => {
      seen += d.length;
      if (read === undefined && seen >= bytes) resolve();
    });
  });
  return { child, streaming, exited };
}

/** An endless block stream: a header, then block records with 64 KiB payloads. */
function endlessBlocks() {
  let index = -1;
  const payload = Buffer.alloc(65536, 7);
  return () => {
    index++;
    if (index === 0) return '{"type":"volume","format":1,"source":"endless","blockSize":524288}\n';
    return Buffer.concat([Buffer.from(JSON.stringify({ type: 'block', index, sha256: 'x', len: payload.length }) + '\n'), payload]);
  };
}

for (const [signal, status, word] of [
  ['SIGINT', 130, 'interrupted'],
  ['SIGTERM', 143, 'terminated'],
]) {
  test(`${signal} mid-stream ends a source, a transform and a sink with ${status} and one line`, async () => {
    const stages = [
      { name: 'file-blocks', args: ['file-blocks', '/dev/urandom'] },
      { name: 'strip', args: ['strip'], feed: endlessBlocks(), bytes: 20000 },
      { name: 'count', args: ['count'], feed: endlessBlocks(), read: 4 << 20 },
    ];
    for (const { name, args, feed, bytes, read } of stages) {
      const run = startMidStream(args, { feed, bytes, read });
      await Promise.race([run.streaming, run.exited]); // an early death fails below, not by a hang
      run.child.kill(signal);
      const r = await run.exited;
      assert.strictEqual(r.code, status, `${name}: exit ${r.code} (signal ${r.signal}), stderr: ${r.stderr}`);
      assert.strictEqual(r.stderr, `${name}: ${word}\n`, name);
    }
  });
}

/** Runs a bin directly (no shell), with empty stdin. */
function run(name, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(BIN, name), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end();
  });
}

test('an unknown option is a usage error (2) with the usage on stderr, for every command', async () => {
  await Promise.all(
    COMMANDS.map(async ({ name }) => {
      const r = await run(name, ['--no-such-option']);
      assert.strictEqual(r.status, 2, `${name}: exit ${r.status}, stderr: ${r.stderr}`);
      assert.strictEqual(r.stdout, '', name);
      assert.match(r.stderr, new RegExp(`^${name}: unknown option --no-such-option\\n\\nUsage: ${name}`), name);
      assert.match(r.stderr, /EXIT STATUS/, name);
    }),
  );
});

test('--help prints the usage on stdout and exits 0, for every command', async () => {
  const runs = COMMANDS.flatMap(({ name }) => ['--help', '-h'].map((flag) => ({ name, flag })));
  await Promise.all(
    runs.map(async ({ name, flag }) => {
      const r = await run(name, [flag]);
      assert.strictEqual(r.status, 0, `${name} ${flag}: exit ${r.status}, stderr: ${r.stderr}`);
      assert.strictEqual(r.stderr, '', name);
      assert.match(r.stdout, new RegExp(`^Usage: ${name}`), name);
      for (const section of ['Options:', 'Examples:', 'EXIT STATUS', '130']) assert.ok(r.stdout.includes(section), `${name} --help lacks ${section}`);
    }),
  );
});

test('ids stay strings: a name like 0012 is not turned into a number', async () => {
  fs.copyFileSync(img, path.join(work, '0012'));
  const header = async (script) => {
    const r = await ok(`cd ${work} && ${script} | head -1`);
    return JSON.parse(r.stdout.toString());
  };
  assert.strictEqual((await header(`file-blocks --source 0012 ${img}`)).source, '0012');
  assert.strictEqual((await header(`file-blocks --source=007 ${img}`)).source, '007');
  assert.strictEqual((await header(`file-blocks 0012`)).source, '0012');
  assert.strictEqual((await header(`file-blocks --source 1e3 - < ${img}`)).source, '1e3');
});

test('sluice --help lists every command; sluice alone or with a wrong name is a usage error', () => {
  const r = spawnSync(path.join(BIN, 'sluice'), ['--help'], { encoding: 'utf8' });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /EXIT STATUS/);
  const section = r.stdout.slice(r.stdout.indexOf('\nCommands:\n'));
  const listed = section
    .slice(0, section.indexOf('\n\n', 1))
    .split('\n')
    .map((l) => /^ {2}([a-z0-9-]+) +\S/.exec(l))
    .filter(Boolean)
    .map((m) => m[1]);
  assert.deepStrictEqual(listed.sort(), COMMANDS.map((c) => c.name).sort());

  const bare = spawnSync(path.join(BIN, 'sluice'), [], { encoding: 'utf8' });
  assert.strictEqual(bare.status, 2);
  assert.strictEqual(bare.stdout, '');
  assert.match(bare.stderr, /^Usage: sluice/);
  const wrong = spawnSync(path.join(BIN, 'sluice'), ['no-such-command'], { encoding: 'utf8' });
  assert.strictEqual(wrong.status, 2);
  assert.match(wrong.stderr, /^sluice: unknown command "no-such-command"/);
});

test('sluice strip is strip: the same output, status and messages', async () => {
  for (const input of [`file-blocks ${img}`, `head -c 3000 ${manifest}`, `echo '[1]'`]) {
    const direct = await sh(`${input} | strip`);
    const via = await sh(`${input} | sluice strip`);
    assert.strictEqual(via.code, direct.code, describe(via));
    assert.ok(via.stdout.equals(direct.stdout), describe(via));
    assert.strictEqual(via.stderr, direct.stderr, describe(via));
  }
  const help = await sh('sluice strip --help');
  assert.ok(help.stdout.equals((await sh('strip --help')).stdout));
});

test('no output is lost at exit, even when the reader is slow to start', async () => {
  const size = fs.statSync(manifest).size;
  // strip of a manifest writes it back byte for byte.
  for (const reader of ['wc -c', '(sleep 1; wc -c)']) {
    const r = await ok(`strip < ${manifest} | ${reader}`);
    assert.strictEqual(Number(r.stdout.toString().trim()), size, `strip | ${reader}`);
  }
  const framesFile = path.join(work, 'frames');
  await ok(`file-blocks ${img} > ${framesFile}`);
  const frames = fs.statSync(framesFile).size;
  assert.ok(frames > IMG_SIZE, 'every block is in the frames');
  const r = await ok(`file-blocks ${img} | (sleep 1; wc -c)`);
  assert.strictEqual(Number(r.stdout.toString().trim()), frames);
  const stripped = await ok(`file-blocks ${img} | strip | (sleep 1; wc -c)`);
  const expect = await ok(`strip < ${framesFile} | wc -c`);
  assert.strictEqual(stripped.stdout.toString(), expect.stdout.toString());
});

test('binary frames are not written to a terminal, by a source, a transform or a pass-through stage; a manifest is', async (t) => {
  if (spawnSync('script', ['--version']).status !== 0) {
    t.skip('script(1) is not installed: no terminal to test with');
    return;
  }
  // script(1) runs the command with a terminal as its stdout and returns its status (-e).
  const empty = path.join(work, 'empty.journal');
  fs.writeFileSync(empty, '');
  const onTerminal = (cmd) => sh(`script -qec ${JSON.stringify(`PATH=${BIN}:$PATH; ${cmd}`)} /dev/null`);
  // The pass-through stages write frames only when their input has them: they stop at the
  // first payload, before its record; the image has data in every block, so no block record
  // may reach the terminal.
  const passThrough = ['progress -q', `skip --done ${empty}`, 'shard -n 1 -i 0'];
  for (const cmd of [`file-blocks ${img}`, `file-blocks ${img} | zstd-chunk`, ...passThrough.map((p) => `file-blocks ${img} | ${p}`)]) {
    const r = await onTerminal(cmd);
    assert.strictEqual(r.code, 2, describe(r));
    const out = r.stdout.toString();
    assert.match(out, /stdout is a terminal/, describe(r));
    assert.ok(!out.includes('"type":"block"'), `no records written${describe(r)}`);
  }
  for (const cmd of [`file-blocks ${img} | strip | head -2`, ...passThrough.map((p) => `file-blocks ${img} | strip | ${p} | head -2`)]) {
    const r = await onTerminal(cmd);
    assert.strictEqual(r.code, 0, describe(r));
    assert.match(r.stdout.toString(), /"type":"block"/, describe(r));
  }
});
