// The heads of raw-http.ts's exchanges: the request's, written, and the reply's header lines,
// read; and the error a reply that is not HTTP as the client reads it fails with.
import type { ConnectionOwner, RawRequest } from './raw-http';

/** The request line and headers, with the Host the signature covers. */
export function requestHead(req: RawRequest, pool: ConnectionOwner): string {
  let head = `${req.method} ${req.target} HTTP/1.1\r\nhost: ${pool.hostHeader}\r\n`;
  for (const [name, value] of Object.entries(req.headers)) {
    if (name !== 'host' && name !== 'content-length') head += `${name}: ${value}\r\n`;
  }
  if (req.body !== undefined) head += `content-length: ${Buffer.byteLength(req.body)}\r\n`;
  return `${head}\r\n`;
}

/** A reply's header lines (after the status line) by lower-case name. */
export function parseHeaders(lines: string[]): Record<string, string> {
  const headers: Record<string, string> = Object.create(null);
  let last: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    // An obsolete folded line continues the header before it.
    if (last !== undefined && /^[ \t]/.test(lines[i])) {
      headers[last] = `${headers[last]} ${lines[i].trim()}`;
      continue;
    }
    const colon = lines[i].indexOf(':');
    if (colon <= 0) throw protocolError(`a malformed header line ${JSON.stringify(lines[i].slice(0, 60))}`);
    const name = lines[i].slice(0, colon).trim().toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    last = name;
  }
  return headers;
}

/** A reply that is not HTTP as this client reads it. */
export function protocolError(what: string): Error {
  return Object.assign(new Error(`the server sent ${what}`), { code: 'EPROTO' });
}
