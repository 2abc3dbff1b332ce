// Request and response mechanics shared by the handlers.
import { IncomingMessage, ServerResponse } from 'node:http';
import { BlockWorkers } from './block-workers';
import { ApiError, invalid } from './errors';

export function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string | number> = {}): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  const body: Record<string, string> = { message: err.message };
  if (err.reason) body.Reason = err.reason;
  sendJson(res, err.status, JSON.stringify(body), { 'x-amzn-errortype': err.type });
}

/** Past this a refused body is not drained to answer properly: the connection is cut. */
const DRAIN_LIMIT = 64 << 20;

/**
 * Collects a body through `accept`; a body longer than `limit` is drained (so the client still
 * gets its 400 answer on a healthy connection) and refused.
 */
function collect<T>(req: IncomingMessage, limit: number, accept: (chunk: Buffer, offset: number) => void, done: (size: number) => T): Promise<T> {
  return new Promise((resolve, reject) => {
    let size = 0;
    req.on('data', (c: Buffer) => {
      if (size + c.length <= limit) accept(c, size);
      size += c.length;
      if (size > DRAIN_LIMIT) req.destroy();
    });
    req.on('end', () => (size > limit ? reject(invalid('INVALID_PARAMETER_VALUE', `The request body is longer than ${limit} bytes.`)) : resolve(done(size))));
    req.on('error', reject);
  });
}

/** The whole body, refused beyond `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return collect(req, limit, (c) => chunks.push(c), (size) => (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
}

/**
 * A block body copied as it arrives into one pooled buffer (give it back with workers.give), and
 * its base64 SHA-256, computed on a worker thread.
 */
export async function readBlockBody(req: IncomingMessage, limit: number, workers: BlockWorkers): Promise<{ data: Buffer; size: number; checksum: string }> {
  const buf = workers.take();
  let size: number;
  try {
    size = await collect(req, Math.min(limit, buf.length), (c, offset) => c.copy(buf, offset), (n) => n);
  } catch (err) {
    workers.give(buf);
    throw err;
  }
  return { ...(await workers.digest(buf, size)), size };
}

/** A JSON object body, or a ValidationException. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('INVALID_PARAMETER_VALUE', 'The request body is not valid JSON.');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('INVALID_PARAMETER_VALUE', 'The request body must be a JSON object.');
  return value as Record<string, unknown>;
}

/** An optional whole-number parameter (header or query), or a ValidationException naming it. */
export function wholeParam(name: string, raw: string | string[] | undefined | null, min: number, max: number): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  const text = Array.isArray(raw) ? raw[0] : raw;
  if (!/^[0-9]+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw invalid('INVALID_PARAMETER_VALUE', `${name} must be a whole number between ${min} and ${max}, got ${JSON.stringify(text)}.`);
  }
  return Number(text);
}

/** Epoch seconds, the rest-json timestamp form the service uses. */
export function epochSeconds(ms: number): number {
  return ms / 1000;
}
