'use strict';
// What s3-put sends on the wire for a single PUT, checked by a server that verifies SigV4 as S3
// does (written from the specification; moto does not check signatures): the body's SHA-256,
// which s3-put computes once and declares as x-amz-content-sha256 so that the signer does not
// hash the body again, must be the SHA-256 of the body that arrives, and the signature must
// cover it.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { ok, tmpdir } = require('./lib/run');

const KEY = { id: 'AKIDEXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const REGION = 'us-east-1';
const { sha256hex, canonicalQuery, expectedSignature } = require('./lib/sigv4');

/** Why a request's S3 SigV4 signature is wrong, or undefined when it is right. */
function signatureProblem(req, body) {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!auth) return `no SigV4 Authorization header: ${req.headers.authorization}`;
  const [, keyId, day, region, service, signedHeaders, signature] = auth;
  if (keyId !== KEY.id || region !== REGION || service !== 's3') return `credential scope ${keyId}/${region}/${service}`;
  const payload = req.headers['x-amz-content-sha256'];
  if (payload !== sha256hex(body)) return `x-amz-content-sha256 is ${payload}, the body's SHA-256 is ${sha256hex(body)}`;
  const names = signedHeaders.split(';');
  if (!names.includes('x-amz-content-sha256') || !names.includes('host')) return `x-amz-content-sha256 and host must be signed: ${signedHeaders}`;
  const [rawPath, rawQuery = ''] = req.url.split('?');
  // S3 signs the path as sent (each segment encoded once).
  const headers = names.map((h) => `${h}:${String(req.headers[h]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, rawPath, canonicalQuery(rawQuery, decodeURIComponent), headers, signedHeaders, payload].join('\n');
  const expected = expectedSignature({ secret: KEY.secret, day, region: REGION, service: 's3', amzDate: req.headers['x-amz-date'], canonical });
  return expected === signature ? undefined : `signature ${signature}, expected ${expected} for:\n${canonical}`;
}

/** A server that takes PutObject only when correctly signed, and keeps what it stored. */
function startVerifier() {
  const stored = new Map();
  const problems = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    const problem = req.method === 'PUT' ? signatureProblem(req, body) : `unexpected ${req.method} ${req.url}`;
    if (problem) {
      problems.push(`${req.method} ${req.url}: ${problem}`);
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(`<Error><Code>SignatureDoesNotMatch</Code><Message>${problem.split('\n')[0]}</Message></Error>`);
      return;
    }
    stored.set(decodeURIComponent(req.url.split('?')[0]), body);
    res.writeHead(200, { etag: `"${crypto.createHash('md5').update(body).digest('hex')}"` });
    res.end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, stored, problems, close: () => new Promise((r) => server.close(r)) })));
}

test('s3-put declares each body\'s SHA-256 for the signature, and it is the SHA-256 of what arrives', async () => {
  const server = await startVerifier();
  try {
    const work = tmpdir('sluice-put-wire-');
    const src = path.join(work, 'src');
    fs.mkdirSync(src);
    const files = { 'a.bin': crypto.randomBytes(3 << 20), 'b c+d.txt': Buffer.from('small, with a key that needs escaping\n'), empty: Buffer.alloc(0) };
    for (const [name, data] of Object.entries(files)) fs.writeFileSync(path.join(src, name), data);
    const env = { AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret, AWS_REGION: REGION, AWS_EC2_METADATA_DISABLED: 'true' };
    await ok(`s3-list ${src} | s3-get | s3-put --endpoint-url ${server.url} s3://bkt/p > /dev/null`, { env });
    assert.deepStrictEqual(server.problems, []);
    for (const [name, data] of Object.entries(files)) assert.ok(server.stored.get(`/bkt/p/${name}`)?.equals(data), `${name} stored whole`);
    // The verifier can fail: a wrong secret is refused.
    const r = await require('./lib/run').sh(`s3-list ${src} | s3-get | s3-put --endpoint-url ${server.url} s3://bkt/q`, { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
    assert.strictEqual(r.code, 1, r.stderr);
    assert.match(server.problems.join('\n'), /signature [0-9a-f]{64}, expected/);
  } finally {
    await server.close();
  }
});
