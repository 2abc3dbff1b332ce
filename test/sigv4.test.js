'use strict';
// S3 requests on plain-http endpoints are signed by sluice's own SigV4 signer (src/core/sigv4.ts)
// so that the SDK's modules need not load. Its signatures must be the SDK's, byte for byte, for
// the requests it signs: the S3 client's own signer is asked for the same requests, at the same
// time, with the same credentials.
const test = require('node:test');
const assert = require('node:assert');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { S3Client } = require('@aws-sdk/client-s3');
const { SigV4Signer, canonicalQuery } = require('../dist/core/sigv4.js');
const { execFile } = require('node:child_process');
const { promisify } = require('node:util');

const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const base = { method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 9000 };
const requests = [
  // Keys whose path segments were escaped once by the caller, as S3 signs them.
  { ...base, path: '/bkt/p/a%20b/%C3%BC%2B%25.bin', query: {}, headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY, range: 'bytes=0-8388607' } },
  { ...base, path: '/bkt/it%27s%20%281%29%2A%21~.txt', query: {}, headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY, 'if-match': '"0123456789abcdef0123456789abcdef"' } },
  // A listing's query: names and values that need escaping, in no particular order.
  {
    ...base,
    path: '/bkt',
    query: { 'list-type': '2', prefix: 'p/ü +%&=/', 'max-keys': '1000', 'encoding-type': 'url', 'continuation-token': 'a/b+c==' },
    headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY },
  },
  // Headers with spaces to fold, and ones that are never signed.
  { ...base, path: '/bkt/k', query: { 'start-after': 'x y' }, headers: { host: '127.0.0.1:9000', 'x-amz-content-sha256': EMPTY, 'x-amz-meta-note': '  two   spaces  ', 'user-agent': 'sluice', 'x-amzn-trace-id': 'Root=1' } },
];

async function sdkSigner(credentials, region) {
  const client = new S3Client({ region, credentials });
  return client.config.signer({ name: 'sigv4', properties: {} });
}

for (const session of [undefined, 'FwoGZXIvYXdzEBYaDH+session/token==']) {
  test(`the signatures are the SDK's own${session ? ', with a session token' : ''}`, async () => {
    const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', ...(session ? { sessionToken: session } : {}) };
    const theirs = await sdkSigner(credentials, 'eu-west-3');
    const ours = new SigV4Signer(async () => credentials, 'eu-west-3');
    // Two days: the signing key is made again when the day changes.
    for (const when of ['2026-11-30T23:59:59.123Z', '2026-12-01T00:00:01.000Z']) {
      for (const request of requests) {
        const options = { signingDate: new Date(when), signingService: 's3' };
        const expected = await theirs.sign(structuredClone(request), options);
        const got = await ours.sign(structuredClone(request), options);
        for (const name of ['authorization', 'x-amz-date', 'x-amz-security-token']) {
          assert.strictEqual(got.headers[name], expected.headers[name], `${name} of ${request.path} at ${when}`);
        }
        assert.strictEqual(got.path, request.path, 'the path is sent as given');
      }
    }
  });
}

test('the query is sent as it is signed: escaped, in the order of its names', () => {
  assert.strictEqual(canonicalQuery({ prefix: 'a b+/ü', 'list-type': '2', 'continuation-token': 'x=y' }), 'continuation-token=x%3Dy&list-type=2&prefix=a%20b%2B%2F%C3%BC');
  assert.strictEqual(canonicalQuery({}), '');
});

test('credentials: the environment\'s keys without loading the chain; a named profile goes to the chain', async () => {
  // In a process of its own, where nothing else has loaded the SDK's modules.
  const script = `
    const { credentialSource } = require(${JSON.stringify(require.resolve('../dist/core/aws-credentials.js'))});
    (async () => {
      const env = await credentialSource(undefined)();
      const loaded = Object.keys(require.cache).some((k) => k.includes('credential-provider-node'));
      const named = await credentialSource('no-such-profile')().then(() => 'found', (err) => String(err.message));
      console.log(JSON.stringify({ env, loaded, named }));
    })();`;
  const env = { ...process.env, AWS_ACCESS_KEY_ID: 'AKIDENV', AWS_SECRET_ACCESS_KEY: 'secret-env', AWS_SESSION_TOKEN: 'token-env', AWS_CONFIG_FILE: '/nonexistent/config', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/credentials', AWS_EC2_METADATA_DISABLED: 'true' };
  delete env.AWS_PROFILE;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { env });
  const got = JSON.parse(stdout);
  assert.deepStrictEqual(got.env, { accessKeyId: 'AKIDENV', secretAccessKey: 'secret-env', sessionToken: 'token-env' });
  assert.strictEqual(got.loaded, false, 'the chain was not loaded for them');
  // The profile named is looked for, not the environment's keys taken instead.
  assert.match(got.named, /no-such-profile|Could not load credentials/);
});
