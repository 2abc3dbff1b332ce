import { FORMAT_VERSION, LINE, PAYLOAD, SOURCE, type EndRec, type Rec } from './records';
import { LineDigest } from './digest';
import { LineScanner } from './line-scan';
import { DEFAULT_MAX_LINE, DEFAULT_MAX_PAYLOAD, type DecodeOptions } from './decode-options';
import { IncompleteInputError, InvalidInputError } from './errors';

export { DEFAULT_MAX_LINE, DEFAULT_MAX_PAYLOAD, type DecodeOptions } from './decode-options';

const NEWLINE = 0x0a;
// Where a payload may follow: the end of the key "len". Only a hint to end a run of lines early
// (an escaped key would be missed); every parsed record's "len" is checked.
const LEN_KEY = Buffer.from('len"');

/**
 * A streaming reader of the format, correct for any chunking of its input. Records come out in
 * batches, one batch per input chunk, so a stage pays per chunk, not per record, for the
 * machinery around it.
 *
 * Speed: the lines of a chunk up to the next payload are decoded to one string and digested in
 * one call; each line is then parsed on its own, so every error names its exact line. With
 * `passLines`, lines are checked by a scanner on the bytes instead and only parsed when it
 * cannot vouch for them.
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
  private partial = Buffer.alloc(0); // a line begun in an earlier chunk, in its first bytes
  private partialLength = 0;
  private awaiting: Rec | undefined; // a record whose payload is still arriving
  private payload: Buffer | undefined;
  private payloadFilled = 0;
  private readonly scanner: LineScanner | undefined;

  constructor(private readonly opts: DecodeOptions) {
    this.maxLine = opts.maxLine ?? DEFAULT_MAX_LINE;
    this.maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    if (opts.passLines) this.scanner = new LineScanner();
  }

  /**
   * Parses one chunk, appending whole records to `out`. A `borrowed` chunk is the reader's to
   * fill again once this returns (input-reader.ts): nothing is kept that points into it.
   */
  push(chunk: Buffer, out: Rec[], borrowed = false): void {
    // A stage that passes lines on keeps views of them: they must outlive a borrowed chunk.
    if (borrowed && this.scanner) [chunk, borrowed] = [Buffer.from(chunk), false];
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.awaiting) pos = this.fillPayload(chunk, pos, out, borrowed);
      else if (this.trailer) this.fail('data after the end record', this.line + 1);
      else if (this.partialLength) pos = this.completePartial(chunk, pos, out);
      else pos = this.takeLines(chunk, pos, out);
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

  /** Takes the whole lines at `pos`, up to the first payload; keeps a trailing partial line. */
  private takeLines(chunk: Buffer, pos: number, out: Rec[]): number {
    // Every line ending inside this window is short enough; a full window without a newline is not.
    const limit = Math.min(chunk.length, pos + this.maxLine + 1);
    const lastNewline = chunk.lastIndexOf(NEWLINE, limit - 1);
    if (lastNewline < pos) {
      if (limit - pos > this.maxLine) this.fail(`line longer than ${this.maxLine} bytes`, this.line + 1);
      this.keepPartial(chunk.subarray(pos));
      return chunk.length;
    }
    let stop = lastNewline + 1;
    // Bytes after a payload's line are the payload: the run of lines stops there.
    const key = chunk.subarray(pos, stop).indexOf(LEN_KEY);
    if (key !== -1) stop = chunk.indexOf(NEWLINE, pos + key) + 1;
    return this.scanner ? this.passRun(chunk, pos, stop, out) : this.takeRun(chunk, pos, stop, out);
  }

  /** Adds a chunk's first bytes to the line begun in earlier chunks. */
  private completePartial(chunk: Buffer, pos: number, out: Rec[]): number {
    const newline = chunk.indexOf(NEWLINE, pos);
    if (newline === -1) {
      this.keepPartial(chunk.subarray(pos));
      return chunk.length;
    }
    if (this.partialLength + newline - pos > this.maxLine) this.fail(`line longer than ${this.maxLine} bytes`, this.line + 1);
    this.appendPartial(chunk.subarray(pos, newline + 1));
    const length = this.partialLength;
    this.partialLength = 0;
    // A passed-on line must outlive this buffer, which the next partial line overwrites.
    if (this.scanner) this.passRun(Buffer.from(this.partial.subarray(0, length)), 0, length, out);
    else this.takeRun(this.partial, 0, length, out);
    return newline + 1;
  }

  private keepPartial(bytes: Buffer): void {
    // Checked as the bytes arrive, so a line that never ends costs at most the limit in memory.
    if (this.partialLength + bytes.length > this.maxLine) this.fail(`line longer than ${this.maxLine} bytes`, this.line + 1);
    this.appendPartial(bytes);
  }

  /** Copies bytes aside (views would keep every chunk alive, even one byte per chunk). */
  private appendPartial(bytes: Buffer): void {
    const length = this.partialLength + bytes.length;
    if (length > this.partial.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.maxLine + 1, Math.max(length, 2 * this.partial.length, 4096)));
      this.partial.copy(grown, 0, 0, this.partialLength);
      this.partial = grown;
    }
    bytes.copy(this.partial, this.partialLength);
    this.partialLength = length;
  }

  /**
   * Parses the complete lines in bytes[start, stop). Returns where it stopped: `stop`, or the end
   * of a line whose payload follows.
   */
  private takeRun(bytes: Buffer, start: number, stop: number, out: Rec[]): number {
    const text = bytes.toString('utf8', start, stop);
    let from = 0;
    while (from < text.length) {
      const newline = text.indexOf('\n', from);
      this.line++;
      const rec = this.parse(text, from, newline);
      const next = newline + 1;
      if (rec.type === 'end') {
        this.endRun(rec as EndRec, bytes, start, this.byteOffset(bytes, start, text, from), next < text.length);
        return stop;
      }
      if (this.admit(rec, out)) {
        const payloadStart = next === text.length ? stop : this.byteOffset(bytes, start, text, next);
        this.digest.update(bytes.subarray(start, payloadStart));
        return payloadStart;
      }
      from = next;
    }
    this.digest.update(bytes.subarray(start, stop));
    return stop;
  }

  /**
   * takeRun for a stage that passes lines on: a line the scanner vouches for becomes a record
   * of its type and bytes; any other line is parsed. `bytes` must not change while its records
   * are in use.
   */
  private passRun(bytes: Buffer, start: number, stop: number, out: Rec[]): number {
    const scanner = this.scanner!;
    let from = start;
    while (from < stop) {
      const newline = bytes.indexOf(NEWLINE, from);
      const next = newline + 1;
      this.line++;
      const type = scanner.type(bytes, from, newline);
      // The trailer is parsed and checked, even one without "format".
      if (type !== undefined && type !== 'end') {
        this.records++;
        out.push({ type, [LINE]: this.line, [SOURCE]: { bytes, start: from, end: next } });
        from = next;
        continue;
      }
      const text = bytes.toString('utf8', from, newline);
      const rec = this.parse(text, 0, text.length);
      if (rec.type === 'end') {
        this.endRun(rec as EndRec, bytes, start, from, next < stop);
        return stop;
      }
      if (this.admit(rec, out)) {
        this.digest.update(bytes.subarray(start, next));
        return next;
      }
      from = next;
    }
    this.digest.update(bytes.subarray(start, stop));
    return stop;
  }

  /** Checks the trailer on the line that starts at `lineStart`, after digesting the lines before it. */
  private endRun(rec: EndRec, bytes: Buffer, start: number, lineStart: number, more: boolean): void {
    this.digest.update(bytes.subarray(start, lineStart));
    this.checkTrailer(rec);
    if (more) this.fail('data after the end record', this.line + 1);
  }

  /** Counts and checks a parsed record other than the trailer; returns true when a payload follows its line. */
  private admit(rec: Rec, out: Rec[]): boolean {
    this.records++;
    rec[LINE] = this.line;
    if (typeof rec.format === 'number' && rec.format > FORMAT_VERSION) {
      this.fail(`stream format ${rec.format} is newer than this reader (${FORMAT_VERSION})`);
    }
    const len = rec.len;
    if (len === undefined || len === 0) {
      out.push(rec);
      return false;
    }
    if (typeof len !== 'number' || !Number.isSafeInteger(len) || len < 0) this.fail(`"len" must be a non-negative integer, got ${JSON.stringify(len)}`);
    if (len > this.maxPayload) this.fail(`payload of ${len} bytes is larger than the limit of ${this.maxPayload}`);
    this.awaiting = rec;
    this.payload = undefined;
    this.payloadFilled = 0;
    return true;
  }

  private parse(text: string, from: number, newline: number): Rec {
    let rec: Rec;
    try {
      rec = JSON.parse(text.slice(from, newline));
    } catch {
      this.fail(`not a JSON record: ${preview(text, from, newline)}`);
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) this.fail(`not a JSON object: ${preview(text, from, newline)}`);
    if (typeof rec.type !== 'string' || rec.type === '') this.fail('record has no "type"');
    return rec;
  }

  /** The byte position in `bytes` of character `at` of `text`, decoded from bytes[start...]. */
  private byteOffset(bytes: Buffer, start: number, text: string, at: number): number {
    // Only ASCII decodes one character per byte; otherwise count the newlines before `at`.
    if (Buffer.byteLength(text) === text.length) return start + at;
    let pos = start;
    for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) pos = bytes.indexOf(NEWLINE, pos) + 1;
    return pos;
  }

  private fillPayload(chunk: Buffer, pos: number, out: Rec[], borrowed: boolean): number {
    const rec = this.awaiting!;
    const need = rec.len! - this.payloadFilled;
    const have = chunk.length - pos;
    if (this.payloadFilled === 0 && have >= need && !borrowed) {
      // The whole payload sits in this chunk: keep a view, no copy.
      rec[PAYLOAD] = chunk.subarray(pos, pos + need);
      this.completePayload(rec, out);
      return pos + need;
    }
    const take = Math.min(need, have);
    chunk.copy(this.payloadBuffer(rec), this.payloadFilled, pos, pos + take);
    this.filled(take, out);
    return pos + take;
  }

  /**
   * Where the input's next bytes can be read in place (input-reader.ts): the rest of the
   * payload being read, when at least `least` bytes of it are still to come; the reader then
   * says with filled() how many it read there. Undefined when lines come next, or a payload's
   * last few bytes: those go through push().
   */
  readTarget(least: number): Buffer | undefined {
    const rec = this.awaiting;
    if (!rec || rec.len! - this.payloadFilled < least) return undefined;
    return this.payloadBuffer(rec).subarray(this.payloadFilled);
  }

  /** `n` more bytes of the payload are in its buffer; a payload filled goes out as a record. */
  filled(n: number, out: Rec[]): void {
    const rec = this.awaiting!;
    this.payloadFilled += n;
    if (this.payloadFilled === rec.len) {
      rec[PAYLOAD] = this.payload;
      this.completePayload(rec, out);
    }
  }

  private payloadBuffer(rec: Rec): Buffer {
    return (this.payload ??= this.opts.payloadBuffer?.(rec.len!, rec) ?? Buffer.allocUnsafe(rec.len!));
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

/** The start of a line, printable, for an error message. */
function preview(text: string, from: number, newline: number): string {
  const shown = text.slice(from, Math.min(newline, from + 60)).replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(newline - from > 60 ? shown + '...' : shown);
}

/** Decodes a byte stream into batches of records; throws at the end if the trailer is missing. */
export function decode(input: AsyncIterable<Buffer>, opts: DecodeOptions): AsyncGenerator<Rec[]> {
  return decodeWith(new Decoder(opts), input);
}

/** decode() with a given decoder. */
export async function* decodeWith(decoder: Decoder, input: AsyncIterable<Buffer>): AsyncGenerator<Rec[]> {
  for await (const chunk of input) {
    const batch: Rec[] = [];
    decoder.push(chunk, batch);
    if (batch.length) yield batch;
  }
  decoder.finish();
}
