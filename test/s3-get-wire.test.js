'use strict';
// s3-get reads objects from a plain-http endpoint with requests it signs and sends itself
// (src/core/store-s3-raw-get.ts), not through the SDK's client. moto does not check signatures,
// so this server does: it verifies each request's SigV4 signature as S3 does (written from the
// specification, lib/sigv4.js), serves ranges and If-Match as S3 does, and says whether a
// request came through the SDK (which adds amz-sdk-invocation-id) or not.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const http = require('node:http');
const { sh, describe } = require('./lib/run');
const { frames, decodeAll, PAYLOAD } = require('./lib/frames');
const { s3SignatureProblem } = require('./lib/sigv4');
const { initDigest } = require('../dist/core/digest.js');
const { Decoder } = require('../dist/core/decode.js');

const KEY = { id: 'AKIDEXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const REGION = 'us-east-1';
const env = { AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret, AWS_REGION: REGION, AWS_EC2_METADATA_DISABLED: 'true' };

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('base64');
const md5 = (data) => crypto.createHash('md5').update(data).digest('hex');

/** Objects by key: data, and what the server says of them. */
function objects() {
  const spec = {
    // Every key here needs escaping in a path, differently by each rule one might get wrong.
    "a b/ü+%.bin": { data: crypto.randomBytes(3 << 20), sha: true },
    "it's (1)*!~.txt": { data: Buffer.from('small, checked by its MD5 ETag\n'), sha: false },
    'deep/../looks/like/a/path': { data: crypto.randomBytes(100), sha: true },
    // Read in ranges (over the 8 MiB part size), and as pieces with --pieces-above 8M.
    'large.bin': { data: crypto.randomBytes(20 << 20), sha: true },
    empty: { data: Buffer.alloc(0), sha: false },
  };
  return new Map(Object.entries(spec));
}

// A listing page holds at most this many entries here, so that a listing takes several.
const PAGE = 2;

/** A ListObjectsV2 reply as S3 writes one asked for with encoding-type=url (a space as "+"). */
function listReply(stored, params, { brokenListing }) {
  const encode = (key) => encodeURIComponent(key).replace(/%20/g, '+').replace(/%2F/g, '/');
  const prefix = params.get('prefix') ?? '';
  const after = params.has('continuation-token') ? Buffer.from(params.get('continuation-token'), 'base64').toString() : params.get('start-after') ?? '';
  const all = [...stored.keys()].map((k) => `p/${k}`).filter((k) => k.startsWith(prefix) && Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0);
  all.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const page = all.slice(0, Math.min(PAGE, Number(params.get('max-keys') ?? 1000)));
  const truncated = all.length > page.length;
  const entries = page.map((k) => {
    const data = stored.get(k.slice(2)).data;
    return `<Contents><Key>${encode(k)}</Key><LastModified>2026-01-02T00:00:00.000Z</LastModified><ETag>&quot;${md5(data)}&quot;</ETag><Size>${data.length}</Size><Owner><ID>x</ID></Owner><StorageClass>STANDARD</StorageClass></Contents>`;
  });
  const token = truncated && !brokenListing ? `<NextContinuationToken>${Buffer.from(page.at(-1)).toString('base64')}</NextContinuationToken>` : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name><Prefix>${encode(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>${truncated}</IsTruncated>${entries.join('')}${token}</ListBucketResult>`;
}

function startServer(stored, { corrupt, brokenListing } = {}) {
  const seen = [];
  const server = http.createServer(async (req, res) => {
    for await (const _ of req);
    const problem = s3SignatureProblem(req, Buffer.alloc(0), KEY, REGION);
    const [rawPath] = req.url.split('?');
    seen.push({ method: req.method, path: rawPath, sdk: req.headers['amz-sdk-invocation-id'] !== undefined, problem });
    if (problem) {
      res.writeHead(403, { 'content-type': 'application/xml' });
      return res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>`);
    }
    const params = new URLSearchParams(req.url.split('?')[1] ?? '');
    if (rawPath === '/bkt' && params.get('list-type') === '2') {
      res.writeHead(200, { 'content-type': 'application/xml' });
      return res.end(listReply(stored, params, { brokenListing }));
    }
    const key = decodeURIComponent(rawPath).replace(/^\/bkt\/p\//, '');
    const object = stored.get(key);
    if (!object || !rawPath.startsWith('/bkt/p/')) {
      res.writeHead(404, { 'content-type': 'application/xml' });
      return res.end(`<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>`);
    }
    const etag = `"${md5(object.data)}"`;
    const headers = { etag, 'last-modified': new Date(Date.UTC(2026, 0, 2)).toUTCString(), 'accept-ranges': 'bytes' };
    if (object.sha) headers['x-amz-meta-sluice-sha256'] = sha256(object.data);
    if (req.headers['if-match'] && req.headers['if-match'] !== etag) {
      res.writeHead(412, { 'content-type': 'application/xml' });
      return res.end('<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>');
    }
    let body = object.data;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      const end = range[2] === '' ? body.length - 1 : Math.min(Number(range[2]), body.length - 1);
      if (start >= body.length) {
        res.writeHead(416, { 'content-type': 'application/xml' });
        return res.end('<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message></Error>');
      }
      headers['content-range'] = `bytes ${start}-${end}/${body.length}`;
      body = body.subarray(start, end + 1);
      status = 206;
    }
    if (corrupt === key && req.method === 'GET') body = Buffer.from(body).fill(0, 0, 1);
    res.writeHead(status, { ...headers, 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, seen, close: () => new Promise((r) => server.close(r)) })));
}

