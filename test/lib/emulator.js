'use strict';
// Starts the real bin/ebs-emulator on a free port and talks to it the ways a user would: the AWS
// SDK's EBS and EC2 clients, raw HTTP (to see status lines and headers), and /usr/bin/aws.
const { spawn, execFile } = require('node:child_process');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const {
  EBSClient,
  StartSnapshotCommand,
  PutSnapshotBlockCommand,
  CompleteSnapshotCommand,
  ListSnapshotBlocksCommand,
  ListChangedBlocksCommand,
  GetSnapshotBlockCommand,
} = require('@aws-sdk/client-ebs');
const { EC2Client, DescribeSnapshotsCommand } = require('@aws-sdk/client-ec2');
const { BIN } = require('./run');

const BLOCK = 524288;
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
const AWS_CLI = '/usr/bin/aws';
const running = new Set();

// A test that fails half-way must not leave a server behind.
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
});

/**
 * Starts `bin/ebs-emulator --port 0 ...flags` and waits for its endpoint record. Resolves with
 * { url, pid, record, stderr(), stop(), ebs(opts), ec2(), rss() }; stop() sends SIGTERM and
 * resolves with { code, signal } once the process has exited.
 */
function startEmulator(flags = [], { env } = {}) {
  const child = spawn(path.join(BIN, 'ebs-emulator'), ['--port', '0', ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  running.add(child);
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => running.delete(child));
  return new Promise((resolve, reject) => {
    const fail = (why) => {
      child.kill('SIGKILL');
      reject(new Error(`ebs-emulator ${flags.join(' ')}: ${why}\n--- stderr:\n${stderr}\n--- stdout:\n${stdout}`));
    };
    const timer = setTimeout(() => fail('no endpoint record within 10 s'), 10000);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(`exited (${code ?? signal}) before printing its endpoint`);
    });
    child.on('error', (e) => fail(e.message));
    child.stdout.on('data', (d) => {
      stdout += d;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      let record;
      try {
        record = JSON.parse(stdout.slice(0, nl));
      } catch (e) {
        return fail(`first stdout line is not JSON: ${e.message}`);
      }
      const url = record.url;
      resolve({
        url,
        pid: child.pid,
        record,
        child,
        stdoutAfterRecord: () => stdout.slice(nl + 1),
        stderr: () => stderr,
        ebs: (opts) => ebsClient(url, opts),
        ec2: () => ec2Client(url),
        rss: () => rssKiB(child.pid),
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          const kill = setTimeout(() => child.kill('SIGKILL'), 10000);
          return exited.finally(() => clearTimeout(kill));
        },
      });
    });
  });
}

/** An EBS client for the emulator; one attempt unless told, so every error is seen as it came. */
function ebsClient(url, { maxAttempts = 1, maxSockets = 64 } = {}) {
  return new EBSClient({
    endpoint: url,
    region: 'us-east-1',
    credentials: CREDENTIALS,
    maxAttempts,
    // The options of the SDK's own Node handler: keep-alive connections, up to maxSockets of them.
    requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets }) },
  });
}

function ec2Client(url) {
  return new EC2Client({ endpoint: url, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
}

/** The resident set of a process in KiB, from /proc. */
function rssKiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]);
}

const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
const b64sha = (data) => sha256(data).toString('base64');

/** The LINEAR aggregate: SHA-256 of the per-block digests in ascending block-index order. */
function linearChecksum(blocksByIndex) {
  const indexes = [...blocksByIndex.keys()].sort((a, b) => a - b);
  return sha256(Buffer.concat(indexes.map((i) => sha256(blocksByIndex.get(i))))).toString('base64');
}

/** A block whose bytes depend on `tag`, so any two blocks of a test differ. */
function blockOf(tag) {
  const out = Buffer.alloc(BLOCK);
  let seed = sha256(Buffer.from(String(tag)));
  for (let o = 0; o < BLOCK; o += 32) {
    seed.copy(out, o);
    if ((o & 0xfff) === 0) seed = sha256(seed);
  }
  return out;
}

/**
 * A raw HTTP request to the emulator. SigV4-shaped Authorization so a server that wants one
 * finds it (the emulator does not check signatures). Resolves with
 * { status, headers, body (Buffer), json() , headersAt (ms, when the status line arrived) }.
 */
