// A body sent with Transfer-Encoding: chunked (raw-http.ts), decoded as its bytes arrive: hex
// size lines (extensions ignored), the data, and after the last (empty) chunk any trailer
// lines up to an empty one. Servers use it for error replies and listings, not for the bodies
// read in place, so the data is simply gathered.

import { protocolError } from './raw-http-head';

type State = 'size' | 'data' | 'data-end' | 'trailer';

// A size line (with extensions) or a trailer line longer than this is not HTTP we expect.
const MAX_LINE = 4096;

export class ChunkedBody {
  private state: State = 'size';
  private line = '';
  private left = 0;
  private size = 0;
  private readonly parts: Buffer[] = [];
  /** Set when the body was cut at maxBody (with `truncate`): the rest is left unread. */
  truncated = false;

  constructor(
    private readonly maxBody: number,
    /** A body over maxBody ends there (an error's: its first bytes are enough), else fails. */
    private readonly truncate = false,
  ) {}

  /** Takes the next bytes; true once the body is complete. */
  feed(data: Buffer): boolean {
    let at = 0;
    while (at < data.length) {
      if (this.state === 'data') {
        const take = Math.min(this.left, data.length - at);
        this.parts.push(Buffer.from(data.subarray(at, at + take)));
        this.left -= take;
        at += take;
        if (this.left === 0) this.state = 'data-end';
        if (this.truncated && this.kept() >= this.maxBody) return true;
        continue;
      }
      const eol = data.indexOf(0x0a, at);
      const end = eol < 0 ? data.length : eol + 1;
      this.line += data.toString('latin1', at, end);
      at = end;
      if (this.line.length > MAX_LINE) throw protocolError('a chunk line too long');
      if (eol < 0) continue;
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.lineDone(line)) {
        if (at < data.length) throw protocolError('bytes after the end of a chunked body');
        return true;
      }
    }
    return false;
  }

  body(): Buffer {
    return Buffer.concat(this.parts).subarray(0, this.maxBody);
  }

  private kept(): number {
    return this.parts.reduce((n, p) => n + p.length, 0);
  }

  /** Handles one line; true when it ended the body. */
  private lineDone(line: string): boolean {
    if (this.state === 'data-end') {
      if (line !== '') throw protocolError('a chunk longer than its size');
      this.state = 'size';
      return false;
    }
    if (this.state === 'trailer') return line === '';
    const m = /^([0-9a-fA-F]+)\s*(;.*)?$/.exec(line);
    if (!m) throw protocolError(`a chunk size ${JSON.stringify(line.slice(0, 40))}`);
    this.left = parseInt(m[1], 16);
    if (this.left === 0) {
      this.state = 'trailer';
      return false;
    }
    this.size += this.left;
    if (this.size > this.maxBody) {
      if (!this.truncate) throw protocolError(`a body over ${this.maxBody} bytes`);
      this.truncated = true;
    }
    this.state = 'data';
    return false;
  }
}
