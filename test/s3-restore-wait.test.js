'use strict';
// s3-restore's wait for restores that take a while, against a small fake S3 whose archived
// objects say ongoing-request="true" for a number of HEADs after RestoreObject (moto restores at
// once). The real command and the real SDK; every check counts requests, none measures time.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { sh, describe: account, BIN } = require('./lib/run');
const { startFakeS3 } = require('./lib/fake-s3-restore');
const { initDigest } = require('../dist/core/digest.js');
const { Encoder } = require('../dist/core/encode.js');
const { Decoder } = require('../dist/core/decode.js');
const { PAYLOAD } = require('../dist/core/records.js');

let fake;
let buckets = 0;

before(async () => {
  await initDigest();
  fake = await startFakeS3();
});
after(() => fake?.stop());

/** A stream of object records of `bucket`, with its trailer. */
function manifestOf(bucket, recs) {
  const enc = new Encoder();
  for (const rec of recs) enc.push({ type: 'object', ...rec, store: `s3://${bucket}/` });
  enc.end();
  return Buffer.concat(enc.take());
}

/** A fresh bucket holding `objects` ({ key, data?, listedClass?, ...fake put options }), and its manifest. */
function bucketWith(objects) {
  const bucket = `restore-${buckets++}`;
  const recs = [];
  for (const { key, data = Buffer.from(`data of ${key}`), listedClass, ...opts } of objects) {
    fake.put(bucket, key, data, opts);
    recs.push(listedClass === undefined ? { key, size: data.length } : { key, size: data.length, storageClass: listedClass });
  }
  return { bucket, manifest: manifestOf(bucket, recs) };
}

/**
 * Runs s3-restore on `manifest` against the fake. Resolves with its exit status, stderr, and
 * every record of its output with the state the fake had for that object when it arrived.
 * `whenRunning(child)` is called once it started.
 */
function restoreLive(bucket, manifest, flags, whenRunning) {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(BIN, 's3-restore'), ['--endpoint-url', fake.url, ...flags], { env: { ...process.env, ...fake.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const arrived = [];
    let pending = '';
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      const lines = (pending + d).split('\n');
      pending = lines.pop();
      for (const line of lines) {
        const rec = JSON.parse(line);
        arrived.push({ rec, state: rec.type === 'object' ? fake.object(bucket, rec.key).state : undefined });
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, arrived, script: `s3-restore ${flags.join(' ')}`, statuses: [code], stdout: Buffer.from(stdout) }));
    child.stdin.end(manifest);
    whenRunning?.(child);
  });
}

const keysOf = (arrived) => arrived.filter((a) => a.rec.type === 'object').map((a) => a.rec.key);
const requestsFor = (bucket, key) => fake.log.filter((line) => line.endsWith(` ${bucket}/${key}`));