function raw(url, { method = 'GET', path: p = '/', headers = {}, body, agent } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(p, url);
    const req = http.request(
      u,
      {
        method,
        agent,
        headers: {
          authorization: 'AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/ebs/aws4_request, SignedHeaders=host, Signature=0',
          'x-amz-date': '20250101T000000Z',
          ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}),
          ...headers,
        },
      },
      (res) => {
        const headersAt = performance.now();
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          resolve({ status: res.statusCode, headers: res.headers, body: buf, headersAt, json: () => JSON.parse(buf.toString()) });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Checks an SDK error against what the service sends: the exception name (from
 * x-amzn-ErrorType), the HTTP status and, when given, the Reason and a message pattern.
 */
async function rejects(promise, { name, status, reason, message }) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${name}, the call succeeded`);
  const seen = `${err.name} ${err.$metadata?.httpStatusCode} Reason=${err.Reason} "${err.message}"`;
  assert.equal(err.name, name, `expected ${name}, got ${seen}`);
  if (status !== undefined) assert.equal(err.$metadata?.httpStatusCode, status, `status of ${seen}`);
  if (reason !== undefined) assert.equal(err.Reason, reason, `Reason of ${seen}`);
  if (message !== undefined) assert.match(err.message, message, `message of ${seen}`);
  return err;
}

/** DescribeSnapshots of one id through the EC2 SDK client. */
async function describeSnapshot(ec2, id) {
  const out = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
  return out.Snapshots[0];
}

/** Polls DescribeSnapshots until the snapshot leaves `pending`; resolves with its description. */
async function waitSettled(ec2, id, { timeoutMs = 15000 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const snap = await describeSnapshot(ec2, id);
    if (snap.State !== 'pending') return snap;
    if (Date.now() > until) throw new Error(`${id} still pending after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** PutSnapshotBlock with the right length, checksum and algorithm unless `headers` overrides them. */
function putBlock(ebs, SnapshotId, BlockIndex, data, overrides = {}) {
  return ebs.send(
    new PutSnapshotBlockCommand({ SnapshotId, BlockIndex, BlockData: data, DataLength: data.length, Checksum: b64sha(data), ChecksumAlgorithm: 'SHA256', ...overrides }),
  );
}

/** CompleteSnapshot with the count and LINEAR aggregate of `blocks` (a Map index -> data). */
function complete(ebs, SnapshotId, blocks, overrides = {}) {
  return ebs.send(
    new CompleteSnapshotCommand({
      SnapshotId,
      ChangedBlocksCount: blocks.size,
      Checksum: linearChecksum(blocks),
      ChecksumAlgorithm: 'SHA256',
      ChecksumAggregationMethod: 'LINEAR',
      ...overrides,
    }),
  );
}

/**
 * A completed snapshot holding `blocks` (Map index -> data), written through the SDK, sealed and
 * waited for. Resolves with its id.
 */
async function makeSnapshot(emu, { VolumeSize = 1, blocks = new Map(), ...start } = {}) {
  const ebs = emu.ebs();
  const { SnapshotId } = await ebs.send(new StartSnapshotCommand({ VolumeSize, ...start }));
  await Promise.all([...blocks].map(([i, data]) => putBlock(ebs, SnapshotId, i, data)));
  await complete(ebs, SnapshotId, blocks);
  const settled = await waitSettled(emu.ec2(), SnapshotId);
  if (settled.State !== 'completed') throw new Error(`${SnapshotId} ended ${settled.State}`);
  return SnapshotId;
}

/** Every page of ListSnapshotBlocks (or ListChangedBlocks when `first` is given, or null). */
async function listPages(ebs, second, { first, MaxResults, StartingBlockIndex, limit = 100000 } = {}) {
  const pages = [];
  let NextToken;
  do {
    const out = first === undefined
      ? await ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: second, MaxResults, StartingBlockIndex, NextToken }))
      : await ebs.send(new ListChangedBlocksCommand({ FirstSnapshotId: first ?? undefined, SecondSnapshotId: second, MaxResults, StartingBlockIndex, NextToken }));
    pages.push(out);
    NextToken = out.NextToken;
    if (pages.length > limit) throw new Error(`more than ${limit} pages listing ${second}`);
  } while (NextToken);
  return pages;
}

