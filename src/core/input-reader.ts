// A stage's input read straight into where its bytes go. The bulk of every payload is read by
// the kernel into the payload's own buffer (Decoder.readTarget); lines, and the last few KiB
// of a payload, into one scratch buffer used again for every read. Through Node's stream, each
// read came in a new 64 KiB buffer whose bytes were then copied into the payload: for s3-put
// reading 1 GiB of frames from a pipe, 16,384 buffers for V8 to collect and a copy of every
// byte on the main thread (slower still into shared memory: payload-pool.ts).
//
// Pipes and sockets are read by a net.Socket with its own buffers (onread), which stops
// reading while the records read are not taken yet; regular files by reads at their offset.
// Anything else (a terminal) goes through the stream as before.
import { fstatSync, read } from 'node:fs';
import * as fsp from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';
import type { Decoder } from './decode';
import type { Rec } from './records';

// Reads into a payload's buffer only while this much of it is still to come: its last bytes
// share a read with the lines after them.
const LEAST_IN_PLACE = 16 * 1024;
// A pipe holds 64 KiB; a file reads faster in larger pieces (1 MiB: about twice 64 KiB's speed).
const PIPE_SCRATCH = 64 * 1024;
const FILE_SCRATCH = 1 << 20;

const readFd = promisify(read);

/** How `fd` can be read in place: 'socket' (a pipe or socket), 'file', or undefined. */
export function inPlaceKind(fd: number): 'socket' | 'file' | undefined {
  let stat;
  try {
    stat = fstatSync(fd);
  } catch {
    // Not open (a closed stdin): the stream says so as it always did.
    return undefined;
  }
  if (stat.isFIFO() || stat.isSocket()) return 'socket';
  if (stat.isFile()) return 'file';
  return undefined;
}

/**
 * The records of the input on `fd` (or of the file at `path`), in batches, read in place; the
 * decoder's end checks run when it ends. Stopping early (return or throw from the consumer)
 * closes what it opened.
 */
export async function* readInPlace(decoder: Decoder, source: { fd: number } | { path: string }, signal: AbortSignal): AsyncGenerator<Rec[]> {
  if ('path' in source) {
    const handle = await fsp.open(source.path, 'r');
    try {
      yield* fromFile(decoder, handle.fd, signal);
    } finally {
      await handle.close();
    }
  } else if (inPlaceKind(source.fd) === 'file') yield* fromFile(decoder, source.fd, signal);
  else yield* fromSocket(decoder, source.fd, signal);
}

async function* fromFile(decoder: Decoder, fd: number, signal: AbortSignal): AsyncGenerator<Rec[]> {
  const scratch = Buffer.allocUnsafe(FILE_SCRATCH);
  for (;;) {
    signal.throwIfAborted();
    const target = decoder.readTarget(LEAST_IN_PLACE);
    const into = target ?? scratch;
    const { bytesRead: n } = await readFd(fd, into, 0, into.length, null);
    if (n === 0) break;
    const batch: Rec[] = [];
    if (target) decoder.filled(n, batch);
    else decoder.push(scratch.subarray(0, n), batch, true);
    if (batch.length) yield batch;
  }
  decoder.finish();
}

async function* fromSocket(decoder: Decoder, fd: number, signal: AbortSignal): AsyncGenerator<Rec[]> {
  const scratch = Buffer.allocUnsafe(PIPE_SCRATCH);
  let batch: Rec[] = [];
  let inPlace = false;
  let ended = false;
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  // onread is an option of every net.Socket; @types/node lists it for net.connect() only.
  const socket = new net.Socket({
    fd,
    readable: true,
    writable: false,
    onread: {
      // Asked for after each read, for the next one.
      buffer: () => {
        const target = failed ? undefined : decoder.readTarget(LEAST_IN_PLACE);
        inPlace = target !== undefined;
        return target ?? scratch;
      },
      callback: (n: number) => {
        try {
          if (inPlace) decoder.filled(n, batch);
          else decoder.push(scratch.subarray(0, n), batch, true);
        } catch (err) {
          failed = err as Error;
        }
        wake?.();
        // Records read wait to be taken before more is read.
        return batch.length === 0 && !failed;
      },
    },
  } as net.SocketConstructorOpts);
  socket.on('end', () => {
    ended = true;
    wake?.();
  });
  socket.on('error', (err) => {
    failed ??= err;
    wake?.();
  });
  // A command stopped by a signal stops waiting for input that may never come.
  const onAbort = () => {
    failed ??= signal.reason as Error;
    wake?.();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      // Records of the read that failed are dropped with it, as a bad chunk's always were.
      if (failed) throw failed;
      if (batch.length) {
        const taken = batch;
        batch = [];
        yield taken;
        if (!ended) socket.resume();
        continue;
      }
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    decoder.finish();
  } finally {
    signal.removeEventListener('abort', onAbort);
    socket.destroy();
  }
}
