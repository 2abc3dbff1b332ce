'use strict';
// ebs-get sends its GetSnapshotBlock requests itself, and ebs-blocks (like every command that
// describes a snapshot) its EC2 DescribeSnapshots: signed by the SDK's SigV4 signer, on the
// session's own keep-alive sockets, not through the SDK's clients. The emulator does not check
// signatures, so this checks them: a server on 127.0.0.1 verifies each request's SigV4
// signature with an implementation written from the specification (lib/sigv4.js), and answers
// with a block, a DescribeSnapshots reply or a page of ListSnapshotBlocks (sent by the SDK's
// client). Tokens with "+", "/", "=" and a space show that the query signed is the query sent;
// a server whose clock is an hour ahead shows that the signing time is corrected from its Date.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { EBSClient, GetSnapshotBlockCommand } = require('@aws-sdk/client-ebs');
const { EC2Client, DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');
const xxhash = require('xxhash-wasm');
const { ok, sh, describe, tmpdir } = require('./lib/run');

const BLOCK = 524288;
const KEY = { id: 'AKIDEXAMPLE', secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', session: 'session+token/with=odd chars' };
const REGION = 'eu-west-1';
const SNAPSHOT = 'snap-0123456789abcdef0';

const { formDecode, signatureProblem } = require('./lib/sigv4');

/** Block data for a (snapshot, index): distinct per block, never all zeros. */
function blockData(index) {
  const data = Buffer.alloc(BLOCK, index + 1);
  data.writeUInt32LE(index, 0);
  return data;
}

/** SigV4's x-amz-date as a time. */
const amzTime = (d) => Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 11)}:${d.slice(11, 13)}:${d.slice(13)}`);

// The DescribeSnapshots reply: a tag set before the fields (its items have children of their
// own, which are not the snapshot's), entities in text, an attribute and an empty element.
const DESCRIBED = `<?xml version="1.0" encoding="UTF-8"?>
<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId>
  <snapshotSet>
    <item>
      <snapshotId>${SNAPSHOT}</snapshotId>
      <tagSet><item><key>encrypted</key><value>a &lt;b&gt; &amp; &#99;</value></item><item><status>error</status></item></tagSet>
      <volumeId>vol-1234567890abcdef0</volumeId>
      <status>completed</status>
      <statusMessage/>
      <progress kind="percent">100%</progress>
      <volumeSize>3</volumeSize>
      <description>Daily &amp; weekly</description>
      <encrypted>true</encrypted>
    </item>
  </snapshotSet>
</DescribeSnapshotsResponse>`;

/** An error as the service sends it: EC2's XML, EBS's JSON with x-amzn-ErrorType. */
function refuse(res, ec2, status, code, message) {
  if (ec2) {
    res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
    res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>${message.replace(/</g, '&lt;')}</Message></Error></Errors><RequestID>r</RequestID></Response>`);
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': code });
  res.end(JSON.stringify({ message, Reason: status === 403 ? 'UNAUTHORIZED_ACCOUNT' : undefined }));
}

/**
 * A server that answers signed GetSnapshotBlock, ListSnapshotBlocks and (POST, EC2's Query
 * API) DescribeSnapshots requests, and records every request's verdict. Its clock runs
 * `skewMs` ahead; like AWS it refuses a request signed more than 5 minutes away.
 */
function startVerifier({ skewMs = 0 } = {}) {
  const seen = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString();
    const ec2 = req.method === 'POST';
    const now = Date.now() + skewMs;
    res.setHeader('date', new Date(now).toUTCString());
    if (Math.abs(amzTime(req.headers['x-amz-date'] ?? '') - now) > 300_000) {
      seen.push({ url: req.url, method: req.method, problem: 'skew' });
      if (ec2) refuse(res, ec2, 400, 'RequestExpired', 'Request has expired.');
      else refuse(res, ec2, 403, 'InvalidSignatureException', 'Signature expired: the request time is too far from the server time');
      return;
    }
    const problem = signatureProblem(req, { key: KEY, region: REGION, service: ec2 ? 'ec2' : 'ebs', body });
    const block = /^\/snapshots\/([^/]+)\/blocks\/(\d+)\?blockToken=(.*)$/.exec(req.url);
    const list = /^\/snapshots\/([^/]+)\/blocks\?/.exec(req.url);
    seen.push({ url: req.url, method: req.method, problem, token: block && formDecode(block[3]), form: ec2 ? Object.fromEntries(new URLSearchParams(body)) : undefined, headers: req.headers });
    const id = block?.[1] ?? list?.[1];
    if (problem || (!ec2 && (!id || decodeURIComponent(id) !== SNAPSHOT))) {
      refuse(res, ec2, ec2 ? 401 : 403, ec2 ? 'AuthFailure' : 'AccessDeniedException', problem ?? `unexpected request ${req.url}`);
      return;
    }
    if (ec2) {
      res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(DESCRIBED);
      return;
    }
    if (list) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ Blocks: [{ BlockIndex: 0, BlockToken: 'AAAA+/b=c d' }, { BlockIndex: 5, BlockToken: 'plain' }], VolumeSize: 3, BlockSize: BLOCK }));
      return;
    }
    const data = blockData(Number(block[2]));
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

/** The volume header and block records of a manifest. */
const manifestRecords = (stdout) => stdout.toString().trim().split('\n').map((l) => JSON.parse(l)).filter((x) => x.type !== 'end');
const posts = (server) => server.seen.filter((s) => s.method === 'POST');

