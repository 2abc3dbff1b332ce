// One endpoint's requests, made without an SDK client and answered as whole replies: on plain
// http by raw-http.ts (the socket reads into the body's own buffer), on https by Node's client
// and the given keep-alive agent, the body gathered the same way.
import type http from 'node:http';
import https from 'node:https';
import { bodyLimit, placeBody, RawHttpPool, type RawReply, type RawRequest } from './raw-http';

export type { RawReply as Reply, RawRequest as Request };

export class HttpEndpoint {
  private readonly pool: RawHttpPool | undefined;

  constructor(
    readonly url: URL,
    private readonly timeoutMs: number,
    private readonly httpsAgent?: https.Agent,
  ) {
    if (url.protocol === 'http:') this.pool = new RawHttpPool(url, { timeoutMs });
    else if (url.protocol !== 'https:') throw new Error(`${url.href}: only http and https endpoints are supported`);
  }

  send(req: RawRequest, signal?: AbortSignal): Promise<RawReply> {
    if (this.pool) return this.pool.request(req, signal);
    // Over TLS the bytes come decrypted into buffers of their own: ranges are read instead.
    if (req.bodySegments) return Promise.reject(new Error(`${this.url.href}: bodies are read in segments on plain http only`));
    return httpsExchange(this.url, this.httpsAgent, this.timeoutMs, req, signal);
  }

  close(): void {
    this.pool?.close();
  }
}

function httpsExchange(url: URL, agent: https.Agent | undefined, timeoutMs: number, req: RawRequest, signal?: AbortSignal): Promise<RawReply> {
  return new Promise<RawReply>((resolve, reject) => {
    const options: https.RequestOptions = {
      method: req.method,
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port || undefined,
      path: req.target,
      headers: { ...req.headers, host: url.host, ...(req.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(req.body)) }) },
      agent,
      signal,
    };
    const request = https.request(options, (res) => {
      gather(res, req).then(resolve, (err: Error) => {
        request.destroy();
        reject(err);
      });
    });
    request.setTimeout(timeoutMs, () => request.destroy(Object.assign(new Error(`no data for ${timeoutMs / 1000} s`), { name: 'TimeoutError' })));
    request.on('error', reject);
    request.end(req.body);
  });
}

/**
 * A reply read whole, as raw-http.ts reads it: a 2xx body into `bodyBuffer`'s buffer (as it
 * comes when it has a length, else copied there at the end), other bodies within bodyLimit().
 */
function gather(res: http.IncomingMessage, req: RawRequest): Promise<RawReply> {
  return new Promise<RawReply>((resolve, reject) => {
    const status = res.statusCode ?? 0;
    const ok = status >= 200 && status < 300;
    const length = res.headers['content-length'];
    const maxBody = bodyLimit(req, ok);
    let into: Buffer | undefined;
    try {
      if (ok && length !== undefined && req.bodyBuffer) into = req.bodyBuffer(Number(length));
    } catch (err) {
      return reject(err);
    }
    const parts: Buffer[] = [];
    let got = 0;
    res.on('data', (chunk: Buffer) => {
      if (into && got + chunk.length <= into.length) chunk.copy(into, got);
      else if (!into && got < maxBody) parts.push(chunk);
      got += chunk.length;
      if (ok && !into && got > maxBody) res.destroy(Object.assign(new Error(`the server sent a body over ${maxBody} bytes`), { code: 'EPROTO' }));
    });
    res.on('error', reject);
    res.on('end', () => {
      try {
        const gathered = Buffer.concat(parts).subarray(0, maxBody);
        const body = into ? into.subarray(0, Math.min(got, into.length)) : ok ? placeBody(req, gathered) : gathered;
        resolve({ status, headers: flatHeaders(res), body });
      } catch (err) {
        reject(err);
      }
    });
    // A connection cut mid-body ends the reply without 'end' (and, depending on timing,
    // without 'error'): a transient failure.
    res.on('close', () => {
      if (!res.complete) reject(Object.assign(new Error('the connection closed before the reply was received'), { code: 'ECONNRESET' }));
    });
  });
}

function flatHeaders(res: http.IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}
