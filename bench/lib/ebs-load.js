'use strict';
// Load generator for bench/ebs-emulator.sh: HTTP/1.1 keep-alive requests written on raw sockets
// from CONCURRENCY connections for SECONDS, against an ebs-emulator at URL whose process id is PID.
//   node bench/lib/ebs-load.js get URL PID SNAPSHOT [SECONDS] [CONCURRENCY]
//     GetSnapshotBlock over every listed block of SNAPSHOT in turn; bodies read and discarded.
//   node bench/lib/ebs-load.js put URL PID VOLUME_GIB [SECONDS] [CONCURRENCY]
//     PutSnapshotBlock into a new pending snapshot of VOLUME_GIB, cycling over its block indexes
//     (so a server keeping blocks in memory holds at most the volume), the data one of 8
//     precomputed blocks with its SHA-256 (so the client hashes nothing).
//   node bench/lib/ebs-load.js flood URL PID SNAPSHOT [COUNT] [CONCURRENCY]
//     Exactly COUNT GetSnapshotBlock requests as fast as CONCURRENCY connections can send them
//     (against a server with quotas on): how many were accepted, how many throttled and with
//     which error, and the accepted rate.
// Prints one JSON line: requests, seconds, req/s, MiB/s, errors, and the CPU seconds of the
// server (from /proc/PID/stat) and of this client over the measured window.
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');

