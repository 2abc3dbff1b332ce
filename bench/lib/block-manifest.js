'use strict';
// Writes a manifest of N block records (no payloads) with its volume header and end trailer,
// as `file-blocks disk | strip` would print for a volume of N non-zero blocks. The trailer is
// computed by the project's own encoder, so every stage accepts the file.
// Usage: node bench/lib/block-manifest.js N > FILE
const path = require('node:path');
const crypto = require('node:crypto');

const dist = path.resolve(__dirname, '../../dist/core');
const { Encoder } = require(path.join(dist, 'encode.js'));
const { initDigest } = require(path.join(dist, 'digest.js'));

async function main() {
  const count = Number(process.argv[2] ?? 1000000);
  if (!Number.isSafeInteger(count) || count < 0) throw new Error(`not a record count: ${process.argv[2]}`);
  await initDigest();
  const out = new Encoder();
  const BLOCK = 524288;
  out.push({ type: 'volume', format: 1, source: 'bench', size: count * BLOCK, blockSize: BLOCK, blocks: count });
  // Distinct, realistic 44-character checksums without hashing 512 KiB per record.
  const seed = crypto.randomBytes(32);
  for (let index = 0; index < count; index++) {
    seed.writeUInt32BE(index, 0);
    out.push({ type: 'block', index, sha256: crypto.createHash('sha256').update(seed).digest('base64') });
    if (out.pending > 16) await write(out.take());
  }
  out.end();
  await write(out.take());
}

function write(buffers) {
  return new Promise((resolve, reject) => {
    const ok = process.stdout.write(Buffer.concat(buffers));
    if (ok) resolve();
    else process.stdout.once('drain', resolve).once('error', reject);
  });
}

main().catch((err) => {
  process.stderr.write(`block-manifest: ${err.message}\n`);
  process.exitCode = 1;
});