test.before(() => initDigest());

// With sizes, as s3-list gives them: s3-get then reads without a HEAD first.
const records = (stored) => [...stored].map(([key, { data }]) => ({ type: 'object', key, size: data.length, store: 's3://bkt/p' }));

test('s3-get signs its own GETs as S3 checks them, for keys that need escaping, whole, in ranges and in pieces', async () => {
  const stored = objects();
  const server = await startServer(stored);
  try {
    for (const flags of ['', '--pieces-above 8M']) {
      server.seen.length = 0;
      const r = await sh(`s3-get --endpoint-url ${server.url} ${flags}`, { input: frames(records(stored)), env });
      assert.strictEqual(r.code, 0, describe(r));
      assert.deepStrictEqual(server.seen.filter((s) => s.problem), [], 'every request is signed right');
      const gets = server.seen.filter((s) => s.method === 'GET');
      // Whole, the large object is read in 8 MiB ranges; in pieces, by one GET whose body's
      // segments are the pieces (after a HEAD that says what it must be).
      if (flags) assert.strictEqual(gets.filter((g) => g.path === '/bkt/p/large.bin').length, 1, 'one GET for the large object');
      else assert.ok(gets.length >= stored.size + 2, `the large object is read in ranges: ${gets.length} GETs`);
      if (flags) assert.ok(server.seen.some((s) => s.method === 'HEAD' && !s.problem), 'a signed HEAD');
      assert.deepStrictEqual(gets.filter((s) => s.sdk), [], 'the GETs do not go through the SDK');
      const out = new Map();
      for (const rec of decodeAll(r.stdout).filter((x) => x.type === 'object')) {
        out.set(rec.key, Buffer.concat([out.get(rec.key) ?? Buffer.alloc(0), rec[PAYLOAD] ?? Buffer.alloc(0)]));
        if (rec.key === "a b/ü+%.bin") assert.strictEqual(rec.sha256, sha256(stored.get(rec.key).data));
      }
      for (const [key, { data }] of stored) assert.ok(out.get(key)?.equals(data), `${key} read back whole ${flags}`);
    }
  } finally {
    await server.close();
  }
});

