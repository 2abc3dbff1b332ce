import { FORMAT_VERSION, LINE, PAYLOAD, type EndRec, type Rec } from './records';
import { LineDigest } from './digest';
import { IncompleteInputError, InvalidInputError } from './errors';

export interface DecodeOptions {
  /** The command name that starts every error message. */
  command: string;
  /** `stdin` or a file name, for error messages. */
  source: string;
  /** Longest line accepted, in bytes (the newline excluded). */
  maxLine?: number;
  /** Largest payload accepted, in bytes. */
  maxPayload?: number;
  /**
   * Accept an input that stops without its trailer, dropping a partial last line or payload: for
   * journals of runs that were killed. The trailer is still checked when it is there.
   */
  allowIncomplete?: boolean;
}

export const DEFAULT_MAX_LINE = 1 << 20;
// The largest frame any command writes is a 32 MiB chunk that did not compress; leave room.
export const DEFAULT_MAX_PAYLOAD = 256 << 20;

const NEWLINE = 0x0a;

/**
 * A streaming reader of the format, correct for any chunking of its input. Records come out in
 * batches, one batch per input chunk, so a stage pays per chunk, not per record, for the
 * machinery around it.
 */
export class Decoder {
  /** Number of the line being read (1-based), for messages. */
  line = 0;
  records = 0;
  payloadBytes = 0;
  trailer: EndRec | undefined;

  private readonly digest = new LineDigest();
  private readonly maxLine: number;
  private readonly maxPayload: number;
  private partial: Buffer[] = [];
  private partialLength = 0;
  private awaiting: Rec | undefined; // a record whose payload is still arriving
  private payload: Buffer | undefined;
  private payloadFilled = 0;

  constructor(private readonly opts: DecodeOptions) {
    this.maxLine = opts.maxLine ?? DEFAULT_MAX_LINE;
    this.maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** Parses one chunk, appending whole records to `out`. */
  push(chunk: Buffer, out: Rec[]): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.awaiting) {
        pos = this.fillPayload(chunk, pos, out);
        continue;
      }
      if (this.trailer) this.fail('data after the end record');
      const nl = chunk.indexOf(NEWLINE, pos);
      if (nl === -1) {
        this.partialLength += end - pos;
        if (this.partialLength > this.maxLine) this.fail(`line longer than ${this.maxLine} bytes`, this.line + 1);
        this.partial.push(chunk.subarray(pos));
        return;
      }
      let line: Buffer;
      if (this.partial.length) {
        this.partial.push(chunk.subarray(pos, nl + 1));
        line = Buffer.concat(this.partial, this.partialLength + nl + 1 - pos);
        this.partial = [];
        this.partialLength = 0;
      } else {
        line = chunk.subarray(pos, nl + 1);
      }
      pos = nl + 1;
      this.takeLine(line, out);
    }
  }

  /** Called at the end of input: throws unless the stream ended cleanly. */
  finish(): void {
    if (this.trailer) return;
    if (this.opts.allowIncomplete) return;
    const where = this.awaiting
      ? `payload ended after ${this.payloadFilled} of ${this.awaiting.len} bytes`
      : this.partialLength
        ? 'last line has no newline'
        : 'no end record';
    throw new IncompleteInputError(
      `${this.opts.command}: ${this.opts.source}:${this.line + (this.awaiting ? 0 : 1)}: input ended without its end trailer (${where}): the upstream stopped early`,
    );
  }

  private takeLine(line: Buffer, out: Rec[]): void {
    this.line++;
    if (line.length - 1 > this.maxLine) this.fail(`line longer than ${this.maxLine} bytes`);
    let rec: Rec;
    try {
      rec = JSON.parse(line.toString('utf8', 0, line.length - 1));
    } catch {
      this.fail(`not a JSON record: ${preview(line)}`);
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) this.fail(`not a JSON object: ${preview(line)}`);
    if (typeof rec.type !== 'string' || rec.type === '') this.fail('record has no "type"');
    if (rec.type === 'end') {
      this.checkTrailer(rec as EndRec);
      return;
    }
    this.digest.update(line);
    this.records++;
    rec[LINE] = this.line;
    if (typeof rec.format === 'number' && rec.format > FORMAT_VERSION) {
      this.fail(`stream format ${rec.format} is newer than this reader (${FORMAT_VERSION})`);
    }
    const len = rec.len;
    if (len === undefined || len === 0) {
      out.push(rec);
      return;
    }
    if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0) this.fail(`"len" must be a non-negative integer, got ${JSON.stringify(len)}`);
    if (len > this.maxPayload) this.fail(`payload of ${len} bytes is larger than the limit of ${this.maxPayload}`);
    this.awaiting = rec;
    this.payload = undefined;
    this.payloadFilled = 0;
  }

  private fillPayload(chunk: Buffer, pos: number, out: Rec[]): number {
    const rec = this.awaiting!;
    const need = rec.len! - this.payloadFilled;
    const have = chunk.length - pos;
    if (this.payloadFilled === 0 && have >= need) {
      // The whole payload sits in this chunk: keep a view, no copy.
      rec[PAYLOAD] = chunk.subarray(pos, pos + need);
      this.completePayload(rec, out);
      return pos + need;
    }
    this.payload ??= Buffer.allocUnsafe(rec.len!);
    const take = Math.min(need, have);
    chunk.copy(this.payload, this.payloadFilled, pos, pos + take);
    this.payloadFilled += take;
    if (this.payloadFilled === rec.len) {
      rec[PAYLOAD] = this.payload;
      this.completePayload(rec, out);
    }
    return pos + take;
  }

  private completePayload(rec: Rec, out: Rec[]): void {
    this.payloadBytes += rec.len!;
    this.awaiting = undefined;
    this.payload = undefined;
    this.payloadFilled = 0;
    out.push(rec);
  }

  private checkTrailer(rec: EndRec): void {
    const problems: string[] = [];
    if (rec.records !== this.records) problems.push(`it counts ${rec.records} records, the stream had ${this.records}`);
    if (rec.bytes !== this.payloadBytes) problems.push(`it counts ${rec.bytes} payload bytes, the stream had ${this.payloadBytes}`);
    if (rec.digest !== this.digest.hex()) problems.push(`its digest ${rec.digest} does not match ${this.digest.hex()}`);
    if (problems.length) this.fail(`end record does not match the stream: ${problems.join('; ')}`);
    this.trailer = rec;
  }

  private fail(what: string, line = this.line): never {
    throw new InvalidInputError(`${this.opts.command}: ${this.opts.source}:${line}: ${what}`);
  }
}

function preview(line: Buffer): string {
  const text = line.toString('utf8', 0, Math.min(line.length - 1, 60)).replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(line.length > 61 ? text + '...' : text);
}

/** Decodes a byte stream into batches of records; throws at the end if the trailer is missing. */
export async function* decode(input: AsyncIterable<Buffer>, opts: DecodeOptions): AsyncGenerator<Rec[]> {
  const decoder = new Decoder(opts);
  for await (const chunk of input) {
    const batch: Rec[] = [];
    decoder.push(chunk, batch);
    if (batch.length) yield batch;
  }
  decoder.finish();
}
