// One socket of a RawHttpPool (raw-http.ts) and the exchange on it: the request head written,
// the reply's head read into a scratch buffer and parsed, its body read where it belongs: in
// place when it has a length, else decoded or gathered from the scratch buffer.
import net from 'node:net';
import { bodyLimit, MIN_SEGMENT, placeBody, type BodySegments, type ConnectionOwner, type RawReply, type RawRequest } from './raw-http';
import { ChunkedBody } from './raw-http-chunked';
import { parseHeaders, protocolError, requestHead } from './raw-http-head';

// Reply heads are read into this much memory per socket; a longer head is refused.
const HEAD_BYTES = 16 * 1024;

type Mode = 'idle' | 'head' | 'length' | 'chunked' | 'close';

interface Pending {
  req: RawRequest;
  resolve: (reply: RawReply) => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class Connection {
  readonly socket: net.Socket;
  idleSince = 0;
  private readonly scratch = Buffer.allocUnsafe(HEAD_BYTES);
  private mode: Mode = 'idle';
  private pending: Pending | undefined;
  private dead = false;
  // The reply being read.
  private filled = 0;
  private replied = false;
  private status = 0;
  private headers: Record<string, string> = {};
  private body: Buffer = this.scratch;
  private got = 0;
  private want = 0;
  private closeAfter = false;
  /** Whether the read under way goes into the body's buffer itself (see nextBuffer). */
  private inPlace = false;
  private chunked: ChunkedBody | undefined;
  private kept: Buffer[] = [];
  // A body read in segments (RawRequest.bodySegments): `body` holds the current one, `want` its
  // length; `after` counts the body's bytes past it; `waiting`, while the reader has no buffer.
  private segments: BodySegments | undefined;
  private after = 0;
  private waiting = false;

  constructor(private readonly pool: ConnectionOwner) {
    this.socket = net.connect({
      host: pool.host,
      port: pool.port,
      noDelay: true,
      onread: {
        buffer: () => this.nextBuffer(),
        callback: (n: number) => {
          this.onRead(n);
          return true;
        },
      },
    });
    this.socket.on('end', () => this.onEnd());
    this.socket.on('error', (err) => this.fail(Object.assign(err, { beforeReply: !this.replied })));
    this.socket.on('close', () => this.fail(closedError('the connection closed before the reply was received', this.replied)));
    this.socket.on('timeout', () => {
      this.fail(Object.assign(new Error(`no data for ${pool.options.timeoutMs / 1000} s`), { name: 'TimeoutError' }));
    });
  }

  exchange(req: RawRequest, signal?: AbortSignal): Promise<RawReply> {
    return new Promise<RawReply>((resolve, reject) => {
      if (this.dead) return reject(closedError('the connection closed', false));
      const pending: Pending = { req, resolve, reject, signal };
      if (signal) {
        pending.onAbort = () => this.fail(signal.reason as Error);
        signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      this.pending = pending;
      this.mode = 'head';
      this.filled = 0;
      this.replied = false;
      this.socket.ref();
      this.socket.setTimeout(this.pool.options.timeoutMs);
      this.socket.write(requestHead(req, this.pool), 'latin1');
      if (req.body !== undefined) this.socket.write(req.body, 'utf8');
    });
  }

  /**
   * The buffer the socket's next read goes into: never empty (an empty one fails the read). A
   * body's last few KiB are read into the scratch buffer and copied: bytes a server sent past
   * the reply's end (its Content-Length) then show in the same read, and retire the connection
   * instead of being read as the next request's reply.
   */
  private nextBuffer(): Buffer {
    // A segment before the last is read in place up to its end, never past it.
    this.inPlace = this.mode === 'length' && !this.waiting && (this.after > 0 ? this.want > this.got : this.want - this.got > HEAD_BYTES);
    if (this.inPlace) return this.body.subarray(this.got, this.want);
    if (this.mode === 'head' && this.filled < HEAD_BYTES) return this.scratch.subarray(this.filled);
    return this.scratch;
  }

  private onRead(n: number): void {
    this.replied = true;
    try {
      switch (this.mode) {
        case 'head':
          return this.readHead(n);
        case 'length':
          if (this.waiting) throw protocolError('bytes read while no buffer was there for them');
          if (!this.inPlace) {
            const take = Math.min(n, this.want - this.got);
            this.scratch.copy(this.body, this.got, 0, take);
            if (n > take) this.closeAfter = true;
            n = take;
          }
          this.got += n;
          if (this.got === this.want) this.endSegment();
          return;
        case 'chunked':
          return this.feedChunked(this.scratch.subarray(0, n));
        case 'close':
          return this.keep(this.scratch.subarray(0, n));
        default:
          // Bytes nobody asked for (past the end of the last reply): the connection cannot be
          // trusted with another exchange.
          this.retire();
      }
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private readHead(n: number): void {
    const from = Math.max(0, this.filled - 3);
    this.filled += n;
    const end = this.scratch.subarray(0, this.filled).indexOf('\r\n\r\n', from, 'latin1');
    if (end < 0) {
      if (this.filled === HEAD_BYTES) throw protocolError(`a reply head longer than ${HEAD_BYTES} bytes`);
      return;
    }
    const lines = this.scratch.toString('latin1', 0, end).split('\r\n');
    const m = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]);
    if (!m) throw protocolError(`not an HTTP/1.x reply: ${JSON.stringify(lines[0].slice(0, 60))}`);
    const rest = this.scratch.subarray(end + 4, this.filled);
    this.status = Number(m[2]);
    if (this.status < 200) {
      // An interim reply (100 Continue): the real one follows.
      rest.copy(this.scratch);
      this.filled = 0;
      if (rest.length > 0) this.readHead(rest.length);
      return;
    }
    this.headers = parseHeaders(lines);
    const connection = (this.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
    this.closeAfter = connection.includes('close') || (m[1] === '0' && !connection.includes('keep-alive'));
    this.startBody(rest);
  }

  private startBody(rest: Buffer): void {
    const req = this.pending!.req;
    const ok = this.status >= 200 && this.status < 300;
    const maxBody = bodyLimit(req, ok);
    const length = this.headers['content-length'];
    this.kept = [];
    this.got = 0;
    if (this.status === 204 || this.status === 304) {
      this.body = Buffer.alloc(0);
      this.got = this.want = 0;
      this.mode = 'length';
      if (rest.length > 0) this.closeAfter = true;
      return this.finish();
    }
    if (/chunked/i.test(this.headers['transfer-encoding'] ?? '')) {
      this.mode = 'chunked';
      this.chunked = new ChunkedBody(maxBody, !ok);
      return this.feedChunked(rest);
    }
    if (length === undefined) {
      // No length: the body runs to the end of the connection.
      this.mode = 'close';
      this.closeAfter = true;
      return this.keep(rest);
    }
    if (!/^\d+$/.test(length)) throw protocolError(`a Content-Length of ${JSON.stringify(length)}`);
    const size = Number(length);
    if (ok && req.bodySegments) {
      if (size !== req.bodySegments.length) throw protocolError(`a body of ${size} bytes, where ${req.bodySegments.length} were asked for`);
      if (size > 0) return this.startSegments(req.bodySegments, size, rest);
    }
    if (ok && !req.bodyBuffer && size > maxBody) throw protocolError(`a body of ${size} bytes, over ${maxBody}`);
    this.want = ok ? size : Math.min(size, maxBody);
    if (this.want < size) this.closeAfter = true;
    this.body = ok && req.bodyBuffer ? req.bodyBuffer(size) : Buffer.allocUnsafeSlow(this.want);
    if (this.body.length < this.want) throw protocolError(`a body of ${size} bytes, where at most ${this.body.length} fit`);
    this.mode = 'length';
    this.got = Math.min(rest.length, this.want);
    rest.copy(this.body, 0, 0, this.got);
    if (rest.length > this.got) this.closeAfter = true;
    if (this.got === this.want) this.finish();
  }

  /** A body of `size` bytes read in segments; `rest`, what came of it with the head. */
  private startSegments(segments: BodySegments, size: number, rest: Buffer): void {
    if (!(segments.size >= MIN_SEGMENT)) throw new RangeError(`segments of ${segments.size} bytes: at least ${MIN_SEGMENT}`);
    this.segments = segments;
    this.mode = 'length';
    this.after = size;
    // Past the body's end: the connection cannot be trusted with another exchange.
    if (rest.length > size) this.closeAfter = true;
    this.nextSegment(Buffer.from(rest.subarray(0, size)));
  }

  /** Takes the reader's buffer for the next segment (pausing the socket until there is one). */
  private nextSegment(held?: Buffer): void {
    this.want = Math.min(this.segments!.size, this.after);
    this.after -= this.want;
    this.got = 0;
    this.body = this.scratch;
    const pending = this.pending;
    const given = this.segments!.next();
    if (!(given instanceof Promise)) return this.useSegment(given, held);
    this.waiting = true;
    this.socket.pause();
    this.socket.setTimeout(0);
    given.then(
      (buffer) => {
        if (this.pending !== pending || this.dead) return;
        this.waiting = false;
        this.socket.setTimeout(this.pool.options.timeoutMs);
        this.socket.resume();
        try {
          this.useSegment(buffer, held);
        } catch (err) {
          this.fail(err as Error);
        }
      },
      (err: Error) => {
        if (this.pending === pending) this.fail(err);
      },
    );
  }

  private useSegment(buffer: Buffer, held: Buffer | undefined): void {
    if (buffer.length < this.want) throw new RangeError(`a segment buffer of ${buffer.length} bytes, for ${this.want}`);
    this.body = buffer;
    if (held?.length) this.got = held.copy(buffer, 0, 0, this.want);
    if (this.got === this.want) this.endSegment();
  }

  /** The body's bytes up to `want` are in: the reply ends, or its segment goes to the reader. */
  private endSegment(): void {
    if (!this.segments || this.after === 0) return this.finish();
    this.segments.filled(this.body.subarray(0, this.want));
    this.nextSegment();
  }

  private feedChunked(data: Buffer): void {
    if (!this.chunked!.feed(data)) return;
    // An error's body cut at its limit: the rest is not read, the connection not reused.
    if (this.chunked!.truncated) this.closeAfter = true;
    this.finish();
  }

  /** Gathers a body that runs to the connection's end (closeAfter is set). */
  private keep(data: Buffer): void {
    const ok = this.status >= 200 && this.status < 300;
    const maxBody = bodyLimit(this.pending!.req, ok);
    if (this.got + data.length > maxBody) {
      if (ok) throw protocolError(`a body over ${maxBody} bytes`);
      // An error's body: its first bytes say what there is to say.
      this.kept.push(Buffer.from(data.subarray(0, maxBody - this.got)));
      this.got = maxBody;
      return this.finish();
    }
    this.kept.push(Buffer.from(data));
    this.got += data.length;
  }

  private onEnd(): void {
    if (this.mode === 'close') {
      try {
        return this.finish();
      } catch (err) {
        return this.fail(err as Error);
      }
    }
    this.fail(closedError('the connection closed before the reply was received', this.replied));
  }

  private finish(): void {
    const pending = this.pending!;
    let body: Buffer;
    if (this.segments) {
      this.segments.filled(this.body.subarray(0, this.got));
      body = Buffer.alloc(0);
    } else if (this.mode === 'length') body = this.body.subarray(0, this.got);
    else {
      // Chunked, or to the connection's end: gathered, then moved where a 2xx body belongs.
      const gathered = this.mode === 'chunked' ? this.chunked!.body() : Buffer.concat(this.kept);
      body = this.status >= 200 && this.status < 300 ? placeBody(pending.req, gathered) : gathered;
    }
    this.settle();
    if (this.closeAfter) this.retire();
    else {
      this.mode = 'idle';
      this.idleSince = Date.now();
      this.socket.setTimeout(0);
      this.socket.unref();
      this.pool.release(this);
    }
    pending.resolve({ status: this.status, headers: this.headers, body });
  }

  private fail(err: Error): void {
    const pending = this.pending;
    this.retire();
    if (!pending) return;
    this.settle();
    pending.reject(err);
  }

  private settle(): void {
    const pending = this.pending;
    if (pending?.onAbort) pending.signal!.removeEventListener('abort', pending.onAbort);
    this.pending = undefined;
    this.body = this.scratch;
    this.chunked = undefined;
    this.kept = [];
    this.segments = undefined;
    this.after = 0;
    this.waiting = false;
  }

  private retire(): void {
    if (this.dead) return;
    this.dead = true;
    this.mode = 'idle';
    this.pool.forget(this);
    this.socket.destroy();
  }
}

/** A connection that ended: transient, as Node's "socket hang up" is. */
function closedError(message: string, replied: boolean): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET', beforeReply: !replied });
}
