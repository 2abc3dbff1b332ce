'use strict';
// s3-copy's answer to a source replaced while it is copied. Every copy call names the source's
// ETag (x-amz-copy-source-if-match), and S3 answers 412 PreconditionFailed when the source is
// another object by then; moto ignores that header, so a proxy in front of it holds each copy
// to it as S3 does. The copy is then made again, once, from the new version; the destination
// is never a mix of two versions, and a multipart copy that failed is aborted.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const http = require('node:http');
const { HeadObjectCommand, ListMultipartUploadsCommand } = require('@aws-sdk/client-s3');
const { sh, describe: account } = require('./lib/run');
const { startMoto } = require('./lib/moto');
const { initDigest } = require('../dist/core/digest.js');
const { S3Store } = require('../dist/core/store-s3.js');
const { s3Client } = require('../dist/core/store-s3-client.js');
const { copyServerSide } = require('../dist/core/store-s3-copy.js');
const { NotFoundError, StoreError } = require('../dist/core/store.js');

const MIB = 1 << 20;
const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');
let moto;
let proxy;
let buckets = 0;

/** The S3 call a request makes, by its method, query and copy source. */
function opOf(req, url) {
  const copy = req.headers['x-amz-copy-source'] !== undefined;
  if (req.method === 'PUT' && copy) return url.searchParams.has('partNumber') ? 'UploadPartCopy' : 'CopyObject';
  if (req.method === 'POST') return url.searchParams.has('uploads') ? 'CreateMultipartUpload' : 'CompleteMultipartUpload';
  if (req.method === 'DELETE' && url.searchParams.has('uploadId')) return 'AbortMultipartUpload';
  return { HEAD: 'HeadObject', GET: 'GetObject', PUT: 'PutObject' }[req.method] ?? req.method;
}

function preconditionFailed(res) {
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message>' +
    `<Condition>x-amz-copy-source-If-Match</Condition><RequestId>${crypto.randomBytes(8).toString('hex').toUpperCase()}</RequestId><HostId>proxy</HostId></Error>`;
  res.writeHead(412, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), 'x-amz-request-id': 'PROXY412' });
  res.end(body);
}

/**
 * An HTTP proxy in front of moto that holds CopyObject and UploadPartCopy to their
 * x-amz-copy-source-if-match: a source whose ETag is another by then gets 412, as from S3. Copies
 * are checked and passed on one at a time, so that a check and the copy it lets through see one
 * source, as on S3. `beforeCopy(entry)`, when set, runs before each copy's check (and may replace
 * the source). `log` holds { op, source, part, status } for every request.
 */
async function preconditionProxy(target) {
  const client = s3Client({ endpoint: target });
  const p = { log: [], beforeCopy: undefined };
  let copies = Promise.resolve();
  const pass = (req, res, entry) =>
    new Promise((resolve) => {
      const up = http.request(new URL(req.url, target), { method: req.method, headers: req.headers }, (reply) => {
        entry.status = reply.statusCode;
        res.writeHead(reply.statusCode, reply.headers);
        reply.pipe(res);
        reply.on('end', resolve);
      });
      up.on('error', (err) => (res.destroy(err), resolve()));
      req.pipe(up);
    });
  const copy = async (req, res, entry) => {
    await p.beforeCopy?.(entry);
    const [, bucket, key, versionId] = /^\/?([^/]+)\/([^?]+)(?:\?versionId=(.*))?$/.exec(req.headers['x-amz-copy-source']);
    const current = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: decodeURIComponent(key), VersionId: versionId && decodeURIComponent(versionId) })).catch(() => undefined);
    if (current && req.headers['x-amz-copy-source-if-match'] !== current.ETag) {
      entry.status = 412;
      req.resume();
      return preconditionFailed(res);
    }
    await pass(req, res, entry);
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const source = req.headers['x-amz-copy-source'];
    const entry = { op: opOf(req, url), source: source && decodeURIComponent(source), part: url.searchParams.has('partNumber') ? Number(url.searchParams.get('partNumber')) : undefined, status: undefined };
    p.log.push(entry);
    if (source === undefined) return void pass(req, res, entry);
    copies = copies.then(() => copy(req, res, entry)).catch((err) => res.destroy(err));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(p, {
    url: `http://127.0.0.1:${server.address().port}`,
    ops: () => p.log.map((e) => `${e.op}${e.part === undefined ? '' : ` ${e.part}`} ${e.status}`),
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(resolve))),
  });
}

before(async () => {
  await initDigest();
  moto = await startMoto();
  moto.useEnv();
  proxy = await preconditionProxy(moto.url);
});
after(async () => {
  await proxy?.close();
  await moto?.stop();
});

/**
 * A source bucket holding `key` = `data` (put straight to moto, with its SHA-256), an empty
 * destination bucket, and stores of both that talk through the proxy (one client: S3 copies).
 */
async function buckets2(key, data) {
  const names = [`src-${buckets}`, `dst-${buckets++}`];
  for (const name of names) await moto.createBucket(name);
  const direct = new S3Store(names[0], '');
  await direct.put(key, data);
  proxy.log.length = 0;
  proxy.beforeCopy = undefined;
  return { direct, from: new S3Store(names[0], '', { endpoint: proxy.url }), to: new S3Store(names[1], '', { endpoint: proxy.url }), dst: names[1] };
}

