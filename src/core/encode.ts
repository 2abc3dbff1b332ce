import { FORMAT_VERSION, PAYLOAD, type Rec } from './records';
import { LineDigest } from './digest';

/**
 * Serializes records. Lines are gathered into one buffer per batch (a pipe write per record would
 * dominate a manifest stage); a payload goes out as its own buffer, never copied.
 */
export class Encoder {
  records = 0;
  payloadBytes = 0;
  private readonly digest = new LineDigest();
  private lines = '';
  private ready: Buffer[] = [];
  private ended = false;

  push(rec: Rec): void {
    const payload = rec[PAYLOAD];
    if (payload) rec.len = payload.length;
    else if (rec.len !== undefined) delete rec.len;
    this.lines += JSON.stringify(rec) + '\n';
    this.records++;
    if (payload) {
      this.flushLines();
      this.ready.push(payload);
      this.payloadBytes += payload.length;
    } else if (this.lines.length > 65536) {
      this.flushLines();
    }
  }

  /** Appends the trailer. Extra fields are for the reader's information; the counts are ours. */
  end(extra: Record<string, unknown> = {}): void {
    if (this.ended) throw new Error('end() called twice');
    this.flushLines();
    this.ended = true;
    const trailer = { type: 'end', format: FORMAT_VERSION, ...extra, records: this.records, bytes: this.payloadBytes, digest: this.digest.hex() };
    this.ready.push(Buffer.from(JSON.stringify(trailer) + '\n'));
  }

  /** Buffers ready to be written, in order. */
  take(): Buffer[] {
    this.flushLines();
    const out = this.ready;
    this.ready = [];
    return out;
  }

  get pending(): number {
    return this.ready.length + (this.lines ? 1 : 0);
  }

  private flushLines(): void {
    if (!this.lines) return;
    const buf = Buffer.from(this.lines);
    this.digest.update(buf);
    this.ready.push(buf);
    this.lines = '';
  }
}
