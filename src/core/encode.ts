import { FORMAT_VERSION, PAYLOAD, SOURCE, type Rec } from './records';
import { LineDigest } from './digest';

// Records serialized in one go at most; bounds the memory of a source that never calls take().
const MAX_BATCH = 1024;

/**
 * Serializes records. Lines are gathered into one buffer per batch (a pipe write per record would
 * dominate a manifest stage); a payload goes out as its own buffer, never copied.
 *
 * A record that a decoder passed on as its line (SOURCE) is written as those bytes, not
 * serialized: consecutive lines of one input chunk go out as one view of it.
 *
 * The Encoder keeps what push() is given until take() returns it: the record, like its payload,
 * must not be changed in between (records are serialized together, one call per batch).
 */
export class Encoder {
  records = 0;
  payloadBytes = 0;
  private readonly digest = new LineDigest();
  private batch: Rec[] = [];
  private ready: Buffer[] = [];
  private ended = false;
  // Input lines passed on as they were read: bytes[passedStart, passedEnd), one range while they
  // follow each other in the same chunk.
  private passed: Buffer | undefined;
  private passedStart = 0;
  private passedEnd = 0;

  push(rec: Rec): void {
    const payload = rec[PAYLOAD];
    const source = rec[SOURCE];
    if (source) {
      // The record was never built from its line, so it cannot have changed: write the line.
      if (payload) throw new Error(`a ${rec.type} record passed on as its line cannot take a payload`);
      this.pass(source.bytes, source.start, source.end);
      this.records++;
      return;
    }
    this.flushPassed();
    if (payload) rec.len = payload.length;
    else if (rec.len !== undefined) delete rec.len;
    this.batch.push(rec);
    this.records++;
    if (payload) {
      this.flushLines();
      this.ready.push(payload);
      this.payloadBytes += payload.length;
    } else if (this.batch.length >= MAX_BATCH) {
      this.flushLines();
    }
  }

  /** Appends the trailer. Extra fields are for the reader's information; the counts are ours. */
  end(extra: Record<string, unknown> = {}): void {
    if (this.ended) throw new Error('end() called twice');
    this.flushLines();
    this.flushPassed();
    this.ended = true;
    const trailer = { type: 'end', format: FORMAT_VERSION, ...extra, records: this.records, bytes: this.payloadBytes, digest: this.digest.hex() };
    this.ready.push(Buffer.from(JSON.stringify(trailer) + '\n'));
  }

  /** Buffers ready to be written, in order. */
  take(): Buffer[] {
    this.flushLines();
    this.flushPassed();
    const out = this.ready;
    this.ready = [];
    return out;
  }

  get pending(): number {
    return this.ready.length + (this.batch.length ? 1 : 0) + (this.passed ? 1 : 0);
  }

  private pass(bytes: Buffer, start: number, end: number): void {
    this.flushLines();
    if (bytes === this.passed && start === this.passedEnd) {
      this.passedEnd = end;
      return;
    }
    this.flushPassed();
    this.passed = bytes;
    this.passedStart = start;
    this.passedEnd = end;
  }

  private flushPassed(): void {
    if (!this.passed) return;
    const lines = this.passed.subarray(this.passedStart, this.passedEnd);
    this.passed = undefined;
    this.digest.update(lines);
    this.ready.push(lines);
  }

  private flushLines(): void {
    if (!this.batch.length) return;
    const buf = Buffer.from(serialize(this.batch));
    this.batch = [];
    this.digest.update(buf);
    this.ready.push(buf);
  }
}

const SEPARATOR = '},{';

/** Records as lines, each as JSON.stringify writes it. */
function serialize(recs: Rec[]): string {
  // One JSON.stringify of the whole batch costs less than half as much as one call per record.
  // It writes "},{" between records (each is an object); when the text holds no other "},{"
  // (from a nested list of objects, or in a string), those are the breaks between lines.
  if (recs.length > 1 && recs.every(serializesAsObject)) {
    const parts = JSON.stringify(recs).slice(1, -1).split(SEPARATOR);
    if (parts.length === recs.length) return parts.join('}\n{') + '\n';
  }
  let lines = '';
  for (const rec of recs) lines += JSON.stringify(rec) + '\n';
  return lines;
}

function serializesAsObject(rec: Rec): boolean {
  return typeof rec === 'object' && rec !== null && !Array.isArray(rec) && typeof rec.toJSON !== 'function';
}
