import { closeSync, constants, fstatSync, openSync, promises as fsp } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { command, EXIT_STATUS_TEXT, stringFlag } from '../core/command';
import { sha256b64 } from '../core/digest';
import type { Encoder } from '../core/encode';
import { SluiceError, UsageError } from '../core/errors';
import { dataExtents } from '../core/holes';
import { BLOCK_SIZE, FORMAT_VERSION, PAYLOAD, ZERO_BLOCK_SHA256, type BlockRec, type VolumeRec } from '../core/records';
import { source } from '../core/stage';
import { deviceSize } from '../core/device';

const USAGE = `Usage: file-blocks [options] PATH|-

Reads a file, a block device or stdin as a block stream: a "volume" header, then one "block"
record per 512 KiB block with its SHA-256 (base64, as EBS uses) and the data as payload.
All-zero blocks are marked "zero": true and carry no payload. Holes of a sparse file are not
read and not listed (an absent block reads as zeros, as on EBS). A last partial block is
padded with zeros; the header keeps the true size. From stdin or a FIFO the size is not known
at the start: a second "volume" record with the size follows the last block. A FIFO is opened
without waiting for a writer, so a signal ends the wait for one.

Options:
  --source NAME   the name the header gives the volume (default: PATH, or "stdin")
  -h, --help      show this text

Examples:
  file-blocks disk.img | zstd-chunk | s3-put /backups/disk
  file-blocks /dev/nvme1n1 | file-write copy.img
  zfs send tank/fs@s1 | file-blocks - | count

${EXIT_STATUS_TEXT}
`;

// Blocks read per system call: large reads are cheaper, and memory stays a few MiB.
const BLOCKS_PER_READ = 8;
const ZEROS = Buffer.alloc(BLOCK_SIZE);

export const main = command({
  name: 'file-blocks',
  usage: USAGE,
  flags: { string: ['source'] },
  positionals: { min: 1, max: 1 },
  async run(args, ctx) {
    const path = args._[0];
    const name = stringFlag(args, 'source') ?? (path === '-' ? 'stdin' : path);
    if (path === '-') {
      if (process.stdin.isTTY) throw new UsageError('stdin is a terminal: pipe data in, or give a PATH');
      await source(ctx, { frames: true }, (out) => readStream(name, out, endOnAbort(process.stdin, ctx.signal)));
      return;
    }
    const unopened = (err: Error) => {
      throw cannotOpen(path, err);
    };
    if ((await fsp.stat(path).catch(unopened)).isFIFO()) {
      const input = openFifo(path);
      await source(ctx, { frames: true }, (out) => readStream(name, out, endOnAbort(input, ctx.signal)));
      return;
    }
    const handle = await fsp.open(path, 'r').catch(unopened);
    try {
      const stat = await handle.stat();
      if (stat.isDirectory()) throw new SluiceError(`${path} is a directory`);
      if (stat.isFile() || stat.isBlockDevice()) {
        const size = stat.isFile() ? stat.size : await deviceSize(path, stat.rdev);
        await source(ctx, { frames: true }, (out) => readFile(handle, path, name, size, stat.isFile(), out));
      } else {
        // A character device: read it as a stream of unknown length.
        await source(ctx, { frames: true }, (out) => readStream(name, out, endOnAbort(handle.createReadStream(), ctx.signal)));
      }
    } finally {
      await handle.close();
    }
  },
});

// A FIFO is opened without waiting for a writer, and read through the event loop. A blocking
// open() (or read) waits in the thread pool, where no signal reaches it: the process could not
// end, not even on a second signal, until a writer came. A non-blocking descriptor wrapped in a
// socket waits in epoll instead: data arrives when a writer writes, the end when the last writer
// closes (a FIFO that never had a writer does not report an end), and destroying it stops the wait.
function openFifo(path: string): Readable {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw cannotOpen(path, err as Error);
  }
  if (!fstatSync(fd).isFIFO()) {
    closeSync(fd);
    throw new SluiceError(`${path} was replaced while being opened`);
  }
  return new Socket({ fd, readable: true, writable: false });
}