test('ebs-blocks signs its EC2 DescribeSnapshots (a form POST, without the EC2 client) and reads the fields it needs', async () => {
  const server = await startVerifier();
  try {
    // The checker accepts what the SDK's EC2 client sends, and the SDK reads the reply as below.
    const sdk = new EC2Client({ region: REGION, endpoint: `${server.url}/ec2`, credentials: { accessKeyId: KEY.id, secretAccessKey: KEY.secret, sessionToken: KEY.session }, maxAttempts: 1 });
    const { Snapshots } = await sdk.send(new DescribeSnapshotsCommand({ SnapshotIds: [SNAPSHOT] }));
    sdk.destroy();
    const bySdk = server.seen.at(-1);
    assert.strictEqual(bySdk.problem, undefined, `the SDK's request verifies: ${bySdk.problem}`);
    assert.deepStrictEqual([Snapshots.length, Snapshots[0].Encrypted, Snapshots[0].VolumeSize, Snapshots[0].State], [1, true, 3, 'completed']);

    // The EC2 endpoint with a path, as the SDK's client is given it above, by its own setting.
    const r = await ok(`ebs-blocks ${SNAPSHOT}`, { env: { ...env, AWS_ENDPOINT_URL_EBS: server.url, AWS_ENDPOINT_URL_EC2: `${server.url}/ec2` } });
    const ours = posts(server).at(-1);
    assert.strictEqual(ours.problem, undefined, `DescribeSnapshots verifies${describe(r)}`);
    assert.deepStrictEqual([ours.url, ours.form], [bySdk.url, bySdk.form], 'the same request as the SDK client\'s');
    assert.strictEqual(ours.headers['content-type'], bySdk.headers['content-type']);
    const [header, ...blocks] = manifestRecords(r.stdout);
    assert.deepStrictEqual([header.encrypted, header.size], [true, 3 * 2 ** 30], `the snapshot's encryption is the reply's, not its tags'${describe(r)}`);
    assert.deepStrictEqual(blocks.map((b) => [b.index, b.token]), [[0, 'AAAA+/b=c d'], [5, 'plain']]);
    assert.strictEqual(r.stderr, '');

    // A wrong secret: EC2's XML error is read as the SDK would raise it; the listing then fails.
    const forged = await sh(`ebs-blocks --endpoint-url ${server.url} ${SNAPSHOT}`, { env: { ...env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' } });
    assert.strictEqual(forged.code, 1, describe(forged));
    assert.match(forged.stderr, /cannot describe the snapshot \(.*DescribeSnapshots: AuthFailure: signature /, describe(forged));
    assert.match(posts(server).at(-1).problem, /^signature /);
  } finally {
    server.close();
  }
});

test('a clock an hour off: DescribeSnapshots refused for its time corrects the signing time for the SDK\'s calls too', async () => {
  const server = await startVerifier({ skewMs: 3600_000 });
  try {
    const r = await ok(`ebs-blocks --endpoint-url ${server.url} ${SNAPSHOT}`, { env });
    assert.deepStrictEqual(server.seen.map((s) => s.problem ?? 'ok'), ['skew', 'ok', 'ok'], `refused once, then DescribeSnapshots and ListSnapshotBlocks verify${describe(r)}`);
    assert.strictEqual(manifestRecords(r.stdout)[0].encrypted, true, describe(r));
  } finally {
    server.close();
  }
});

test('the EC2 endpoint is the one the EC2 client resolves, for every partition, FIPS and dual-stack', () => {
  const { ec2Host } = require('../dist/core/ebs-describe.js');
  const regions = ['us-east-1', 'eu-west-1', 'us-gov-west-1', 'us-gov-east-1', 'cn-north-1', 'us-iso-east-1', 'us-isob-east-1', 'eu-isoe-west-1', 'us-isof-south-1', 'eusc-de-east-1', 'mx-central-1'];
  const outcome = (f) => {
    try {
      return f();
    } catch (err) {
      return `error: ${err.message}`;
    }
  };
  for (const Region of regions) {
    const ebs = new EBSClient({ region: Region }).config.endpointProvider;
    const ec2 = new EC2Client({ region: Region }).config.endpointProvider;
    for (const UseFIPS of [false, true]) {
      for (const UseDualStack of [false, true]) {
        const params = { Region, UseFIPS, UseDualStack };
        const expected = outcome(() => ec2(params).url.href);
        const ours = outcome(() => {
          const url = new URL(ebs(params).url.href);
          url.hostname = ec2Host(url.hostname, params);
          return url.href;
        });
        assert.strictEqual(ours, expected, JSON.stringify(params));
      }
    }
  }
});

test('DescribeSnapshots replies: the fields of each snapshot; anything else is no reply', () => {
  const { snapshotItems } = require('../dist/core/ebs-describe.js');
  assert.deepStrictEqual(snapshotItems(DESCRIBED), [
    { snapshotId: SNAPSHOT, volumeId: 'vol-1234567890abcdef0', status: 'completed', statusMessage: '', progress: '100%', volumeSize: '3', description: 'Daily & weekly', encrypted: 'true' },
  ]);
  const response = (set) => `<?xml version="1.0"?><DescribeSnapshotsResponse xmlns="x"><requestId>r</requestId>${set}</DescribeSnapshotsResponse>`;
  assert.deepStrictEqual(snapshotItems(response('<snapshotSet/>')), []);
  assert.deepStrictEqual(snapshotItems(response('<snapshotSet></snapshotSet>')), []);
  assert.deepStrictEqual(snapshotItems(response('<snapshotSet><item><status>pending</status></item><item><status x="a/b"/></item></snapshotSet>')), [{ status: 'pending' }, { status: '' }]);
  for (const bad of [DESCRIBED.slice(0, -10), response('<snapshotSet><item></snapshotSet></item>'), '<Response><Errors/></Response>', '', 'not xml', `${DESCRIBED}<x/>`]) {
    assert.strictEqual(snapshotItems(bad), undefined, bad);
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
