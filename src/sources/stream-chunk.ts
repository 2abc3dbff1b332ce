import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { command, EXIT_STATUS_TEXT, sizeFlag, stringFlag } from '../core/command';
import { DEFAULT_MAX_PAYLOAD } from '../core/decode';
import { sha256b64 } from '../core/digest';
import type { Encoder } from '../core/encode';
import { SluiceError, UsageError } from '../core/errors';
import { PAYLOAD, type ObjectRec } from '../core/records';
import { source } from '../core/stage';
import { MAX_PARTS, manifestKey, manifestOf, nameProblem, partKey } from '../core/stream-layout';

// 8 MiB: a part is then one PUT on S3 (the store goes multipart above 8 MiB), carrying its
// SHA-256 for S3 to check; and the stages after this one hold several parts at once (s3-get
// and s3-put 8 each by default), so 64 MiB parts would cost half a GiB of memory there.
const DEFAULT_SIZE = 8 << 20;

const USAGE = `Usage: stream-chunk [options] [FILE|-]

Cuts any byte stream (stdin, or FILE) into numbered "object" frames of --size bytes (the
last one shorter), each with its size and SHA-256 (base64), keyed NAME/0000000000,
NAME/0000000001, ... so that a store lists them in order. After the last part comes
NAME/stream.json, the stream's manifest: its total size, part count, part size and the
SHA-256 of the whole stream. It is marked "commit": true, so s3-put writes it only after
every part and a valid trailer: a store that holds it holds the whole stream. An empty input
gives no part, only the manifest. stream-join puts the bytes back together.

Memory holds one part being read and one being written.

Options:
  --size N                 bytes per part (default 8M): a number, or with K, M or G (KiB,
                           MiB, GiB), at most ${DEFAULT_MAX_PAYLOAD >> 20}M (the largest frame)
  --name NAME              the key prefix of the parts and manifest (default "stream");
                           may hold slashes ("db/2024-06-01")
  -h, --help               show this text

Examples:
  zfs send tank/fs@monday | stream-chunk --name fs@monday | s3-put s3://bkt/zfs > put.journal
  pg_dump db | stream-chunk --size 64M | s3-put /backups/db
  s3-list /backups/db | s3-get | stream-join db.dump

A part or the manifest is never written when reading the input fails: the status is then 1,
and the output has no trailer, so nothing downstream commits it.

${EXIT_STATUS_TEXT}
`;

export const main = command({
  name: 'stream-chunk',
  usage: USAGE,
  flags: { string: ['size', 'name'] },
  positionals: { max: 1 },
  async run(args, ctx) {
    const size = sizeFlag(args, 'size', DEFAULT_SIZE, 1, DEFAULT_MAX_PAYLOAD);
    const name = stringFlag(args, 'name') ?? 'stream';
    const problem = nameProblem(name);
    if (problem) throw new UsageError(`--name: ${problem}`);
    const path = args._[0] ?? '-';
    let input: Readable;
    if (path === '-') {
      if (process.stdin.isTTY) throw new UsageError('stdin is a terminal: pipe data in, or give a FILE');
      input = process.stdin;
    } else {
      input = createReadStream(path, { highWaterMark: 1 << 20 });
    }
    // A signal ends the read at once (stdin may be waiting for a writer that never comes).
    if (ctx.signal.aborted) input.destroy();
    else ctx.signal.addEventListener('abort', () => input.destroy(), { once: true });
    const sourceName = path === '-' ? 'stdin' : path;
    await source(ctx, { frames: true }, (out) => chunk(input, sourceName, name, size, out));
  },
});

async function* chunk(input: Readable, sourceName: string, name: string, size: number, out: Encoder): AsyncGenerator<Buffer[]> {
  const whole = createHash('sha256');
  let total = 0;
  let parts = 0;
  let part = Buffer.allocUnsafe(size);
  let filled = 0;
  const emit = (data: Buffer) => {
    if (parts >= MAX_PARTS) throw new SluiceError(`${sourceName}: more than ${MAX_PARTS} parts: give a larger --size`);
    const rec: ObjectRec = { type: 'object', key: partKey(name, parts), size: data.length, sha256: sha256b64(data), [PAYLOAD]: data };
    whole.update(data);
    total += data.length;
    parts++;
    out.push(rec);
  };
  try {
    for await (const piece of input as AsyncIterable<Buffer>) {
      for (let at = 0; at < piece.length; ) {
        const n = Math.min(piece.length - at, size - filled);
        piece.copy(part, filled, at, at + n);
        filled += n;
        at += n;
        if (filled === size) {
          emit(part);
          // The encoder holds the full part until it is written: the next one is a new buffer.
          part = Buffer.allocUnsafe(size);
          filled = 0;
          yield out.take();
        }
      }
    }
  } catch (err) {
    if (err instanceof SluiceError) throw err;
    throw new SluiceError(`reading ${sourceName}: ${(err as Error).message}`);
  }
  if (filled > 0) emit(part.subarray(0, filled));
  const manifest = Buffer.from(JSON.stringify(manifestOf({ size: total, sha256: whole.digest('base64'), parts, partSize: size, source: sourceName })) + '\n');
  out.push({ type: 'object', key: manifestKey(name), size: manifest.length, sha256: sha256b64(manifest), commit: true, [PAYLOAD]: manifest });
  yield out.take();
}