test('a wrong secret, a missing key and corrupt bytes fail with the key named and the documented status', async () => {
  const stored = objects();
  const server = await startServer(stored, { corrupt: 'large.bin' });
  try {
    const one = (key) => frames([{ type: 'object', key, size: stored.get(key)?.data.length ?? 1, store: 's3://bkt/p' }]);
    let r = await sh(`s3-get --endpoint-url ${server.url}`, { input: one('empty'), env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
    assert.strictEqual(r.code, 1, describe(r));
    assert.match(r.stderr, /s3:\/\/bkt\/p\/: GetObject "empty": SignatureDoesNotMatch: The request signature we calculated does not match/);
    assert.match(server.seen.at(-1).problem, /signature [0-9a-f]{64}, expected/, 'the verifier refused it');
    r = await sh(`s3-get --endpoint-url ${server.url}`, { input: one('nothing here'), env });
    assert.strictEqual(r.code, 1, describe(r));
    assert.match(r.stderr, /s3:\/\/bkt\/p\/: no object "nothing here"/);
    r = await sh(`s3-get --endpoint-url ${server.url}`, { input: one('large.bin'), env });
    assert.strictEqual(r.code, 5, describe(r));
    assert.match(r.stderr, /object "large\.bin": the data's SHA-256 is/);
    // In pieces (one streamed GET): the last piece never goes out.
    r = await sh(`s3-get --endpoint-url ${server.url} --pieces-above 8M`, { input: one('large.bin'), env });
    assert.strictEqual(r.code, 5, describe(r));
    assert.match(r.stderr, /object "large\.bin": the SHA-256 of its 20971520 bytes is \S+, the store keeps/);
    const partial = [];
    new Decoder({ command: 'test', source: 'stdout' }).push(r.stdout, partial);
    const pieces = partial.filter((x) => x.type === 'object');
    assert.ok(pieces.length < 3, `${pieces.length} of the 3 pieces went out`);
    assert.ok(!partial.some((x) => x.type === 'end'), 'and no trailer');
  } finally {
    await server.close();
  }
});

test('s3-list signs its own ListObjectsV2 as S3 checks them, and reads every page of URL-encoded keys', async () => {
  const stored = objects();
  const server = await startServer(stored);
  try {
    const inOrder = [...stored.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    let r = await sh(`s3-list --endpoint-url ${server.url} s3://bkt/p`, { env });
    assert.strictEqual(r.code, 0, describe(r));
    assert.deepStrictEqual(server.seen.filter((s) => s.problem), [], 'every request is signed right');
    assert.deepStrictEqual(server.seen.filter((s) => s.sdk), [], 'none goes through the SDK');
    assert.strictEqual(server.seen.length, Math.ceil(stored.size / PAGE), 'one request per page');
    const listed = r.stdout.toString().trim().split('\n').map((line) => JSON.parse(line));
    assert.deepStrictEqual(listed.filter((x) => x.type === 'object').map((x) => [x.key, x.size, x.etag]), inOrder.map((k) => [k, stored.get(k).data.length, `"${md5(stored.get(k).data)}"`]));
    assert.strictEqual(listed.at(-1).type, 'end');
    // After a key: the pages that follow it, from S3's start-after.
    server.seen.length = 0;
    r = await sh(`s3-list --endpoint-url ${server.url} --start-after ${JSON.stringify(inOrder[1])} s3://bkt/p`, { env });
    assert.strictEqual(r.code, 0, describe(r));
    assert.deepStrictEqual(server.seen.filter((s) => s.problem), [], 'signed right, with start-after');
    const after = r.stdout.toString().trim().split('\n').map((line) => JSON.parse(line)).filter((x) => x.type === 'object').map((x) => x.key);
    assert.deepStrictEqual(after, inOrder.slice(2));
  } finally {
    await server.close();
  }
});

test('a listing that says it goes on without a continuation token fails, with no trailer', async () => {
  const server = await startServer(objects(), { brokenListing: true });
  try {
    const r = await sh(`s3-list --endpoint-url ${server.url} s3://bkt/p`, { env });
    assert.strictEqual(r.code, 1, describe(r));
    assert.match(r.stderr, /s3:\/\/bkt\/p\/: ListObjectsV2: InvalidReply: the listing says it goes on, without a continuation token/);
    assert.ok(!r.stdout.toString().includes('"type":"end"'), 'no end record: the listing is known to be incomplete');
  } finally {
    await server.close();
  }
});
