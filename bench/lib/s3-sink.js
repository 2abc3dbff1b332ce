'use strict';
// A discarding S3 endpoint, to measure how fast an S3 client can go when the server costs
// (almost) nothing: path-style buckets, PutObject, multipart uploads, HeadObject, GetObject
// (ranges too), ListObjects v1 and v2 (with delimiter), DeleteObjects; no authentication.
//
// Uploaded bodies are read and dropped; only their size, user metadata and content type are
// kept, except for small objects (a layout's manifest), which are kept whole because readers
// parse them. A GET of a large object answers zeros of its size. So the data a benchmark
// uploads here must itself be zeros (a sparse file) for the downloads to check out: the
// checksums a client stored (sluice's x-amz-meta-sluice-sha256, MD5 ETags) are those of zeros.
//
// Usage: node bench/lib/s3-sink.js PORT   (prints {"url":...,"pid":...} once listening)
const http = require('node:http');
const crypto = require('node:crypto');

const KEEP_BELOW = 1 << 20; // bodies smaller than this are kept whole
const ZEROS = Buffer.alloc(8 << 20); // what GETs send, written again and again

const buckets = new Map(); // name -> Map(key -> { size, etag, meta, type, data? })
const uploads = new Map(); // uploadId -> { bucket, key, meta, type, parts: Map(n -> size) }
let nextUpload = 1;
const started = new Date().toUTCString();
const startedIso = new Date().toISOString();

// ETags of zeros: a single-part object's is the MD5 of its bytes, which clients check on
// download; there are only a few distinct sizes in a run, so each is computed once.
const zeroMd5 = new Map();
function md5OfZeros(size) {
  let hex = zeroMd5.get(size);
  if (!hex) {
    const h = crypto.createHash('md5');
    for (let left = size; left > 0; left -= ZEROS.length) h.update(left >= ZEROS.length ? ZEROS : ZEROS.subarray(0, left));
    hex = h.digest('hex');
    zeroMd5.set(size, hex);
  }
  return hex;
}

const xmlEscape = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function reply(res, status, body = '', headers = {}) {
  res.writeHead(status, { 'x-amz-request-id': 'sink', 'content-length': Buffer.byteLength(body), ...(body ? { 'content-type': 'application/xml' } : {}), ...headers });
  res.end(body);
}

function notFound(res, code = 'NoSuchKey') {
  reply(res, 404, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>not here</Message></Error>`);
}

/** Reads a request body: its size, and the bytes when `keep`. aws-chunked framing is removed. */
function drain(req, keep) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (keep && size <= 4 * KEEP_BELOW) chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const declared = req.headers['x-amz-decoded-content-length'];
      const chunked = /aws-chunked/.test(req.headers['content-encoding'] ?? '') || declared !== undefined;
      let data = keep ? Buffer.concat(chunks) : undefined;
      if (chunked && data) data = unchunk(data);
      resolve({ size: declared !== undefined ? Number(declared) : chunked && data ? data.length : size, data });
    });
  });
}

/** The payload of an aws-chunked body: "HEX[;chunk-signature=...]\r\nDATA\r\n" ... "0\r\n" trailers. */
function unchunk(body) {
  const parts = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol < 0) break;
    const n = parseInt(body.toString('latin1', at, eol).split(';')[0], 16);
    if (!(n > 0)) break;
    parts.push(body.subarray(eol + 2, eol + 2 + n));
    at = eol + 2 + n + 2;
  }
  return Buffer.concat(parts);
}

function userMeta(req) {
  const meta = {};
  for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-amz-meta-')) meta[k] = v;
  return meta;
}

function objectHeaders(o) {
  return { etag: `"${o.etag}"`, 'last-modified': started, 'content-type': o.type ?? 'binary/octet-stream', 'accept-ranges': 'bytes', ...o.meta };
}

function sendObject(req, res, o) {
  let start = 0;
  let end = o.size - 1;
  let status = 200;
  const headers = objectHeaders(o);
  const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
  if (range && o.size > 0) {
    if (range[1] === '') start = Math.max(0, o.size - Number(range[2]));
    else {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(end, Number(range[2]));
    }
    if (start >= o.size) return reply(res, 416, '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidRange</Code><Message>range</Message></Error>', { 'content-range': `bytes */${o.size}` });
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${o.size}`;
  }
  const length = o.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, { ...headers, 'content-length': length });
  if (req.method === 'HEAD' || length === 0) return res.end();
  if (o.data) return res.end(o.data.subarray(start, end + 1));
  let left = length;
  const more = () => {
    while (left > 0) {
      const n = Math.min(left, ZEROS.length);
      left -= n;
      if (!res.write(n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n))) return res.once('drain', more);
    }
    res.end();
  };
  more();
}

