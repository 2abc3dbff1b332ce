'use strict';
// s3-put's resumable multipart uploads on moto: killed in the middle of an upload, a rerun with
// the same --uploads journal finishes the same upload id, sends only the parts the server lacks,
// and the object is byte-identical; --abort-stale ends what no rerun will continue.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { HeadObjectCommand, ListMultipartUploadsCommand, GetObjectCommand } = require('@aws-sdk/client-s3');
const { sh, ok, describe: account, tmpdir, BIN } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { s3Client } = require('../dist/core/store-s3-client.js');

const MIB = 1 << 20;
const SIZE = 48 * MIB + 12345; // 10 parts of 5 MiB
const PARTS = Math.ceil(SIZE / (5 * MIB));
const work = tmpdir('sluice-resume-');
let moto;
let proxy;
let client;
let n = 0;

/**
 * An HTTP proxy in front of moto that counts UploadPart calls by part number and holds each for
 * `partDelayMs`, so that a run can be stopped with parts on the server and parts not yet sent.
 * moto lists every multipart upload as begun on one fixed day in 2010: the proxy writes the
 * time of the listing instead, so that an age filter has something true to work on.
 */
function countingProxy(target) {
  const stats = { parts: [] };
  let partDelayMs = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const part = req.method === 'PUT' && url.searchParams.get('partNumber');
    const forward = () => {
      const upstream = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, async (reply) => {
        if (part && reply.statusCode === 200) stats.parts.push(Number(part));
        if (req.method !== 'GET' || !url.searchParams.has('uploads')) {
          res.writeHead(reply.statusCode, reply.headers);
          reply.pipe(res);
          return;
        }
        let body = '';
        for await (const chunk of reply) body += chunk;
        body = body.replace(/<Initiated>[^<]*<\/Initiated>/g, `<Initiated>${new Date().toISOString()}</Initiated>`);
        res.writeHead(reply.statusCode, { ...reply.headers, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    };
    if (part && partDelayMs) setTimeout(forward, partDelayMs);
    else forward();
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        stats,
        slow: (ms) => (partDelayMs = ms),
        close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
      });
    });
  });
}

