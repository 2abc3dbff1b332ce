import { addAbortSignal } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Context } from './command';
import { Decoder, decodeWith, type DecodeOptions } from './decode';
import { inPlaceKind, readInPlace } from './input-reader';
import { Encoder } from './encode';
import { IntegrityError, InvalidInputError, UsageError } from './errors';
import { LINE, type Rec } from './records';

/**
 * The records of a stage's input (stdin, or the file at `path`), in batches: read in place
 * where the input is a pipe, a socket or a file (input-reader.ts), else through its stream.
 */
function inputRecords(ctx: Context, path: string | undefined, opts: Partial<DecodeOptions> = {}): Batches {
  const stdin = path === undefined || path === '-';
  const name = stdin ? 'stdin' : path;
  ctx.input = name;
  const decoder = new Decoder({ command: ctx.command, source: name, ...opts });
  if (!stdin) return readInPlace(decoder, { path }, ctx.signal);
  if (inPlaceKind(0)) return readInPlace(decoder, { fd: 0 }, ctx.signal);
  // A terminal: its stream, ended by the command's signal (as a pipeline would).
  return decodeWith(decoder, addAbortSignal(ctx.signal, process.stdin));
}

export type Batches = AsyncIterable<Rec[]>;

/**
 * The body of a stage: reads batches of records (none for a source) and yields what it wants
 * written, normally `out.take()` once per batch so backpressure reaches it batch by batch.
 * It may return extra fields for the trailer.
 */
export type StageBody = (records: Batches, out: Encoder) => AsyncIterable<Buffer[]>;
export type SourceBody = (out: Encoder) => AsyncIterable<Buffer[]>;

export interface StageOptions {
  /** Input path or `-`; stdin when absent. */
  input?: string;
  /**
   * The stage writes binary payloads: refuse a terminal on stdout. 'passed-on': it writes the
   * payloads its input carries, if any, so a manifest may go to a terminal but a stream of
   * frames is refused before its first payload (and the record line before it) is written.
   */
  frames?: boolean | 'passed-on';
  decode?: Partial<DecodeOptions>;
}

/** A transform: records in on stdin (or a file), records out on stdout, trailer carried. */
export async function transform(ctx: Context, opts: StageOptions, body: StageBody): Promise<void> {
  refuseTerminal(ctx, opts.frames);
  const records = inputRecords(ctx, opts.input, opts.decode);
  await pipeline(
    async function* () {
      const out = new Encoder();
      const watchPayloads = opts.frames === 'passed-on' && process.stdout.isTTY === true;
      for await (const buffers of body(records, out)) {
        if (watchPayloads && out.payloadBytes > 0) {
          throw new UsageError('stdout is a terminal and the stream carries binary frames: redirect it to a file or a pipe, or pipe it through strip');
        }
        yield* buffers;
      }
      out.end();
      yield* out.take();
    },
    process.stdout,
    { signal: ctx.signal },
  );
}

/** A source: records out on stdout, ending with the trailer. */
export async function source(ctx: Context, opts: { frames?: boolean }, body: SourceBody): Promise<void> {
  refuseTerminal(ctx, opts.frames);
  await pipeline(
    async function* () {
      const out = new Encoder();
      for await (const buffers of body(out)) yield* buffers;
      out.end();
      yield* out.take();
    },
    process.stdout,
    { signal: ctx.signal },
  );
}

/** A sink that writes nothing on stdout: consumes records; throws if the trailer is missing. */
export async function sink(ctx: Context, opts: StageOptions, consume: (records: Batches) => Promise<void>): Promise<void> {
  await consume(inputRecords(ctx, opts.input, opts.decode));
}

function refuseTerminal(ctx: Context, frames: StageOptions['frames']): void {
  if (frames === true && process.stdout.isTTY) {
    throw new UsageError('stdout is a terminal: redirect it to a file or a pipe (this command writes binary frames)');
  }
}

/** The name of what a stage is reading, for messages about a record. */
export function describeRecord(rec: Rec): string {
  if (rec.type === 'block') return `block ${String(rec.index)}`;
  if (rec.type === 'object') return `object ${JSON.stringify(rec.key)}`;
  return `${rec.type} record`;
}

/** Where an input record was read, `command: source:line`, to begin a message about it. */
export function recordAt(ctx: Context, rec: Rec): string {
  return `${ctx.command}: ${ctx.input ?? 'stdin'}:${rec[LINE] ?? '?'}`;
}

/** An error about one input record, located as `command: source:line: what`. */
export function badRecord(ctx: Context, rec: Rec, what: string): InvalidInputError {
  return new InvalidInputError(`${recordAt(ctx, rec)}: ${what}`);
}

/** Data of one input record that failed a check (status 5), located like badRecord. */
export function integrityError(ctx: Context, rec: Rec, what: string): IntegrityError {
  return new IntegrityError(`${recordAt(ctx, rec)}: ${what}`);
}
