'use strict';
// Where the codec's time goes, in one process without pipes or process start: the CPU time of
// the line scanner alone, of decoding and encoding with lines passed on (what strip does), and
// with every record parsed and serialized again. Best of 5 rounds each, in milliseconds.
// Usage: node bench/lib/codec-parts.js MANIFEST
const fs = require('node:fs');
const path = require('node:path');

const dist = path.resolve(__dirname, '../../dist/core');
const { Decoder } = require(path.join(dist, 'decode.js'));
const { Encoder } = require(path.join(dist, 'encode.js'));
const { LineScanner } = require(path.join(dist, 'line-scan.js'));
const { initDigest } = require(path.join(dist, 'digest.js'));
const { PAYLOAD } = require(path.join(dist, 'records.js'));

const ROUNDS = 5;
const PIPE_CHUNK = 65536; // what a pipe delivers

function cpuMs(fn) {
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.cpuUsage();
    fn();
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / 1000);
  }
  return best;
}

/** Scans every line; returns how many the scanner vouched for (the others go to JSON.parse). */
function scanAll(buf, lineEnds) {
  const scanner = new LineScanner();
  let taken = 0;
  let from = 0;
  for (const end of lineEnds) {
    if (scanner.type(buf, from, end) !== undefined) taken++;
    from = end + 1;
  }
  return taken;
}

function throughCodec(chunks, passLines) {
  const decoder = new Decoder({ command: 'bench', source: 'manifest', passLines });
  const encoder = new Encoder();
  for (const chunk of chunks) {
    const batch = [];
    decoder.push(chunk, batch);
    for (const rec of batch) {
      if (rec[PAYLOAD]) delete rec[PAYLOAD];
      encoder.push(rec);
    }
    encoder.take();
  }
  decoder.finish();
  encoder.end();
  encoder.take();
}

async function main() {
  await initDigest();
  const buf = fs.readFileSync(process.argv[2]);
  const lineEnds = [];
  for (let at = buf.indexOf(0x0a); at !== -1; at = buf.indexOf(0x0a, at + 1)) lineEnds.push(at);
  const chunks = [];
  for (let pos = 0; pos < buf.length; pos += PIPE_CHUNK) chunks.push(buf.subarray(pos, pos + PIPE_CHUNK));
  const show = (what, ms) => console.log(`  ${what.padEnd(44)} ${ms.toFixed(0).padStart(5)} ms CPU`);
  console.log(`in one process, ${lineEnds.length} lines in ${PIPE_CHUNK >> 10} KiB chunks, best of ${ROUNDS}:`);
  let taken = 0;
  show('line scanner alone', cpuMs(() => (taken = scanAll(buf, lineEnds))));
  console.log(`  (it vouched for ${taken} lines; the others are parsed)`);
  show('decode + encode, lines passed on (strip)', cpuMs(() => throughCodec(chunks, true)));
  show('decode + encode, every record parsed', cpuMs(() => throughCodec(chunks, false)));
}

main().catch((err) => {
  process.stderr.write(`codec-parts: ${err.message}\n`);
  process.exitCode = 1;
});
