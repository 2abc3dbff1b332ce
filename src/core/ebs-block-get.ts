// GetSnapshotBlock without the SDK's per-request machinery. A block read is the one EBS call
// made hundreds of times a second, and through the SDK each cost about 1.5 ms of CPU on top of
// the transfer (middleware stack, endpoint rules, body stream collected chunk by chunk and
// copied again). Here the endpoint is resolved once, the request is signed by the SDK's own
// SigV4 signer (with the client's credentials, region and signing name, so the identity and the
// signature are the SDK's), sent on the session's keep-alive sockets, and the body is copied
// once, straight into the buffer that leaves as the block's payload.
//
// Errors are shaped as the SDK's are (name, Reason, $metadata.httpStatusCode), so ebs-retry.ts
// classifies them the same way.
import http from 'node:http';
import https from 'node:https';
import type { EbsSession } from './ebs-client';
import { CorruptReply } from './ebs-retry';
import { BLOCK_SIZE } from './records';

export interface BlockReply {
  /** The block's bytes, in a buffer that owns its ArrayBuffer. */
  body: Buffer;
  /** x-amz-Checksum: the service's base64 SHA-256 of the block. */
  checksum: string | undefined;
}

interface Signer {
  sign(request: SignableRequest, options: { signingDate: Date }): Promise<SignableRequest>;
}

interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
}

interface Target {
  url: URL;
  signer: Signer;
}

// Errors a request signed at the wrong time gets (SigV4 allows 5 minutes either way), and the
// skew beyond which our clock is taken to be the cause: the SDK's own rule.
const CLOCK_SKEW_ERRORS = new Set(['InvalidSignatureException', 'RequestExpired', 'RequestInTheFuture', 'RequestTimeTooSkewed', 'SignatureDoesNotMatch']);
const CLOCK_SKEW_MS = 240_000;

// The largest error body read; EBS error bodies are a few hundred bytes.
const MAX_ERROR_BODY = 64 * 1024;

export class BlockGetter {
  private target: Promise<Target> | undefined;

  constructor(private readonly session: EbsSession) {}

  /** Reads a block into `into` (a BLOCK_SIZE buffer that owns its ArrayBuffer) or a new buffer. */
  async get(snapshotId: string, index: number, token: string, signal: AbortSignal, into?: Buffer): Promise<BlockReply> {
    const body = into ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
    const offset = this.session.ebs.config.systemClockOffset;
    try {
      return await this.attempt(snapshotId, index, token, signal, body);
    } catch (err) {
      // Corrected here, or by another request since this one was signed: sign it again.
      const corrected = offset !== this.session.ebs.config.systemClockOffset || this.correctClock(err);
      if (!corrected || !isClockSkew(err)) throw err;
      return this.attempt(snapshotId, index, token, signal, body);
    }
  }

  private async attempt(snapshotId: string, index: number, token: string, signal: AbortSignal, body: Buffer): Promise<BlockReply> {
    const { url, signer } = await (this.target ??= this.resolve());
    const base = url.pathname.replace(/\/+$/, '');
    const signed = await signer.sign(
      {
        method: 'GET',
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port ? Number(url.port) : undefined,
        path: `${base}/snapshots/${escapeUri(snapshotId)}/blocks/${index}`,
        query: { blockToken: token },
        headers: { host: url.host },
      },
      { signingDate: new Date(Date.now() + this.session.ebs.config.systemClockOffset) },
    );
    return send(this.session, url, `${signed.path}?blockToken=${escapeUri(token)}`, signed.headers, signal, body);
  }

  /**
   * A signature refused for the time it carries, while the service's clock is minutes away
   * from ours: the offset is corrected (for the SDK's calls too, which share it) and the call
   * can be made again. True when it was corrected.
   */
  private correctClock(err: unknown): boolean {
    const e = err as { serverTime?: string };
    if (!isClockSkew(err) || !e.serverTime) return false;
    const offset = Date.parse(e.serverTime) - Date.now();
    const config = this.session.ebs.config;
    if (Number.isNaN(offset) || Math.abs(offset - config.systemClockOffset) < CLOCK_SKEW_MS) return false;
    config.systemClockOffset = offset;
    return true;
  }