function cannotOpen(path: string, err: Error): SluiceError {
  return new SluiceError(`cannot open ${path}: ${err.message}`);
}

// A read waiting on an input that says nothing would outlive the signal that aborted the
// command: the input is closed with it (at once if the signal came first: the read would never
// start, and the open input would keep the process alive).
function endOnAbort(input: Readable, signal: AbortSignal): Readable {
  if (signal.aborted) input.destroy();
  else signal.addEventListener('abort', () => input.destroy(), { once: true });
  return input;
}

function header(name: string, size: number | undefined): VolumeRec {
  const rec: VolumeRec = { type: 'volume', format: FORMAT_VERSION, source: name, blockSize: BLOCK_SIZE };
  if (size !== undefined) {
    rec.size = size;
    rec.blocks = Math.ceil(size / BLOCK_SIZE);
  }
  return rec;
}

function blockRecord(index: number, data: Buffer): BlockRec {
  if (data.equals(ZEROS)) return { type: 'block', index, sha256: ZERO_BLOCK_SHA256, zero: true };
  return { type: 'block', index, sha256: sha256b64(data), [PAYLOAD]: data };
}

/** Ranges of blocks to read: the data extents rounded out to blocks, or the whole file. */
function* blockRanges(fd: number, size: number, sparse: boolean): Generator<[number, number]> {
  const total = Math.ceil(size / BLOCK_SIZE);
  const extents = sparse ? dataExtents(fd, size) : null;
  if (!extents) {
    if (total) yield [0, total];
    return;
  }
  let next = 0; // first block not yet yielded: extents sharing a block must not repeat it
  for (const { start, end } of extents) {
    const first = Math.max(next, Math.floor(start / BLOCK_SIZE));
    const last = Math.ceil(end / BLOCK_SIZE);
    if (last > first) yield [first, last];
    next = Math.max(next, last);
  }
}

async function* readFile(handle: fsp.FileHandle, path: string, name: string, size: number, regular: boolean, out: Encoder): AsyncGenerator<Buffer[]> {
  out.push(header(name, size));
  yield out.take();
  for (const [first, last] of blockRanges(handle.fd, size, regular)) {
    for (let index = first; index < last; index += BLOCKS_PER_READ) {
      const count = Math.min(BLOCKS_PER_READ, last - index);
      const buf = Buffer.allocUnsafe(count * BLOCK_SIZE);
      const offset = index * BLOCK_SIZE;
      const want = Math.min(count * BLOCK_SIZE, size - offset);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await handle.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) throw shrank(path, size, offset + got);
        got += bytesRead;
      }
      buf.fill(0, got); // pad the last partial block
      for (let i = 0; i < count; i++) out.push(blockRecord(index + i, buf.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE)));
      yield out.take();
    }
  }
  // A file cut short after its extents were found would pass for one with holes at its end.
  if (regular) {
    const now = (await handle.stat()).size;
    if (now < size) throw shrank(path, size, now);
  }
}

function shrank(path: string, size: number, end: number): SluiceError {
  return new SluiceError(`${path}: the file shrank while being read: it ended at byte ${end}, not at ${size}`);
}

async function* readStream(name: string, out: Encoder, input: AsyncIterable<Buffer>): AsyncGenerator<Buffer[]> {
  out.push(header(name, undefined));
  let block = Buffer.allocUnsafe(BLOCK_SIZE);
  let filled = 0;
  let index = 0;
  let size = 0;
  for await (const chunk of input) {
    size += chunk.length;
    let pos = 0;
    while (pos < chunk.length) {
      const take = Math.min(BLOCK_SIZE - filled, chunk.length - pos);
      chunk.copy(block, filled, pos, pos + take);
      filled += take;
      pos += take;
      if (filled === BLOCK_SIZE) {
        out.push(blockRecord(index++, block));
        block = Buffer.allocUnsafe(BLOCK_SIZE);
        filled = 0;
      }
    }
    if (out.pending) yield out.take();
  }
  if (filled) {
    block.fill(0, filled);
    out.push(blockRecord(index++, block));
  }
  out.push(header(name, size));
  yield out.take();
}
