'use strict';
// The zstd binding as sluice uses it: 32 MiB chunks of mixed data (a third random, a third
// text-like, a third zeros) compressed at level 1 on the calling thread, and through ZstdPool
// (worker threads, with the SHA-256 work zstd-chunk asks for) with 1 and 2 threads; then
// decompression. Prints MB/s of raw data and checks the frame header (content size, no checksum).
// Usage: node bench/zstd-binding.js [MiB]   (default 256; needs `npx tsc -p .` first)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const binding = require('zstd-napi/binding');
const { chunkBuffer, compressSync, frameInfo } = require('../dist/core/zstd.js');
const { ZstdPool } = require('../dist/core/zstd-pool.js');

const MiB = 1 << 20;
const CHUNK = 32 * MiB;
const BLOCK = 512 * 1024;
const total = Number(process.argv[2] || 256) * MiB;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-zstd-bench-'));
const file = path.join(tmp, 'mixed.img');
execFileSync('node', [path.join(__dirname, 'lib/mixed-image.js'), file, String(total)]);
const data = fs.readFileSync(file);
fs.rmSync(tmp, { recursive: true, force: true });
const chunks = [];
for (let o = 0; o < data.length; o += CHUNK) chunks.push(data.subarray(o, o + CHUNK));
const REPS = 3;

async function best(label, fn) {
  let fastest = Infinity;
  for (let i = 0; i < REPS; i++) {
    const start = process.hrtime.bigint();
    await fn();
    fastest = Math.min(fastest, Number(process.hrtime.bigint() - start) / 1e9);
  }
  console.log(`  ${label.padEnd(62)} ${(data.length / 1e6 / fastest).toFixed(0).padStart(5)} MB/s`);
}

async function main() {
  console.log(`zstd binding: zstd-napi, libzstd ${binding.versionString()}, ${data.length / MiB} MiB in 32 MiB chunks, level 1, best of ${REPS}`);
  const frame = compressSync(chunks[0]);
  const info = frameInfo(frame);
  console.log(`  frame header: content size ${info.contentSize} (expected ${chunks[0].length}), checksum ${info.checksum ? 'present' : 'none'}`);

  const cctx = new binding.CCtx();
  cctx.setParameter(binding.CParameter.compressionLevel, 1);
  cctx.setParameter(binding.CParameter.contentSizeFlag, 1);
  cctx.setParameter(binding.CParameter.checksumFlag, 0);
  const dst = Buffer.allocUnsafe(binding.compressBound(CHUNK));
  await best('CCtx.compress2 on the main thread', () => chunks.forEach((c) => cctx.compress2(dst, c)));

  const frames = chunks.map((c) => compressSync(c));
  const dctx = new binding.DCtx();
  const out = Buffer.allocUnsafe(CHUNK);
  await best('DCtx.decompress on the main thread', () => frames.forEach((f) => dctx.decompress(out, f)));

  for (const threads of [1, 2]) {
    const pool = new ZstdPool(threads);
    const buffers = Array.from({ length: threads + 1 }, () => chunkBuffer(CHUNK));
    const zero = new Array(CHUNK / BLOCK).fill(false);
    const claims = new Array(CHUNK / BLOCK).fill(null);
    const run = async (verify) => {
      let next = 0;
      const lane = async () => {
        while (next < chunks.length) {
          const c = chunks[next++];
          const raw = buffers.pop();
          c.copy(raw);
          const r = await pool.compress({ raw, length: c.length, level: 1, zero, claims, verify, rawSha256: false });
          buffers.push(r.raw);
        }
      };
      await Promise.all(Array.from({ length: threads + 1 }, lane));
    };
    await best(`ZstdPool x${threads}: compress + SHA-256 of each block and of the frame`, () => run(true));
    const decompress = async () => {
      let next = 0;
      const lane = async () => {
        while (next < frames.length) await pool.decompress(frames[next++], CHUNK, false);
      };
      await Promise.all(Array.from({ length: threads + 1 }, lane));
    };
    await best(`ZstdPool x${threads}: decompress + SHA-256 of each block`, decompress);
    await pool.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
