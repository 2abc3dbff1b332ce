'use strict';
// bin/ebs-fanout against two real ebs-emulators: one read into a snapshot at each destination,
// a destination that refuses at the start or midway, the journals kept and the printed resume
// command run as printed, and a FIFO or stdin read with --size. Every snapshot made is
// downloaded and compared byte for byte with what went in.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { sh, ok, describe, tmpdir } = require('./lib/run');
const { startEmulator, emulatorEnv } = require('./lib/emulator');
const { records, assertHolds, patternImage } = require('./lib/compositions');

const BLOCK = 524288;
const work = tmpdir('sluice-fanout-');
let n = 0;
const file = (name) => path.join(work, `${n++}-${name}`);

let src;
let dst;
let env;
test.before(async () => {
  [src, dst] = await Promise.all([0, 1].map(() => startEmulator(['--completion-ms', '50', '--no-quotas'])));
  env = emulatorEnv(src);
});
test.after(async () => {
  await Promise.all([src.stop(), dst.stop()]);
  fs.rmSync(work, { recursive: true, force: true });
});

const run = (script, more) => sh(script, { env: { ...env, ...more } });
const must = (script, more) => ok(script, { env: { ...env, ...more } });

/** A patterned image with a hole, a zeroed block and, unless told, a partial last block. */
const image = (pattern, size) => patternImage(file(`${pattern}.img`), pattern, size);

/** Downloads snapshot `id` from `emu` and checks that it holds `img`, then only zeros up to whole GiB. */
async function assertSnapshotHolds(emu, id, img) {
  const out = file(`${id}.img`);
  await must(`ebs-download --endpoint-url ${emu.url} ${id} ${out}`);
  await assertHolds(out, img);
}

/**
 * An HTTP proxy in front of `emu` that passes the first `puts` PutSnapshotBlock requests (and
 * every other call), then answers every request 403 AccessDeniedException, as an endpoint whose
 * permission is taken away midway. `restore()` lets everything through again.
 */
