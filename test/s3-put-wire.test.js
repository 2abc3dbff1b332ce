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
const { s3SignatureProblem } = require('./lib/sigv4');

const signatureProblem = (req, body) => s3SignatureProblem(req, body, KEY, REGION);

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