/** The blocks of every page, in order. */
async function listAll(ebs, second, opts) {
  const pages = await listPages(ebs, second, opts);
  return pages.flatMap((p) => p.Blocks ?? p.ChangedBlocks ?? []);
}

/** GetSnapshotBlock; resolves with { data, checksum, algorithm, length, status }. */
async function readBlock(ebs, SnapshotId, BlockIndex, BlockToken) {
  const out = await ebs.send(new GetSnapshotBlockCommand({ SnapshotId, BlockIndex, BlockToken }));
  const data = Buffer.from(await out.BlockData.transformToByteArray());
  return { data, checksum: out.Checksum, algorithm: out.ChecksumAlgorithm, length: out.DataLength, status: out.$metadata.httpStatusCode };
}

/** Reads every listed block of a snapshot and checks each body against its own checksum header. */
async function readAll(ebs, SnapshotId) {
  const blocks = new Map();
  for (const { BlockIndex, BlockToken } of await listAll(ebs, SnapshotId)) {
    const got = await readBlock(ebs, SnapshotId, BlockIndex, BlockToken);
    if (got.checksum !== b64sha(got.data)) throw new Error(`${SnapshotId} block ${BlockIndex}: body does not match its x-amz-Checksum`);
    blocks.set(BlockIndex, got.data);
  }
  return blocks;
}

/** POST /_emulator/snapshots: a completed synthetic snapshot; resolves with its SnapshotId. */
async function synthetic(emu, body) {
  const r = await raw(emu.url, { method: 'POST', path: '/_emulator/snapshots', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 201) throw new Error(`POST /_emulator/snapshots ${JSON.stringify(body)}: ${r.status} ${r.body}`);
  return r.json().SnapshotId;
}

/**
 * Two sibling synthetic snapshots of one root, 1 GiB each, with blocks written, zeroed and lost on
 * either side. Seeds `seed`, `seed + 1`, `seed + 2`; the root is denser (`rootSparseFraction`) than
 * the two children (`sparseFraction`). Resolves with { root, a, b }.
 */
async function siblingSnapshots(emu, { seed, rootSparseFraction, sparseFraction }) {
  const root = await synthetic(emu, { VolumeSize: 1, Pattern: 'every2nd', Seed: seed, SparseFraction: rootSparseFraction });
  const child = (Pattern, Seed) => synthetic(emu, { VolumeSize: 1, Pattern, Seed, SparseFraction: sparseFraction, ZeroFraction: 0.3, ParentSnapshotId: root });
  const a = await child('every4th', seed + 1);
  const b = await child('every3rd4th', seed + 2);
  return { root, a, b };
}

/** The environment that points the toolkit's commands (the AWS SDK) at an emulator, with dummy credentials. */
function emulatorEnv(emu) {
  return {
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_EBS: emu.url,
    AWS_ENDPOINT_URL_EC2: emu.url,
  };
}

/** A control API call (POST/PUT/GET /_emulator/...); resolves with the raw response. */
function control(emu, method, what, body) {
  return raw(emu.url, { method, path: `/_emulator/${what}`, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
}

/** Runs /usr/bin/aws with dummy credentials; fails loudly when it is not installed. */
function awsCli(args) {
  return new Promise((resolve) => {
    const env = { ...process.env, AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_DEFAULT_REGION: 'us-east-1', AWS_PAGER: '' };
    delete env.AWS_CA_BUNDLE;
    delete env.AWS_PROFILE;
    execFile(AWS_CLI, args, { env, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60000 }, (error, stdout, stderr) => {
      if (error?.code === 'ENOENT') stderr = `${AWS_CLI} is not installed (apt-get install awscli)`;
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 255) : 0, error, stdout, stderr, args });
    });
  });
}

module.exports = {
  startEmulator,
  ebsClient,
  ec2Client,
  raw,
  rejects,
  describeSnapshot,
  waitSettled,
  awsCli,
  AWS_CLI,
  putBlock,
  complete,
  makeSnapshot,
  listPages,
  listAll,
  readBlock,
  readAll,
  synthetic,
  siblingSnapshots,
  emulatorEnv,
  control,
  sha256,
  b64sha,
  linearChecksum,
  blockOf,
  rssKiB,
  BLOCK,
};
