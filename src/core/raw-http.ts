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
import { Connection } from './raw-http-connection';

export interface RawRequest {
  method: 'GET' | 'POST';
  /** The path and query, escaped, as sent. */
  target: string;
  /** Lower-case names; `host` (the URL's) and `content-length` are set here. */
  headers: Record<string, string>;
  body?: string;
  /**
   * Where a 2xx reply's body of `length` bytes (its Content-Length) is read: a buffer at least
   * that long (a block's or a range's, say). May throw to refuse the reply. Default: a new one.
   */
  bodyBuffer?: (length: number) => Buffer;
  /** The most bytes kept of any other body (an error's, a chunked one); default 1 MiB. */
  maxBody?: number;
}

export interface RawReply {
  status: number;
  /** Header values by lower-case name, repeated ones joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
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
    this.idle.push(conn);
  }

  forget(conn: Connection): void {
    const at = this.idle.indexOf(conn);
    if (at >= 0) this.idle.splice(at, 1);
  }

  /** Closes the idle sockets; those in use close as their exchanges end. */
  close(): void {
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

