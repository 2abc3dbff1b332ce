// HTTP/1.1 on plain sockets, for the reads made hundreds of times a second on a plain-http
// endpoint (EBS GetSnapshotBlock, S3 ranged GETs). Node's HTTP client reads every socket chunk
// into a fresh 64 KiB buffer, runs it through its parser and a stream, and the body is copied
// once more into its place: per GiB, most of a second of CPU in allocation, garbage collection
// and copies. Here a socket reads straight into the buffer the body is meant for (net's
// `onread`, with the buffer chosen read by read), the reply's head is parsed here, and idle
// sockets are kept for the next request. https stays with Node's client: TLS decrypts into
// buffers of its own, so there would be nothing to save.
//
// Only calls that may be repeated go this way: a request that finds its kept-alive socket
// closed by the server before any byte of the reply came is sent again once, on a new socket.
// Replies are not pipelined. A server that sends more than a reply's Content-Length has the
// socket retired when the extra bytes come with the reply's last ones; extra bytes that come
// later would be read as the next reply, as with any HTTP/1.1 client, and fail its checks
// (lengths, ETags, checksums) there.
import { Connection } from './raw-http-connection';

export interface RawRequest {
  method: 'GET' | 'POST';
  /** The path and query, escaped, as sent. */
  target: string;
  /** Lower-case names; `host` (the URL's) and `content-length` are set here. */
  headers: Record<string, string>;
  body?: string;
  /**
   * Where a 2xx reply's body of `length` bytes goes: a buffer at least that long (a block's or a
   * range's, say), called as the head is read when it gives a Content-Length, else once the body
   * is whole (it is copied there). May throw to refuse the reply. Default: a new buffer.
   */
  bodyBuffer?: (length: number) => Buffer;
  /**
   * A 2xx body with a Content-Length read in segments instead (bodyBuffer is then not used):
   * each segment straight into a buffer of the reader's, handed back once full. The reply's
   * body is then empty.
   */
  bodySegments?: BodySegments;
  /**
   * The most bytes a 2xx body may have unless bodyBuffer takes it by its Content-Length (a
   * chunked body, one that runs to the connection's end); default 1 MiB. Of an error's body the
   * first 1 MiB is kept, whatever this says (an error must never fail for its length).
   */
  maxBody?: number;
}

/**
 * A long body streamed through a few buffers: read a segment at a time, in order, each into a
 * buffer the reader gives; a segment once full is handed back to the reader, who makes its
 * buffer free again (a next() of its own) when done with it.
 */
export interface BodySegments {
  /** Bytes per segment, the last one excepted; at least 64 KiB. */
  size: number;
  /** The body's length: a reply announcing another is refused before any of it is read. */
  length: number;
  /**
   * The buffer (at least `size` long) the next segment is read into. While a promise of one is
   * pending, the socket is not read (the server waits): that is the reader's backpressure.
   */
  next(): Buffer | Promise<Buffer>;
  /** A segment is whole: the buffer next() gave, cut to its length. Called in body order. */
  filled(segment: Buffer): void;
}

/** The least segment size: more than a reply head's bytes that may come with the head. */
export const MIN_SEGMENT = 64 * 1024;

export interface RawReply {
  status: number;
  /** Header values by lower-case name, repeated ones joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
}

const DEFAULT_MAX_BODY = 1 << 20;
const ERROR_BODY_BYTES = 1 << 20;

/** The most bytes of a body gathered (not read in place): see RawRequest.maxBody. */
export function bodyLimit(req: RawRequest, ok: boolean): number {
  return ok ? (req.maxBody ?? DEFAULT_MAX_BODY) : ERROR_BODY_BYTES;
}

/** A 2xx body that was gathered, in the buffer the request gives for it (when it gives one). */
export function placeBody(req: RawRequest, gathered: Buffer): Buffer {
  if (!req.bodyBuffer) return gathered;
  const target = req.bodyBuffer(gathered.length);
  if (target.length < gathered.length) throw Object.assign(new Error(`the server sent a body of ${gathered.length} bytes, where at most ${target.length} fit`), { code: 'EPROTO' });
  gathered.copy(target);
  return target.subarray(0, gathered.length);
}

/** What a connection needs of its pool. */
export interface ConnectionOwner {
  readonly host: string;
  readonly port: number;
  readonly hostHeader: string;
  readonly options: RawHttpOptions;
  release(conn: Connection): void;
  forget(conn: Connection): void;
}

export interface RawHttpOptions {
  /** A request that sends or receives nothing for this long fails with a TimeoutError. */
  timeoutMs: number;
}

// Idle sockets older than this are not reused: servers commonly close them after 5 s, and a
// request sent as the close crosses it would be lost.
const IDLE_MS = 4_000;

/** Keep-alive connections to one host and port. */
export class RawHttpPool implements ConnectionOwner {
  readonly host: string;
  readonly port: number;
  /** The Host header: the URL's host, as a signature over it has it. */
  readonly hostHeader: string;
  private readonly idle: Connection[] = [];
  private closed = false;

  constructor(
    url: URL,
    readonly options: RawHttpOptions,
  ) {
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(url.port || 80);
    this.hostHeader = url.host;
  }

  async request(req: RawRequest, signal?: AbortSignal): Promise<RawReply> {
    signal?.throwIfAborted();
    const kept = this.takeIdle();
    try {
      return await (kept ?? new Connection(this)).exchange(req, signal);
    } catch (err) {
      if (!kept || !(err as { beforeReply?: boolean }).beforeReply || signal?.aborted) throw err;
      return new Connection(this).exchange(req, signal);
    }
  }

  /** Called by a connection whose exchange ended and that may carry another. */
  release(conn: Connection): void {
    if (this.closed) conn.socket.destroy();
    else this.idle.push(conn);
  }

  forget(conn: Connection): void {
    const at = this.idle.indexOf(conn);
    if (at >= 0) this.idle.splice(at, 1);
  }

  /** Closes the idle sockets; those in use close as their exchanges end. */
  close(): void {
    this.closed = true;
    for (const conn of this.idle.splice(0)) conn.socket.destroy();
  }

  private takeIdle(): Connection | undefined {
    const now = Date.now();
    for (let conn = this.idle.pop(); conn; conn = this.idle.pop()) {
      if (now - conn.idleSince < IDLE_MS) return conn;
      conn.socket.destroy();
    }
    return undefined;
  }
}