function list(res, bucket, q) {
  const v2 = q.get('list-type') === '2';
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const max = Math.min(Number(q.get('max-keys') ?? 1000), 1000);
  const after = (v2 ? q.get('continuation-token') ?? q.get('start-after') : q.get('marker')) ?? '';
  const keys = [...bucket.keys()].filter((k) => k.startsWith(prefix) && k > after).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const contents = [];
  const common = [];
  let last = '';
  let truncated = false;
  for (const key of keys) {
    if (contents.length + common.length >= max) {
      truncated = true;
      break;
    }
    const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    if (cut >= 0) {
      const p = key.slice(0, cut + delimiter.length);
      if (common[common.length - 1] !== p) common.push(p);
      last = key;
      continue;
    }
    const o = bucket.get(key);
    contents.push(`<Contents><Key>${xmlEscape(key)}</Key><LastModified>${startedIso}</LastModified><ETag>&quot;${o.etag}&quot;</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`);
    last = key;
  }
  // A common prefix's later keys are skipped by starting the next page past all of them.
  const next = truncated && common.length && last.startsWith(common[common.length - 1]) ? common[common.length - 1] + '\uffff' : last;
  const body =
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Name>${xmlEscape(q.bucketName)}</Name><Prefix>${xmlEscape(prefix)}</Prefix><MaxKeys>${max}</MaxKeys>` +
    (delimiter ? `<Delimiter>${xmlEscape(delimiter)}</Delimiter>` : '') +
    `<IsTruncated>${truncated}</IsTruncated>` +
    (v2 ? `<KeyCount>${contents.length + common.length}</KeyCount>` + (truncated ? `<NextContinuationToken>${xmlEscape(next)}</NextContinuationToken>` : '') : truncated ? `<NextMarker>${xmlEscape(next)}</NextMarker>` : '') +
    contents.join('') +
    common.map((p) => `<CommonPrefixes><Prefix>${xmlEscape(p)}</Prefix></CommonPrefixes>`).join('') +
    '</ListBucketResult>';
  reply(res, 200, body);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://sink');
  const q = url.searchParams;
  const [, bucketName = '', ...rest] = url.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  q.bucketName = decodeURIComponent(bucketName);
  if (!bucketName) return reply(res, 200, '<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>');
  if (!key) {
    if (req.method === 'PUT') {
      await drain(req, false);
      if (!buckets.has(q.bucketName)) buckets.set(q.bucketName, new Map());
      return reply(res, 200);
    }
    const bucket = buckets.get(q.bucketName);
    if (!bucket) return notFound(res, 'NoSuchBucket');
    if (req.method === 'HEAD') return reply(res, 200);
    if (req.method === 'GET' && q.has('location')) return reply(res, 200, '<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>');
    if (req.method === 'GET' && q.has('uploads')) return reply(res, 200, '<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>');
    if (req.method === 'GET') return list(res, bucket, q);
    if (req.method === 'POST' && q.has('delete')) {
      const { data } = await drain(req, true);
      const keys = [...data.toString().matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
      for (const k of keys) bucket.delete(k);
      return reply(res, 200, `<?xml version="1.0" encoding="UTF-8"?><DeleteResult>${keys.map((k) => `<Deleted><Key>${xmlEscape(k)}</Key></Deleted>`).join('')}</DeleteResult>`);
    }
    return reply(res, 405);
  }
  const bucket = buckets.get(q.bucketName);
  if (!bucket) {
    await drain(req, false);
    return notFound(res, 'NoSuchBucket');
  }
  if (req.method === 'POST' && q.has('uploads')) {
    await drain(req, false);
    const id = `u${nextUpload++}`;
    uploads.set(id, { key, meta: userMeta(req), type: req.headers['content-type'], parts: new Map() });
    return reply(res, 200, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>${xmlEscape(q.bucketName)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`);
  }
  if (q.has('uploadId')) {
    const up = uploads.get(q.get('uploadId'));
    if (!up) {
      await drain(req, false);
      return notFound(res, 'NoSuchUpload');
    }
    if (req.method === 'PUT') {
      const { size } = await drain(req, false);
      up.parts.set(Number(q.get('partNumber')), size);
      const md5 = req.headers['content-md5'];
      return reply(res, 200, '', { etag: `"${md5 ? Buffer.from(md5, 'base64').toString('hex') : md5OfZeros(size)}"` });
    }
    if (req.method === 'POST') {
      await drain(req, false);
      let size = 0;
      for (const s of up.parts.values()) size += s;
      const etag = `${crypto.createHash('md5').update(q.get('uploadId')).digest('hex')}-${up.parts.size}`;
      bucket.set(key, { size, etag, meta: up.meta, type: up.type });
      uploads.delete(q.get('uploadId'));
      return reply(res, 200, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>${xmlEscape(q.bucketName)}</Bucket><Key>${xmlEscape(key)}</Key><ETag>&quot;${etag}&quot;</ETag></CompleteMultipartUploadResult>`);
    }
    if (req.method === 'DELETE') {
      uploads.delete(q.get('uploadId'));
      return reply(res, 204);
    }
  }
  if (req.method === 'PUT') {
    const small = Number(req.headers['x-amz-decoded-content-length'] ?? req.headers['content-length'] ?? Infinity) < KEEP_BELOW;
    const { size, data } = await drain(req, small);
    const etag = data ? crypto.createHash('md5').update(data).digest('hex') : md5OfZeros(size);
    bucket.set(key, { size, etag, meta: userMeta(req), type: req.headers['content-type'], data });
    return reply(res, 200, '', { etag: `"${etag}"` });
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    const o = bucket.get(key);
    if (!o) return req.method === 'HEAD' ? reply(res, 404) : notFound(res);
    return sendObject(req, res, o);
  }
  if (req.method === 'DELETE') {
    bucket.delete(key);
    return reply(res, 204);
  }
  reply(res, 405);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`s3-sink: ${req.method} ${req.url}: ${err.stack}\n`);
    if (!res.headersSent) reply(res, 500);
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}`, pid: process.pid }) + '\n');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)) && server.closeAllConnections());