const BLOCK = 524288;
const TICKS = 100; // USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux
const [mode, url, pid, arg, seconds = '10', concurrency = '64'] = process.argv.slice(2);
if (!['get', 'put', 'flood'].includes(mode) || !url || !pid || !arg) {
  console.error('usage: ebs-load.js get|put|flood URL PID SNAPSHOT|VOLUME_GIB [SECONDS|COUNT] [CONCURRENCY]');
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

/**
 * One keep-alive connection speaking just enough HTTP/1.1 for this: a request, then the status
 * line and Content-Length of the answer, whose body is counted and dropped. Node's http client
 * spent about 0.8 ms of CPU per 512 KiB body here (against 0.2 ms for this), which on 2 shared
 * cores would have measured the client rather than the server.
 */
class Connection {
  constructor() {
    const { hostname, port } = new URL(url);
    this.host = new URL(url).host;
    // Reads land in one buffer per connection (onread) rather than a fresh 64 KiB one each.
    const buffer = Buffer.allocUnsafe(1 << 20);
    this.socket = net.connect({ port: Number(port), host: hostname, onread: { buffer, callback: (n, buf) => this.onData(buf.subarray(0, n)) } });
    this.socket.setNoDelay(true);
    this.head = Buffer.alloc(0);
    this.status = 0;
    this.need = -1;
    this.got = 0;
    this.waiting = null;
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('connection closed')));
  }
  fail(err) {
    const w = this.waiting;
    this.waiting = null;
    if (w) w.reject(err);
  }
  onData(chunk) {
    let off = 0;
    while (off < chunk.length) {
      if (this.need < 0) {
        const rest = chunk.subarray(off);
        const joined = this.head.length ? Buffer.concat([this.head, rest]) : rest;
        const end = joined.indexOf('\r\n\r\n');
        if (end < 0) {
          // Copied: the read buffer is reused by the next read.
          this.head = Buffer.from(joined);
          return;
        }
        const text = joined.subarray(0, end).toString('latin1');
        const length = /\r\ncontent-length: *(\d+)/i.exec(text);
        if (!length) return this.fail(new Error(`an answer without Content-Length: ${text.split('\r\n')[0]}`));
        this.status = Number(text.slice(9, 12));
        this.errorType = /\r\nx-amzn-errortype: *([^\r]*)/i.exec(text)?.[1];
        this.need = Number(length[1]);
        this.got = 0;
        off = chunk.length - (joined.length - (end + 4));
        this.head = Buffer.alloc(0);
      }
      const take = Math.min(this.need, chunk.length - off);
      this.need -= take;
      this.got += take;
      off += take;
      if (this.need === 0) {
        this.need = -1;
        const w = this.waiting;
        this.waiting = null;
        w.resolve([this.status, this.got, this.errorType]);
      }
    }
  }
  /** Resolves with [status, body length, x-amzn-ErrorType] once the whole answer has arrived. */
  request(method, path, headers = {}, body) {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      let head = `${method} ${path} HTTP/1.1\r\nHost: ${this.host}\r\nAuthorization: ${AUTH.authorization}\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      if (body) {
        this.socket.cork();
        this.socket.write(`${head}\r\n`, 'latin1');
        this.socket.write(body);
        this.socket.uncork();
      } else this.socket.write(`${head}\r\n`, 'latin1');
    });
  }
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
      const conn = new Connection();
      while (performance.now() < stopAt) {
        const [status, len] = await one(conn, next++);
        if (status >= 200 && status < 300 && len === (mode === 'get' ? BLOCK : 0)) done++;
        else if (errors++ < 3) firstErrors.push(`${status} (${len} bytes)`);
      }
      conn.socket.destroy();
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = [serverCpu() - cpu0[0], clientCpu() - cpu0[1]];
  return { op: mode === 'get' ? 'GetSnapshotBlock' : 'PutSnapshotBlock', requests: done, seconds: +elapsed.toFixed(3), perSecond: +(done / elapsed).toFixed(1), mibPerSecond: +((done * BLOCK) / 2 ** 20 / elapsed).toFixed(1), errors, firstErrors, serverCpuSeconds: +cpu[0].toFixed(2), clientCpuSeconds: +cpu[1].toFixed(2), concurrency: Number(concurrency) };
}

async function blockPaths(snapshot) {
  const blocks = [];
  let token;
  do {
    const q = `maxResults=10000${token ? `&pageToken=${encodeURIComponent(token)}` : ''}`;
    const page = await json('GET', `/snapshots/${snapshot}/blocks?${q}`);
    for (const b of page.Blocks) blocks.push(`/snapshots/${snapshot}/blocks/${b.BlockIndex}?blockToken=${encodeURIComponent(b.BlockToken)}`);
    token = page.NextToken;
  } while (token);
  if (!blocks.length) throw new Error(`${snapshot} lists no blocks`);
  return blocks;
}

async function getLoad(snapshot) {
  const blocks = await blockPaths(snapshot);
  return drive((conn, n) => conn.request('GET', blocks[n % blocks.length]));
}

/** COUNT requests at once; the accepted rate counts from the first answer to the last accepted one. */
async function floodLoad(snapshot) {
  const blocks = await blockPaths(snapshot);
  // The listing itself took from the list quota, not the get quota; wait out any burst it used.
  await new Promise((r) => setTimeout(r, 1000));
  const total = Number(seconds);
  const answers = {};
  let next = 0;
  let accepted = 0;
  let lastAccepted = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Number(concurrency) }, async () => {
      const conn = new Connection();
      while (next < total) {
        const [status, len, type] = await conn.request('GET', blocks[next++ % blocks.length]);
        const key = `${status}${type ? ` ${type}` : ''}`;
        answers[key] = (answers[key] ?? 0) + 1;
        if (status === 200 && len === BLOCK) {
          accepted++;
          lastAccepted = performance.now();
        }
      }
      conn.socket.destroy();
    }),
  );
  const seconds_ = (performance.now() - t0) / 1000;
  const acceptedSeconds = (lastAccepted - t0) / 1000;
  return { op: 'GetSnapshotBlock flood', requests: total, seconds: +seconds_.toFixed(3), accepted, acceptedSeconds: +acceptedSeconds.toFixed(3), acceptedPerSecond: +(accepted / acceptedSeconds).toFixed(1), answers, concurrency: Number(concurrency) };
}

async function putLoad(volumeGiB) {
  const { SnapshotId } = await json('POST', '/snapshots', { VolumeSize: Number(volumeGiB) });
  const data = Array.from({ length: 8 }, () => crypto.randomBytes(BLOCK));
  const headers = data.map((d) => ({ 'x-amz-Data-Length': String(BLOCK), 'x-amz-Checksum': crypto.createHash('sha256').update(d).digest('base64'), 'x-amz-Checksum-Algorithm': 'SHA256', 'content-length': BLOCK }));
  const indexes = Number(volumeGiB) * 2048;
  const result = await drive((conn, n) => conn.request('PUT', `/snapshots/${SnapshotId}/blocks/${n % indexes}`, headers[n % 8], data[n % 8]));
  return { ...result, snapshot: SnapshotId };
}

(mode === 'get' ? getLoad(arg) : mode === 'flood' ? floodLoad(arg) : putLoad(arg))
  .then((r) => {
    console.log(JSON.stringify(r));
    agent.destroy();
  })
  .catch((e) => {
    console.error(`ebs-load: ${e.message}`);
    process.exitCode = 1;
    agent.destroy();
  });
