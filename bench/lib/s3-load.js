'use strict';
// A server's own S3 ceiling: COUNT plain PUTs (or GETs) of SIZE-byte objects, CONCURRENCY at a
// time on keep-alive connections, with a signature nobody checks (moto does not by default, nor bench/lib/s3-sink.js), one
// reused buffer for every body and every read dropped, so the client costs as little as it can.
// PUT bodies are zeros: the sink serves zeros back, and moto does not care.
// Usage: node bench/lib/s3-load.js put|get URL BUCKET PREFIX COUNT SIZE CONCURRENCY
// Prints {"op":...,"seconds":...,"bytes":...} on stdout; fails on any answer but 200.
const http = require('node:http');

const [op, base, bucket, prefix, count, size, concurrency] = process.argv.slice(2);
const n = Number(count);
const bytes = Number(size);
const jobs = Number(concurrency);
if (!['put', 'get'].includes(op) || !(n > 0 && bytes >= 0 && jobs > 0)) {
  process.stderr.write('usage: s3-load.js put|get URL BUCKET PREFIX COUNT SIZE CONCURRENCY\n');
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: jobs });
const body = Buffer.alloc(bytes);
// moto takes an unchecked signature as a signed-in caller; without one it refuses GETs (403).
const AUTH = {
  authorization: 'AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000',
  'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
  'x-amz-date': '20260101T000000Z',
};
const keyOf = (i) => `${prefix}${String(i).padStart(6, '0')}`;

function once(i) {
  return new Promise((resolve, reject) => {
    const url = `${base}/${bucket}/${keyOf(i)}`;
    const headers = { ...AUTH, ...(op === 'put' ? { 'content-length': bytes, 'content-type': 'application/octet-stream' } : {}) };
    const req = http.request(url, { method: op === 'put' ? 'PUT' : 'GET', agent, headers }, (res) => {
      let got = 0;
      res.on('data', (c) => (got += c.length));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${op} ${url}: HTTP ${res.statusCode}`));
        if (op === 'get' && got !== bytes) return reject(new Error(`get ${url}: ${got} bytes, expected ${bytes}`));
        resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(op === 'put' ? body : undefined);
  });
}

async function main() {
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, n) }, async () => {
      while (next < n) await once(next++);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  process.stdout.write(JSON.stringify({ op, seconds, bytes: n * bytes, objects: n, concurrency: jobs }) + '\n');
}
main().catch((err) => {
  process.stderr.write(`s3-load: ${err.message}\n`);
  process.exitCode = 1;
});