  /** The endpoint the SDK would call and the signer it would sign with, found once. */
  private async resolve(): Promise<Target> {
    const config = this.session.ebs.config;
    const configured = this.session.settings.endpoint ?? (await config.serviceConfiguredEndpoint?.());
    const endpoint = config.endpointProvider({
      Region: await config.region(),
      UseFIPS: await config.useFipsEndpoint(),
      UseDualStack: await config.useDualstackEndpoint(),
      Endpoint: configured,
    });
    const signer = (await config.signer({ name: 'sigv4', properties: {} } as never)) as unknown as Signer;
    return { url: new URL(endpoint.url.href), signer };
  }
}

function isClockSkew(err: unknown): boolean {
  return CLOCK_SKEW_ERRORS.has((err as { name?: string } | undefined)?.name ?? '');
}

/** RFC 3986 escaping, as SigV4 canonicalises the path and query it signs. */
function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function send(session: EbsSession, url: URL, path: string, headers: Record<string, string>, signal: AbortSignal, body: Buffer): Promise<BlockReply> {
  const https_ = url.protocol === 'https:';
  const options: http.RequestOptions = {
    method: 'GET',
    hostname: url.hostname,
    port: url.port || undefined,
    path,
    headers: { ...headers, 'user-agent': 'sluice ebs-get' },
    agent: https_ ? session.httpsAgent : session.httpAgent,
    signal,
  };
  return new Promise<BlockReply>((resolve, reject) => {
    const req = (https_ ? https : http).request(options, (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status >= 300) {
        readError(res, status).then(reject, reject);
        return;
      }
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        if (received + chunk.length <= BLOCK_SIZE) chunk.copy(body, received);
        received += chunk.length;
      });
      res.on('end', () => {
        const dataLength = res.headers['x-amz-data-length'];
        if (received !== BLOCK_SIZE || (dataLength !== undefined && Number(dataLength) !== BLOCK_SIZE)) {
          reject(new CorruptReply(`${received} bytes received, x-amz-Data-Length ${dataLength}; a block has ${BLOCK_SIZE}`));
          return;
        }
        resolve({ body, checksum: header(res, 'x-amz-checksum') });
      });
      res.on('error', reject);
      // A connection cut mid-body ends the reply without 'end' (and, depending on timing,
      // without 'error'): a transient failure.
      res.on('close', () => {
        if (!res.complete) reject(Object.assign(new Error('the connection closed before the block was received'), { code: 'ECONNRESET' }));
      });
    });
    req.setTimeout(session.requestTimeoutMs, () => req.destroy(Object.assign(new Error(`no data for ${session.requestTimeoutMs / 1000} s`), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.end();
  });
}

function header(res: http.IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** An error reply as the SDK would raise it: the type from x-amzn-ErrorType or the body. */
async function readError(res: http.IncomingMessage, status: number): Promise<Error> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (size < MAX_ERROR_BODY) chunks.push(chunk);
    size += chunk.length;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: { message?: string; Message?: string; Reason?: string; __type?: string; code?: string } = {};
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (a proxy's HTML page, say): the status and the text say what there is to say.
  }
  const type = header(res, 'x-amzn-errortype') ?? body.__type ?? body.code ?? `HTTP ${status}`;
  const name = type.split(':')[0].replace(/^.*#/, '');
  const message = body.message ?? body.Message ?? (text.trim().slice(0, 200) || `HTTP ${status}`);
  return Object.assign(new Error(message), { name, Reason: body.Reason, $metadata: { httpStatusCode: status }, serverTime: header(res, 'date') });
}