describe('s3-restore waits for restores under way', () => {
  it('polls each object until readable and passes the records on in input order only then', async () => {
    const { bucket, manifest } = bucketWith([
      { key: 'a', restoringHeads: 3 },
      { key: 'b', restoringHeads: 1 },
      { key: 'warm', storageClass: 'STANDARD', listedClass: 'STANDARD' },
      { key: 'c', restoringHeads: 2, listedClass: 'GLACIER' },
    ]);
    const r = await restoreLive(bucket, manifest, ['--interval', '1']);
    assert.strictEqual(r.code, 0, account(r));
    assert.deepStrictEqual(keysOf(r.arrived), ['a', 'b', 'warm', 'c'], account(r));
    assert.strictEqual(r.arrived.at(-1).rec.type, 'end');
    for (const { rec, state } of r.arrived.filter((a) => a.rec.type === 'object')) assert.strictEqual(state, 'readable', `${rec.key} was passed on while its restore was ${state}`);
    for (const [key, n] of [['a', 3], ['b', 1], ['c', 2]]) {
      const obj = fake.object(bucket, key);
      assert.strictEqual(obj.restores, 1, `${key}: asked once`);
      // The HEAD before asking, one after, then polls until one says readable.
      assert.strictEqual(obj.heads, n + 2, `${key}: HEADs ${requestsFor(bucket, key).join(', ')}`);
    }
    assert.deepStrictEqual(requestsFor(bucket, 'warm'), [], 'a record listed as STANDARD costs no call');
  });

  it('--no-wait passes each record on once asked; a later run waits for what remains without asking again', async () => {
    const { bucket, manifest } = bucketWith([{ key: 'x', restoringHeads: 3 }, { key: 'y', restoringHeads: 3 }]);
    const asked = await restoreLive(bucket, manifest, ['--no-wait', '--interval', '1']);
    assert.strictEqual(asked.code, 0, account(asked));
    assert.deepStrictEqual(asked.arrived.filter((a) => a.rec.type === 'object').map((a) => [a.rec.key, a.state]), [['x', 'restoring'], ['y', 'restoring']], account(asked));
    for (const key of ['x', 'y']) assert.deepStrictEqual(requestsFor(bucket, key).map((l) => l.split(' ')[0]), ['HEAD', 'RESTORE', 'HEAD'], `${key}: no poll`);
    const waited = await restoreLive(bucket, manifest, ['--interval', '1']);
    assert.strictEqual(waited.code, 0, account(waited));
    assert.deepStrictEqual(waited.arrived.filter((a) => a.rec.type === 'object').map((a) => [a.rec.key, a.state]), [['x', 'readable'], ['y', 'readable']], account(waited));
    for (const key of ['x', 'y']) assert.strictEqual(fake.object(bucket, key).restores, 1, `${key}: a restore under way is not asked for again`);
  });

  it('polls every --interval seconds: at --interval 3, fewer HEADs than a run at --interval 1 beside it', async () => {
    const { bucket } = bucketWith([{ key: 'fast', restoringHeads: 1e9 }, { key: 'slow', restoringHeads: 1e9 }]);
    const one = (key) => manifestOf(bucket, [{ key }]);
    // Counted from when both poll, so that one starting later than the other does not count.
    const POLLS = 8;
    const polls = (key) => Math.max(0, fake.object(bucket, key).heads - 2);
    const children = [];
    let since;
    const counted = new Promise((resolve) => {
      fake.onRequest = () => {
        if (!since && polls('fast') > 0 && polls('slow') > 0) since = { fast: polls('fast'), slow: polls('slow') };
        if (!since || polls('fast') - since.fast < POLLS) return;
        fake.onRequest = undefined;
        resolve(polls('slow') - since.slow);
      };
    });
    const runs = [restoreLive(bucket, one('fast'), ['--interval', '1'], (c) => children.push(c)), restoreLive(bucket, one('slow'), ['--interval', '3'], (c) => children.push(c))];
    const slowPolls = await counted;
    for (const child of children) child.kill('SIGTERM');
    const [fast, slow] = await Promise.all(runs);
    assert.ok(slowPolls <= POLLS / 2, `--interval 3 polled ${slowPolls} times while --interval 1 polled ${POLLS} times`);
    for (const r of [fast, slow]) {
      assert.strictEqual(r.code, 143, account(r));
      assert.deepStrictEqual(keysOf(r.arrived), [], 'nothing passed on while restoring');
    }
  });

  it('a restore someone else started (RestoreAlreadyInProgress, 409) is waited for, not an error', async () => {
    const { bucket, manifest } = bucketWith([{ key: 'raced', restoringHeads: 2, restoredByOthers: true }]);
    const r = await restoreLive(bucket, manifest, ['--interval', '1']);
    assert.strictEqual(r.code, 0, account(r));
    assert.deepStrictEqual(r.arrived.filter((a) => a.rec.type === 'object').map((a) => [a.rec.key, a.state]), [['raced', 'readable']], account(r));
    assert.deepStrictEqual(requestsFor(bucket, 'raced').map((l) => l.split(' ')[0]), ['HEAD', 'RESTORE', 'HEAD', 'HEAD', 'HEAD']);
  });

  it('an object archived again while waiting (its restored copy expired) is asked for again, not polled forever', async () => {
    const { bucket, manifest } = bucketWith([{ key: 'lapsed', restoringHeads: 1, expiresFirstCopy: true }]);
    const r = await restoreLive(bucket, manifest, ['--interval', '1'], (child) => setTimeout(() => child.kill('SIGKILL'), 60_000).unref());
    assert.strictEqual(r.code, 0, account(r));
    assert.deepStrictEqual(r.arrived.filter((a) => a.rec.type === 'object').map((a) => [a.rec.key, a.state]), [['lapsed', 'readable']], account(r));
    assert.strictEqual(fake.object(bucket, 'lapsed').restores, 2);
    assert.match(r.stderr, /^s3-restore: stdin:1: "lapsed" is archived again .*asking for a restore again$/m);
  });
});

describe('s3-get of an archived object', () => {
  it('fails naming the key and saying to run s3-restore; after s3-restore it reads the data', async () => {
    const data = Buffer.from('cold bytes');
    const { bucket, manifest } = bucketWith([{ key: 'cold', data, restoringHeads: 1 }]);
    const flags = `--endpoint-url ${fake.url}`;
    const refused = await sh(`s3-get ${flags} > /dev/null`, { input: manifest, env: fake.env });
    assert.strictEqual(refused.code, 1, account(refused));
    assert.match(refused.stderr, /^s3-get: stdin:1: .*"cold".*archived.*run s3-restore first/m, account(refused));
    const r = await sh(`s3-restore --interval 1 ${flags} | s3-get ${flags}`, { input: manifest, env: fake.env });
    assert.strictEqual(r.code, 0, account(r));
    const dec = new Decoder({ command: 'test', source: 'stdout' });
    const recs = [];
    dec.push(r.stdout, recs);
    dec.finish();
    assert.deepStrictEqual(recs.map((rec) => [rec.key, rec[PAYLOAD]?.toString()]), [['cold', data.toString()]], account(r));
  });
});
