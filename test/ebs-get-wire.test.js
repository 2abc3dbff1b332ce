'use strict';
// ebs-get sends its GetSnapshotBlock requests itself (signed by the SDK's SigV4 signer, on its
// own keep-alive sockets), not through the SDK's client. The emulator does not check
// signatures, so this checks them: a server on 127.0.0.1 verifies each request's SigV4
// signature with an implementation written here from the specification, and answers with a
// block. Tokens with "+", "/", "=" and a space show that the query signed is the query sent;
// a server whose clock is an hour ahead shows that the signing time is corrected from its Date.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { EBSClient, GetSnapshotBlockCommand } = require('@aws-sdk/client-ebs');
const xxhash = require('xxhash-wasm');
const { ok, sh, describe, tmpdir } = require('./lib/run');

const BLOCK = 524288;
const KEY = { id: 'AKIDEXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', session: 'session+token/with=odd chars' };
const REGION = 'eu-west-1';
const SNAPSHOT = 'snap-0123456789abcdef0';

const { sha256hex, escape, canonicalQuery, expectedSignature } = require('./lib/sigv4');

// A query is decoded as servers decode forms: an unescaped "+" is a space.
const formDecode = (s) => decodeURIComponent(s.replace(/\+/g, ' '));

/** Why a request's SigV4 signature is wrong, or undefined when it is right. */
function signatureProblem(req) {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!auth) return `no SigV4 Authorization header: ${req.headers.authorization}`;
  const [, keyId, day, region, service, signedHeaders, signature] = auth;
  if (keyId !== KEY.id || region !== REGION || service !== 'ebs') return `credential scope ${keyId}/${region}/${service}`;
  const amzDate = req.headers['x-amz-date'];
  if (!amzDate?.startsWith(day)) return `x-amz-date ${amzDate} is not of ${day}`;
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date')) return `host and x-amz-date must be signed: ${signedHeaders}`;
  if (req.headers['x-amz-security-token'] !== KEY.session || !names.includes('x-amz-security-token')) return 'the session token is missing or unsigned';
  const [rawPath, rawQuery = ''] = req.url.split('?');
  // Services other than S3 sign each path segment URI-encoded once more than it is sent.
  const canonicalPath = rawPath.split('/').map(escape).join('/');
  const query = canonicalQuery(rawQuery, formDecode);
  const headers = names.map((h) => `${h}:${String(req.headers[h]).trim().replace(/\s+/g, ' ')}\n`).join('');
  const payload = req.headers['x-amz-content-sha256'] ?? sha256hex('');
  const canonical = ['GET', canonicalPath, query, headers, signedHeaders, payload].join('\n');
  const expected = expectedSignature({ secret: KEY.secret, day, region: REGION, service: 'ebs', amzDate, canonical });
  return expected === signature ? undefined : `signature ${signature}, expected ${expected} for:\n${canonical}`;
}

/** Block data for a (snapshot, index): distinct per block, never all zeros. */
function blockData(index) {
  const data = Buffer.alloc(BLOCK, index + 1);
  data.writeUInt32LE(index, 0);
  return data;
}