/** A file of object frames (one object of SIZE random bytes, key "big.bin"), read by `s3-get ARGS`. */
async function framesOf(data, getArgs = '') {
  const dir = path.join(work, `src-${n++}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'big.bin'), data);
  const frames = path.join(work, `frames-${n++}`);
  await ok(`s3-list ${dir} | s3-get ${getArgs} > ${frames}`);
  return frames;
}

const bucket = () => `resume-${n++}`;

function putArgs(url, journal, extra = []) {
  return ['--part-size', '5M', '-j', '1', '--uploads', journal, '--endpoint-url', proxy.url, ...extra, url];
}

/** Runs s3-put on `frames` until the journal holds `parts` part lines, then sends it `signal`. */
async function stopMidway(frames, args, parts, signal) {
  const journal = args[args.indexOf('--uploads') + 1];
  const child = spawn(path.join(BIN, 's3-put'), args, { stdio: [fs.openSync(frames, 'r'), 'pipe', 'pipe'], env: { ...process.env, ...moto.env } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('close', (code, sig) => resolve({ code, sig })));
  for (let i = 0; ; i++) {
    const lines = fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').split('\n').filter((l) => l.includes('"type":"part"')) : [];
    if (lines.length >= parts) break;
    if (child.exitCode !== null || i > 2000) throw new Error(`s3-put ended before ${parts} parts were journaled:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill(signal);
  return { ...(await exited), stderr };
}

const journalLines = (file) => fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

async function uploadsLeft(name) {
  const res = await client.send(new ListMultipartUploadsCommand({ Bucket: name }));
  return res.Uploads ?? [];
}

async function objectSha(name, key) {
  const res = await client.send(new GetObjectCommand({ Bucket: name, Key: key }));
  const hash = crypto.createHash('sha256');
  for await (const chunk of res.Body) hash.update(chunk);
  return hash.digest('hex');
}

const sha = (data) => crypto.createHash('sha256').update(data).digest('hex');

describe('s3-put: resumable multipart uploads', () => {
  before(async () => {
    moto = await startMoto();
    proxy = await countingProxy(moto.url);
    moto.useEnv();
    client = s3Client({ endpoint: moto.url, region: 'us-east-1' });
  });
  after(async () => {
    await proxy?.close();
    await moto?.stop();
  });

  /**
   * Kills s3-put (SIGKILL) after four parts of the object `s3-get GETARGS` reads, reruns it with
   * the same journal, and checks what every resumed upload must hold; gives the rerun's output.
   */
  async function killAndResume(getArgs, continuing) {
    const name = bucket();
    await moto.createBucket(name);
    const data = crypto.randomBytes(SIZE);
    const frames = await framesOf(data, getArgs);
    const journal = path.join(work, `uploads-${n++}.log`);
    proxy.slow(150);
    const killed = await stopMidway(frames, putArgs(`s3://${name}/p`, journal), 4, 'SIGKILL');
    assert.strictEqual(killed.sig, 'SIGKILL');
    const started = journalLines(journal).filter((l) => l.type === 'upload');
    assert.strictEqual(started.length, 1);
    const uploadId = started[0].uploadId;
    const sentBefore = new Set(journalLines(journal).filter((l) => l.type === 'part').map((l) => l.part));
    assert.ok(sentBefore.size >= 4 && sentBefore.size < PARTS, `${sentBefore.size} parts journaled`);
    assert.deepStrictEqual((await uploadsLeft(name)).map((u) => u.UploadId), [uploadId], 'the killed upload is still on the server');

    proxy.slow(0);
    proxy.stats.parts.length = 0;
    const r = await ok(`s3-put ${putArgs(`s3://${name}/p`, journal).join(' ')} < ${frames}`, { env: moto.env });
    const resent = proxy.stats.parts;
    assert.deepStrictEqual(resent.filter((p) => sentBefore.has(p)), [], `parts ${[...sentBefore]} were not sent again (sent: ${resent})`);
    assert.deepStrictEqual([...new Set([...resent, ...sentBefore])].sort((a, b) => a - b), Array.from({ length: PARTS }, (_, i) => i + 1));
    assert.match(r.stderr, new RegExp(`${uploadId}: ${continuing(sentBefore.size)}`));
    const completed = journalLines(journal).filter((l) => l.type === 'upload' && l.state === 'completed');
    assert.deepStrictEqual(completed.map((l) => l.uploadId), [uploadId], 'the same upload id was completed');
    assert.strictEqual(await objectSha(name, 'p/big.bin'), sha(data));
    assert.deepStrictEqual(await uploadsLeft(name), []);
    const objects = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.type === 'object');
    assert.deepStrictEqual(objects.map((x) => [x.key, x.size, x.offset]), [['big.bin', SIZE, undefined]], 'one journal record for the object');
    assert.strictEqual(objects[0].sha256, crypto.createHash('sha256').update(data).digest('base64'));
  }

  it('killed midway (SIGKILL), the rerun finishes the same upload id, sends only the missing parts, byte-identical', async () => {
    await killAndResume('', (sent) => `continuing, ${sent} of ${PARTS} parts already sent`);
  });

  it('an object in pieces, killed midway (SIGKILL): the rerun continues its upload and sends only the pieces the server lacks', async () => {
    // Pieces of 5 MiB, as s3-get makes them of an object larger than --pieces-above; the
    // records carry no SHA-256 (the source file has none stored), so each part is checked alone.
    await killAndResume('--pieces-above 8M --piece-size 5M', (sent) => `${sent} of ${PARTS} parts were already sent`);
  });

  it('an object in pieces cut off without a journal: its upload is aborted', async () => {
    const name = bucket();
    await moto.createBucket(name);
    const frames = await framesOf(crypto.randomBytes(SIZE), '--pieces-above 8M --piece-size 5M');
    const r = await sh(`head -c ${24 * MIB} ${frames} | s3-put --endpoint-url ${proxy.url} s3://${name}/p`, { env: moto.env });
    assert.strictEqual(r.code, 3, account(r));
    assert.deepStrictEqual(await uploadsLeft(name), []);
  });

  it('a part whose journaled ETag does not match the server is sent again', async () => {
    const name = bucket();
    await moto.createBucket(name);
    const data = crypto.randomBytes(SIZE);
    const frames = await framesOf(data);
    const journal = path.join(work, `uploads-${n++}.log`);
    proxy.slow(150);
    await stopMidway(frames, putArgs(`s3://${name}/p`, journal), 3, 'SIGKILL');
    // The journal says part 1 had another ETag than the one the server holds.
    const lines = journalLines(journal).map((l) => (l.type === 'part' && l.part === 1 ? { ...l, etag: '"0123456789abcdef0123456789abcdef"' } : l));
    fs.writeFileSync(journal, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    proxy.slow(0);
    proxy.stats.parts.length = 0;
    await ok(`s3-put ${putArgs(`s3://${name}/p`, journal).join(' ')} < ${frames}`, { env: moto.env });
    assert.ok(proxy.stats.parts.includes(1), `part 1 sent again (sent: ${proxy.stats.parts})`);
    const journaled = new Set(lines.filter((l) => l.type === 'part').map((l) => l.part));
    for (const p of journaled) if (p !== 1) assert.ok(!proxy.stats.parts.includes(p), `part ${p} kept`);
    assert.strictEqual(await objectSha(name, 'p/big.bin'), sha(data));
  });

  it('an upload journaled for other content is aborted and the new content uploaded', async () => {
    const name = bucket();
    await moto.createBucket(name);
    const journal = path.join(work, `uploads-${n++}.log`);
    proxy.slow(150);
    await stopMidway(await framesOf(crypto.randomBytes(SIZE)), putArgs(`s3://${name}/p`, journal), 2, 'SIGKILL');
    const old = journalLines(journal)[0].uploadId;
    proxy.slow(0);
    const changed = crypto.randomBytes(SIZE);
    const r = await ok(`s3-put ${putArgs(`s3://${name}/p`, journal).join(' ')} < ${await framesOf(changed)}`, { env: moto.env });
    assert.match(r.stderr, new RegExp(`${old} was for other content`));
    assert.strictEqual(await objectSha(name, 'p/big.bin'), sha(changed));
    assert.deepStrictEqual(await uploadsLeft(name), [], 'the old upload was aborted');
  });

  it('SIGTERM keeps the upload with --uploads (status 143) and aborts it without', async () => {
    const name = bucket();
    await moto.createBucket(name);
    const frames = await framesOf(crypto.randomBytes(SIZE));
    proxy.slow(150);
    const journal = path.join(work, `uploads-${n++}.log`);
    const kept = await stopMidway(frames, putArgs(`s3://${name}/kept`, journal), 2, 'SIGTERM');
    assert.strictEqual(kept.code, 143, kept.stderr);
    assert.match(kept.stderr, /kept in .*a rerun with the same --uploads continues it/);
    assert.strictEqual((await uploadsLeft(name)).length, 1);

    // Without a journal: the same run, stopped once the server has parts of it.
    const args = ['--part-size', '5M', '-j', '1', '--endpoint-url', proxy.url, `s3://${name}/gone`];
    const child = spawn(path.join(BIN, 's3-put'), args, { stdio: [fs.openSync(frames, 'r'), 'ignore', 'pipe'], env: { ...process.env, ...moto.env } });
    const exited = new Promise((resolve) => child.on('close', resolve));
    const before = proxy.stats.parts.length;
    while (proxy.stats.parts.length < before + 2) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGTERM');
    assert.strictEqual(await exited, 143);
    const left = await uploadsLeft(name);
    assert.deepStrictEqual(left.map((u) => u.Key), ['kept/big.bin'], 'the upload without a journal was aborted');
    proxy.slow(0);
  });

  it('an upload the journal cannot record is aborted at once, and the journal\'s error reported', async () => {
    const name = bucket();
    await moto.createBucket(name);
    const frames = await framesOf(crypto.randomBytes(12 * MIB));
    const journal = path.join(work, `uploads-${n++}.log`);
    proxy.stats.parts.length = 0;
    // The journal opens, empty; its first line, written right after CreateMultipartUpload,
    // is over the file size limit: EFBIG, as a full disk gives ENOSPC.
    const r = await sh(`(ulimit -f 0 && exec s3-put ${putArgs(`s3://${name}/p`, journal).join(' ')}) < ${frames}`, { env: moto.env });
    assert.strictEqual(r.code, 1, account(r));
    assert.deepStrictEqual(await uploadsLeft(name), [], 'no upload is left on the server');
    assert.match(r.stderr, new RegExp(`${journal}: cannot write to the uploads journal: EFBIG`), account(r));
    assert.match(r.stderr, /multipart upload \S+ could not be journaled: aborting it/, account(r));
    assert.deepStrictEqual(proxy.stats.parts, [], 'no part was sent');
    assert.strictEqual(fs.statSync(journal).size, 0);
    await assert.rejects(client.send(new HeadObjectCommand({ Bucket: name, Key: 'p/big.bin' })), (err) => err.$metadata?.httpStatusCode === 404);
  });

  it('--abort-stale aborts old uploads under the URL, prints a record for each, and leaves recent ones', async () => {
    const name = bucket();
    await moto.createBucket(name);
    proxy.slow(150);
    await stopMidway(await framesOf(crypto.randomBytes(SIZE)), putArgs(`s3://${name}/a`, path.join(work, `uploads-${n++}.log`)), 1, 'SIGKILL');
    await stopMidway(await framesOf(crypto.randomBytes(SIZE)), putArgs(`s3://${name}/b`, path.join(work, `uploads-${n++}.log`)), 1, 'SIGKILL');
    proxy.slow(0);
    const young = await ok(`s3-put --abort-stale --endpoint-url ${proxy.url} s3://${name}/a`, { env: moto.env });
    assert.deepStrictEqual(young.stdout.toString().trim().split('\n').map((l) => JSON.parse(l).type), ['end'], 'nothing older than 24h');
    assert.strictEqual((await uploadsLeft(name)).length, 2);
    const r = await ok(`s3-put --abort-stale --older-than 0 --endpoint-url ${proxy.url} s3://${name}/a`, { env: moto.env });
    const recs = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.deepStrictEqual(recs.map((x) => [x.type, x.key, x.state]), [['upload', 'big.bin', 'aborted'], ['end', undefined, undefined]]);
    assert.deepStrictEqual((await uploadsLeft(name)).map((u) => u.Key), ['b/big.bin'], 'only the URL\'s uploads');
  });

  it('--abort-stale on a directory removes temporary files a killed put left, older than the age given', async () => {
    const store = path.join(work, `store-${n++}`);
    fs.mkdirSync(path.join(store, 'x'), { recursive: true });
    const old = path.join(store, 'x', '%.tmp.0123456789abcdef');
    const recent = path.join(store, '%.tmp.fedcba9876543210');
    fs.writeFileSync(old, 'partial');
    fs.writeFileSync(recent, 'partial');
    fs.writeFileSync(path.join(store, 'x', 'kept'), 'an object');
    const hourAgo = new Date(Date.now() - 2 * 3600 * 1000);
    fs.utimesSync(old, hourAgo, hourAgo);
    const r = await ok(`s3-put --abort-stale --older-than 1h ${store}`);
    const recs = r.stdout.toString().trim().split('\n').map((l) => JSON.parse(l));
    assert.deepStrictEqual(recs.map((x) => [x.type, x.key, x.uploadId]), [['upload', 'x/', '%.tmp.0123456789abcdef'], ['end', undefined, undefined]]);
    assert.ok(!fs.existsSync(old) && fs.existsSync(recent) && fs.existsSync(path.join(store, 'x', 'kept')));
  });

  it('--metadata is stored with each object; a journal line cut short by a crash is dropped', async () => {
    const name = bucket();
    await moto.createBucket(name);
    const data = crypto.randomBytes(SIZE);
    const journal = path.join(work, `uploads-${n++}.log`);
    fs.writeFileSync(journal, '{"type":"upload","state":"star');
    await ok(`s3-put ${putArgs(`s3://${name}/m`, journal, ['--metadata', 'team=db', '--metadata', 'tier=gold']).join(' ')} < ${await framesOf(data)}`, { env: moto.env });
    const head = await client.send(new HeadObjectCommand({ Bucket: name, Key: 'm/big.bin' }));
    assert.strictEqual(head.Metadata.team, 'db');
    assert.strictEqual(head.Metadata.tier, 'gold');
    assert.strictEqual(head.ContentLength, SIZE);
    assert.deepStrictEqual(journalLines(journal).filter((l) => l.type === 'upload').map((l) => l.state), ['started', 'completed']);
  });

  it('usage errors: bad sizes, durations and metadata exit 2', async () => {
    for (const args of ['--part-size 1M s3://b/p', '--part-size 6G s3://b/p', '--metadata novalue s3://b/p', '--abort-stale --older-than 3w s3://b/p', '--older-than 1h s3://b/p', '--abort-stale --uploads x s3://b/p']) {
      const r = await sh(`s3-put ${args} < /dev/null`);
      assert.strictEqual(r.code, 2, `s3-put ${args}${account(r)}`);
    }
  });
});