/** A beforeCopy that puts the next of `versions` in place of the source at each copy call `when` picks. */
function replacing(direct, key, versions, when = () => true) {
  let seen = 0;
  return async (entry) => {
    if (versions.length && when(entry, seen++)) await direct.put(key, versions.shift());
  };
}

async function uploadsLeft(to, bucket) {
  return (await to.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
}

const MULTIPART = { multipartThreshold: 5 * MIB, partSize: 5 * MIB };

describe('s3-copy: a source replaced while it is copied', () => {
  it('CopyObject: replaced after its HEAD, the copy gets 412 and is made again, whole, from the new version', async () => {
    const first = crypto.randomBytes(100_000);
    const second = crypto.randomBytes(70_000);
    const { direct, from, to } = await buckets2('obj', first);
    proxy.beforeCopy = replacing(direct, 'obj', [second]);
    const copied = await copyServerSide(from, to, 'obj');
    assert.deepStrictEqual(proxy.ops(), ['HeadObject 200', 'CopyObject 412', 'HeadObject 200', 'CopyObject 200']);
    assert.strictEqual(copied.size, second.length);
    assert.strictEqual(copied.sha256, sha256(second));
    const got = await to.get('obj');
    assert.ok(got.data.equals(second), 'the destination holds the new version');
    assert.strictEqual(got.info.sha256, sha256(second), 'with its own SHA-256');
  });

  it('UploadPartCopy: replaced after a part was copied, the upload is aborted and the copy made again from the new version, never a mix', async () => {
    // One size: a mix of the two would have the size of either.
    const first = crypto.randomBytes(12 * MIB);
    const second = crypto.randomBytes(12 * MIB);
    const { direct, from, to, dst } = await buckets2('big', first);
    // The first part is copied from the first version; then the source is replaced.
    proxy.beforeCopy = replacing(direct, 'big', [second], (entry, seen) => seen === 1);
    const copied = await copyServerSide(from, to, 'big', MULTIPART);
    const ops = proxy.ops();
    const parts = (upload) => ops.filter((op) => op.startsWith('UploadPartCopy')).slice(upload * 3, upload * 3 + 3).map((op) => op.split(' ')[2]).sort();
    assert.deepStrictEqual(parts(0), ['200', '412', '412'], ops.join(', '));
    assert.deepStrictEqual(parts(1), ['200', '200', '200'], ops.join(', '));
    assert.deepStrictEqual(ops.filter((op) => !op.startsWith('UploadPartCopy')), ['HeadObject 200', 'CreateMultipartUpload 200', 'AbortMultipartUpload 204', 'HeadObject 200', 'CreateMultipartUpload 200', 'CompleteMultipartUpload 200']);
    assert.strictEqual(copied.parts, 3);
    assert.strictEqual(copied.sha256, sha256(second));
    const got = await to.get('big');
    assert.ok(got.data.equals(second), 'the destination holds the new version, every part of it');
    assert.deepStrictEqual(await uploadsLeft(to, dst), [], 'the first upload was aborted');
  });

  for (const [how, opts, size] of [['CopyObject', {}, 1000], ['UploadPartCopy', MULTIPART, 11 * MIB]]) {
    it(`${how}: replaced again during the second try, the copy fails saying so, and nothing is left at the destination`, async () => {
      const { direct, from, to, dst } = await buckets2('busy', crypto.randomBytes(size));
      proxy.beforeCopy = replacing(direct, 'busy', [crypto.randomBytes(size), crypto.randomBytes(size)], (entry) => entry.part === undefined || entry.part === 1);
      await assert.rejects(copyServerSide(from, to, 'busy', opts), (err) => {
        assert.ok(err instanceof StoreError, `${err}`);
        assert.match(err.message, new RegExp(`^s3://${from.bucket}/: object "busy": replaced while being copied, and again during a second try.*PreconditionFailed`), err.message);
        return true;
      });
      assert.strictEqual(proxy.log.filter((e) => e.op === 'HeadObject').length, 2, proxy.ops().join(', '));
      assert.strictEqual(proxy.log.filter((e) => e.op === 'AbortMultipartUpload').length, how === 'UploadPartCopy' ? 2 : 0, proxy.ops().join(', '));
      await assert.rejects(to.head('busy'), NotFoundError, 'nothing at the destination');
      assert.deepStrictEqual(await uploadsLeft(to, dst), [], 'no upload left');
    });
  }

  it('the command: status 1, the line and the object named, the other objects copied', async () => {
    const { direct, dst } = await buckets2('busy', crypto.randomBytes(1000));
    await direct.put('calm', Buffer.from('not replaced'));
    proxy.beforeCopy = replacing(direct, 'busy', [crypto.randomBytes(1000), crypto.randomBytes(1000)], (entry) => entry.source.endsWith('/busy'));
    const r = await sh(`s3-list s3://${direct.bucket} | s3-copy --endpoint-url ${proxy.url} --to s3://${dst}`, { env: moto.env });
    assert.strictEqual(r.code, 1, account(r));
    assert.match(r.stderr, new RegExp(`^s3-copy: stdin:\\d+: s3://${direct.bucket}/: object "busy": replaced while being copied, and again during a second try`, 'm'), account(r));
    assert.strictEqual((await new S3Store(dst, '').get('calm')).data.toString(), 'not replaced', account(r));
  });
});
