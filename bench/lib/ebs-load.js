'use strict';
// Load generator for bench/ebs-emulator.sh: raw HTTP keep-alive requests from CONCURRENCY
// connections for SECONDS, against an ebs-emulator at URL whose process id is PID.
//   node bench/lib/ebs-load.js get URL PID SNAPSHOT [SECONDS] [CONCURRENCY]
//     GetSnapshotBlock over every listed block of SNAPSHOT in turn; bodies read and discarded.
//   node bench/lib/ebs-load.js put URL PID VOLUME_GIB [SECONDS] [CONCURRENCY]
//     PutSnapshotBlock into a new pending snapshot of VOLUME_GIB, cycling over its block indexes
//     (so a server keeping blocks in memory holds at most the volume), the data one of 8
//     precomputed blocks with its SHA-256 (so the client hashes nothing).
// Prints one JSON line: requests, seconds, req/s, MiB/s, errors, and the CPU seconds of the
// server (from /proc/PID/stat) and of this client over the measured window.
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');

const BLOCK = 524288;
const TICKS = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux
const [mode, url, pid, arg, seconds = '10', concurrency = '64'] = process.argv.slice(2);
if (!['get', 'put'].includes(mode) || !url || !pid || !arg) {
  console.error('usage: ebs-load.js get|put URL PID SNAPSHOT|VOLUME_GIB [SECONDS] [CONCURRENCY]');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(concurrency) });
const AUTH = { authorization: 'AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/ebs/aws4_request, SignedHeaders=host, Signature=0' };

function serverCpu() {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime
}

function clientCpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** One request; resolves with [status, body length] once the whole body has been read. */
function request(method, path, headers = {}, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, url), { method, agent, headers: { ...AUTH, ...headers } }, (res) => {
      let n = 0;
      res.on('data', (c) => (n += c.length));
      res.on('end', () => resolve([res.statusCode, n]));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function json(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = data === undefined ? AUTH : { ...AUTH, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) };
    const req = http.request(new URL(path, url), { method, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** Runs `one(n)` from every connection for the measured window; returns the counts. */
async function drive(one) {
  let next = 0;
  let done = 0;
  let errors = 0;
  const firstErrors = [];
  const cpu0 = [serverCpu(), clientCpu()];
  const t0 = performance.now();
  const stopAt = t0 + Number(seconds) * 1000;
  await Promise.all(
    Array.from({ length: Number(concurrency) }, async () => {
      while (performance.now() < stopAt) {
        const [status, len] = await one(next++);
        if (status >= 200 && status < 300 && len === (mode === 'get' ? BLOCK : 0)) done++;
        else if (errors++ < 3) firstErrors.push(`${status} (${len} bytes)`);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = [serverCpu() - cpu0[0], clientCpu() - cpu0[1]];
  return { op: mode === 'get' ? 'GetSnapshotBlock' : 'PutSnapshotBlock', requests: done, seconds: +elapsed.toFixed(3), perSecond: +(done / elapsed).toFixed(1), mibPerSecond: +((done * BLOCK) / 2 ** 20 / elapsed).toFixed(1), errors, firstErrors, serverCpuSeconds: +cpu[0].toFixed(2), clientCpuSeconds: +cpu[1].toFixed(2), concurrency: Number(concurrency) };
}

async function getLoad(snapshot) {
  const blocks = [];
  let token;
  do {
    const q = `maxResults=10000${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`;
    const page = await json('GET', `/snapshots/${snapshot}/blocks?${q}`);
    for (const b of page.Blocks) blocks.push(`/snapshots/${snapshot}/blocks/${b.BlockIndex}?blockToken=${encodeURIComponent(b.BlockToken)}`);
    token = page.NextToken;
  } while (token);
  if (!blocks.length) throw new Error(`${snapshot} lists no blocks`);
  return drive((n) => request('GET', blocks[n % blocks.length]));
}

async function putLoad(volumeGiB) {
  const { SnapshotId } = await json('POST', '/snapshots', { VolumeSize: Number(volumeGiB) });
  const data = Array.from({ length: 8 }, () => crypto.randomBytes(BLOCK));
  const headers = data.map((d) => ({ 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': crypto.createHash('sha256').update(d).digest('base64'), 'x-amz-Checksum-Algorithm': 'SHA256', 'content-length': BLOCK }));
  const indexes = Number(volumeGiB) * 2048;
  const result = await drive((n) => request('PUT', `/snapshots/${SnapshotId}/blocks/${n % indexes}`, headers[n % 8], data[n % 8]));
  return { ...result, snapshot: SnapshotId };
}

(mode === 'get' ? getLoad(arg) : putLoad(arg))
  .then((r) => {
    console.log(JSON.stringify(r));
    agent.destroy();
  })
  .catch((e) => {
    console.error(`ebs-load: ${e.message}`);
    process.exitCode = 1;
    agent.destroy();
  });