/** SigV4's x-amz-date as a time. */
const amzTime = (d) => Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 11)}:${d.slice(11, 13)}:${d.slice(13)}`);

/**
 * A server that answers signed GetSnapshotBlock requests and records every request's verdict.
 * Its clock runs `skewMs` ahead; like AWS it refuses a request signed more than 5 minutes away.
 */
function startVerifier({ skewMs = 0 } = {}) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const now = Date.now() + skewMs;
    res.setHeader('date', new Date(now).toUTCString());
    if (Math.abs(amzTime(req.headers['x-amz-date'] ?? '') - now) > 300_000) {
      seen.push({ url: req.url, problem: 'skew' });
      res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': 'InvalidSignatureException' });
      res.end(JSON.stringify({ message: 'Signature expired: the request time is too far from the server time' }));
      return;
    }
    const problem = signatureProblem(req);
    const m = /^\/snapshots\/([^/]+)\/blocks\/(\d+)\?blockToken=(.*)$/.exec(req.url);
    seen.push({ url: req.url, problem, token: m && formDecode(m[3]) });
    if (problem || !m || decodeURIComponent(m[1]) !== SNAPSHOT) {
      res.writeHead(403, { 'content-type': 'application/json', 'x-amzn-errortype': 'AccessDeniedException' });
      res.end(JSON.stringify({ message: problem ?? `unexpected request ${req.url}`, Reason: 'UNAUTHORIZED_ACCOUNT' }));
      return;
    }
    const data = blockData(Number(m[2]));
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': BLOCK,
      'x-amz-data-length': BLOCK,
      'x-amz-checksum': crypto.createHash('sha256').update(data).digest('base64'),
      'x-amz-checksum-algorithm': 'SHA256',
    });
    res.end(data);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, seen, close: () => server.close() })));
}

const env = { AWS_ACCESS_KEY_ID: KEY.id, AWS_SECRET_ACCESS_KEY: KEY.secret, AWS_SESSION_TOKEN: KEY.session, AWS_REGION: REGION, AWS_EC2_METADATA_DISABLED: 'true' };

test('ebs-get signs each GetSnapshotBlock as SigV4 requires, tokens with +, /, = and spaces included', async () => {
  const server = await startVerifier();
  try {
    // The checker accepts what the SDK's own client sends...
    const sdk = new EBSClient({ region: REGION, endpoint: server.url, credentials: { accessKeyId: KEY.id, secretAccessKey: KEY.secret, sessionToken: KEY.session }, maxAttempts: 1 });
    await sdk.send(new GetSnapshotBlockCommand({ SnapshotId: SNAPSHOT, BlockIndex: 1, BlockToken: 'sdk+token/1=' }));
    sdk.destroy();
    assert.strictEqual(server.seen[0].problem, undefined, `the SDK's request verifies: ${server.seen[0].problem}`);
    // ... and refuses a signature made with another secret.
    const forged = await sh(`ebs-get --endpoint-url ${server.url} -j 1 < ${await manifest({ 2: 'forged' })} > /dev/null`, { env: { ...env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' } });
    assert.strictEqual(forged.code, 1, `a wrong secret is refused${describe(forged)}`);
    assert.match(forged.stderr, /AccessDeniedException/);
    assert.match(server.seen.at(-1).problem, /^signature /);

    const tokens = { 0: 'AAAA+/b=c d', 3: 'plain', 7: 'Zm9v/YmFy+==', 8: 'a%2Bb&c=d' };
    const out = path.join(work, 'blocks.img');
    const r = await ok(`ebs-get --endpoint-url ${server.url} -j 4 < ${await manifest(tokens)} | file-write ${out}`, { env });
    const got = server.seen.slice(2);
    assert.deepStrictEqual(got.map((s) => s.problem), [undefined, undefined, undefined, undefined], `every request verifies${describe(r)}`);
    assert.deepStrictEqual(got.map((s) => s.token).sort(), Object.values(tokens).sort(), 'each token arrives as it was listed');
    const written = fs.readFileSync(out);
    for (const index of Object.keys(tokens).map(Number)) {
      assert.ok(written.subarray(index * BLOCK, (index + 1) * BLOCK).equals(blockData(index)), `block ${index}`);
    }
  } finally {
    server.close();
  }
});

test('a clock an hour off: the first refusal corrects the signing time, every block is read', async () => {
  const server = await startVerifier({ skewMs: 3600_000 });
  try {
    const tokens = { 0: 'a', 1: 'b', 2: 'c', 5: 'd', 9: 'e' };
    const out = path.join(work, 'skewed.img');
    const r = await ok(`ebs-get --endpoint-url ${server.url} -j 2 < ${await manifest(tokens)} | file-write ${out}`, { env });
    const refused = server.seen.filter((s) => s.problem === 'skew').length;
    assert.ok(refused >= 1 && refused <= 2, `the first requests (at most -j) were refused for their time, then none: ${refused}${describe(r)}`);
    assert.deepStrictEqual(server.seen.filter((s) => s.problem !== 'skew').map((s) => s.problem), [undefined, undefined, undefined, undefined, undefined]);
    const written = fs.readFileSync(out);
    for (const index of Object.keys(tokens).map(Number)) {
      assert.ok(written.subarray(index * BLOCK, (index + 1) * BLOCK).equals(blockData(index)), `block ${index}`);
    }
  } finally {
    server.close();
  }
});

const work = tmpdir('sluice-wire-');
let manifests = 0;
/** A manifest file with a header, one block record per index -> token, and its trailer. */
async function manifest(tokens) {
  const file = path.join(work, `manifest-${manifests++}.ndjson`);
  const lines = [{ type: 'volume', format: 1, snapshotId: SNAPSHOT, size: 1 << 30, blockSize: BLOCK, encrypted: false }];
  for (const [index, token] of Object.entries(tokens)) lines.push({ type: 'block', index: Number(index), token });
  const text = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
  const { h64ToString } = await xxhash();
  const end = { type: 'end', format: 1, records: lines.length, bytes: 0, digest: h64ToString(text) };
  fs.writeFileSync(file, `${text}${JSON.stringify(end)}\n`);
  return file;
}