async function refusingProxy(emu, puts) {
  const target = new URL(emu.url);
  let left = puts;
  const server = http.createServer((req, res) => {
    if (/^\/snapshots\/[^/]+\/blocks\/\d+$/.test(req.url) && req.method === 'PUT') left--;
    if (left < 0) {
      req.resume();
      req.on('end', () => {
        res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException' });
        res.end(JSON.stringify({ message: 'access to the endpoint was taken away' }));
      });
      return;
    }
    const forward = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (reply) => {
      res.writeHead(reply.statusCode, reply.headers);
      reply.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    restore: () => (left = Infinity),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test('ebs-fanout: one file into a snapshot at each of two endpoints, partial last block kept', async () => {
  const img = image('every3rd4th', 3 * BLOCK + 777);
  const r = await must(`ebs-fanout ${img} --to ${src.url} --to ${dst.url}`);
  const done = records(r);
  assert.strictEqual(done.length, 2, describe(r));
  for (const [i, emu] of [src, dst].entries()) {
    assert.strictEqual(done[i].status, 'completed');
    await assertSnapshotHolds(emu, done[i].snapshotId, img);
  }
  // From a snapshot, too: the copy at the destination reads back as the source.
  const again = records(await must(`ebs-fanout ${done[0].snapshotId} --to ${dst.url}`));
  await assertSnapshotHolds(dst, again[0].snapshotId, img);
});

test('ebs-fanout: a destination that refuses does not stop the others; the status is its failure; no journal is left', async () => {
  const full = await startEmulator(['--quota', 'pending=0']);
  const tmp = file('tmp');
  fs.mkdirSync(tmp);
  try {
    const img = image('every4th', 2 * BLOCK);
    const r = await run(`ebs-fanout ${img} --to ${full.url} --to ${dst.url}`, { TMPDIR: tmp });
    assert.strictEqual(r.code, 1, describe(r));
    assert.match(r.stderr, new RegExp(`ebs-fanout: --to ${full.url}: ebs-put ended with status 1 before a snapshot was started\n`));
    const done = records(r);
    assert.strictEqual(done.length, 1, describe(r));
    await assertSnapshotHolds(dst, done[0].snapshotId, img);
    // Nothing to resume: the temporary journals are gone.
    assert.deepStrictEqual(fs.readdirSync(tmp), [], describe(r));
  } finally {
    await full.stop();
  }
});

test('ebs-fanout: a destination refused midway is finished by the resume command it prints, from the kept journal', async () => {
  const img = image('every2nd');
  for (const keep of ['--journal-dir', 'TMPDIR']) {
    const proxy = await refusingProxy(dst, 2);
    const dir = file('journals');
    try {
      // One put at a time, so the two that pass are blocks 0 and 1.
      const flags = keep === 'TMPDIR' ? '' : `--journal-dir ${dir}`;
      if (keep === 'TMPDIR') fs.mkdirSync(dir);
      const r = await run(`ebs-fanout -j 1 ${flags} ${img} --to ${src.url} --to ${proxy.url}`, keep === 'TMPDIR' ? { TMPDIR: dir } : {});
      assert.strictEqual(r.code, 1, describe(r));
      const done = records(r);
      assert.deepStrictEqual(done.map((x) => x.status), ['completed'], `${keep}: the other destination completed${describe(r)}`);
      if (keep === '--journal-dir') await assertSnapshotHolds(src, done[0].snapshotId, img);

      const hint = new RegExp(`^ebs-fanout: --to ${proxy.url}: ebs-put ended with status 1; (snap-[0-9a-f]+) is left pending\\. To finish it, read the same input again:\\n  (.*)$`, 'm');
      const [, id, resume] = hint.exec(r.stderr) ?? assert.fail(`${keep}: no resume command${describe(r)}`);
      const port = new URL(proxy.url).port;
      const journal = keep === 'TMPDIR' ? path.join(dir, fs.readdirSync(dir)[0], `2-127.0.0.1-${port}.journal`) : path.join(dir, `2-127.0.0.1-${port}.journal`);
      assert.deepStrictEqual(records({ stdout: fs.readFileSync(journal) }).map((x) => x.index ?? x.status), ['pending', 0, 1], `${keep}: ${journal}`);
      if (keep === '--journal-dir') assert.ok(fs.existsSync(path.join(dir, `1-127.0.0.1-${new URL(src.url).port}.journal`)), 'the completed one is kept too');
      else assert.deepStrictEqual(fs.readdirSync(path.dirname(journal)), [path.basename(journal)], 'only the journal needed to resume is left');

      proxy.restore();
      await must(resume);
      const resumed = `${journal.slice(0, -'.journal'.length)}.resumed.journal`;
      const final = records({ stdout: fs.readFileSync(resumed) }).find((x) => x.type === 'snapshot' && x.status === 'completed');
      assert.deepStrictEqual([final?.snapshotId, final?.blocks], [id, 5], `${keep}: ${resume}`);
      await assertSnapshotHolds(dst, id, img);
    } finally {
      await proxy.close();
    }
  }
});

test('ebs-fanout: --journal-dir refuses to overwrite an earlier journal', async () => {
  const dir = file('journals');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, '1-us-east-1.journal'), '');
  const r = await run(`ebs-fanout --journal-dir ${dir} ${image('every4th')} --to us-east-1`);
  assert.strictEqual(r.code, 2, describe(r));
  assert.match(r.stderr, /^ebs-fanout: \S+\/1-us-east-1\.journal exists: give another --journal-dir\n/);
});

test('ebs-fanout: a FIFO or stdin needs --size, which every destination gets', async () => {
  const img = image('every');
  const fifo = file('fifo');
  await must(`mkfifo ${fifo}`);
  for (const source of [fifo, '-']) {
    const refused = await run(`ebs-fanout ${source} --to ${dst.url} < /dev/null`);
    assert.strictEqual(refused.code, 2, describe(refused));
    assert.match(refused.stderr, /^ebs-fanout: \S+ gives no size before its end: give --size GiB\n/);
  }
  // The writer opens the FIFO itself, so that it cannot outlive the timeout if nothing reads.
  const r = await must(`{ timeout 60 cp ${img} ${fifo} & } && ebs-fanout --size 2 ${fifo} --to ${src.url} --to ${dst.url}`);
  const done = records(r);
  assert.deepStrictEqual(done.map((x) => [x.status, x.volumeSize]), [['completed', 2], ['completed', 2]], describe(r));
  for (const [i, emu] of [src, dst].entries()) {
    const out = file('from-fifo.img');
    await must(`ebs-download --endpoint-url ${emu.url} ${done[i].snapshotId} ${out}`);
    await must(`cmp -n ${fs.statSync(img).size} ${img} ${out}`);
  }
  const [fromStdin] = records(await must(`ebs-fanout --size 1 - --to ${dst.url} < ${img}`));
  assert.strictEqual(fromStdin.status, 'completed');
  await assertSnapshotHolds(dst, fromStdin.snapshotId, img);
});
