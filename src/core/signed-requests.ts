// AWS requests made without an SDK client: signed by the SDK's own SigV4 signer (taken from an
// SDK client, so the credentials, region and identity are the SDK's) or, for S3 on plain http,
// by sigv4.ts without loading the SDK (store-s3-raw-get.ts); sent on keep-alive sockets (http-exchange.ts; on plain http, read straight into the body's buffer by
// raw-http.ts). The calls that go this way: EBS GetSnapshotBlock, made hundreds of times a
// second, where the SDK's per-request machinery cost about 1.5 ms of CPU (ebs-block-get.ts);
// EC2 DescribeSnapshots, whose SDK client takes about 60 MiB of memory once loaded
// (ebs-describe.ts); and S3 GetObject on plain-http endpoints (store-s3-raw-get.ts).
//
// Errors are shaped as the SDK's are (name, Reason, $metadata.httpStatusCode), from JSON bodies
// (EBS) and XML ones (EC2, S3) alike, so the commands' retry rules classify them the same way.
import type https from 'node:https';
import { HttpEndpoint, type Reply } from './http-exchange';
import type { BodySegments } from './raw-http';
import { canonicalQuery, escapeUri, type SignableRequest } from './sigv4';

export { escapeUri };

/** What signed requests take from an SDK client (or sigv4.ts) and its settings. */
export interface SigningClient {
  /** The client's config: its signer, and the offset from our clock to the service's it keeps. */
  config: { signer: (authScheme: never) => Promise<unknown>; systemClockOffset: number };
  requestTimeoutMs: number;
  /** Keep-alive sockets for an https endpoint (default: Node's global agent). */
  httpsAgent?: https.Agent;
}

interface Signer {
  sign(request: SignableRequest, options: { signingDate: Date; signingService?: string }): Promise<SignableRequest>;
}

export interface Request {
  method: 'GET' | 'POST';
  /** Below the endpoint's own path. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string;
}

export type { Reply };

/** Where a reply's body goes (raw-http.ts): a 2xx body into `bodyBuffer`'s buffer. */
export interface BodyOptions {
  bodyBuffer?: (length: number) => Buffer;
  bodySegments?: BodySegments;
  maxBody?: number;
}

interface Target {
  url: URL;
  signer: Signer;
  endpoint: HttpEndpoint;
}

// Errors a request signed at the wrong time gets (SigV4 allows 5 minutes either way), and the
// skew beyond which our clock is taken to be the cause: the SDK's own rule.
const CLOCK_SKEW_ERRORS = new Set(['InvalidSignatureException', 'RequestExpired', 'RequestInTheFuture', 'RequestTimeTooSkewed', 'SignatureDoesNotMatch']);
const CLOCK_SKEW_MS = 240_000;

/** One service's endpoint, signed for as `service`; the endpoint is resolved on first use. */
export class SignedRequests {
  private target: Promise<Target> | undefined;

  constructor(
    private readonly client: SigningClient,
    private readonly service: string,
    private readonly endpoint: () => Promise<string>,
    private readonly userAgent: string,
  ) {}

  /**
   * Signs and sends a request: its 2xx reply, or the error an error reply stands for. A
   * signature refused for the time it carries is signed again once, with the clock offset
   * corrected (by this reply, or by another request since this one was signed).
   */
  async send(req: Request, signal: AbortSignal | undefined, body: BodyOptions = {}): Promise<Reply> {
    const offset = this.client.config.systemClockOffset;
    try {
      return await this.attempt(req, signal, body);
    } catch (err) {
      const corrected = offset !== this.client.config.systemClockOffset || this.correctClock(err);
      if (!corrected || !isClockSkew(err)) throw err;
      return this.attempt(req, signal, body);
    }
  }

  private async attempt(req: Request, signal: AbortSignal | undefined, body: BodyOptions): Promise<Reply> {
    // A failure to resolve (credentials, say) is not kept: the next call tries again.
    const { url, signer, endpoint } = await (this.target ??= this.resolve().catch((err: unknown) => {
      this.target = undefined;
      throw err;
    }));
    const path = `${url.pathname.replace(/\/+$/, '')}${req.path}`;
    const query = req.query ?? {};
    const headers: Record<string, string> = { ...req.headers, host: url.host };
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
    const signed = await signer.sign(
      { method: req.method, protocol: url.protocol, hostname: url.hostname, port: url.port ? Number(url.port) : undefined, path, query, headers, body: req.body },
      { signingDate: new Date(Date.now() + this.client.config.systemClockOffset), signingService: this.service },
    );
    const search = canonicalQuery(query);
    const target = search ? `${signed.path}?${search}` : signed.path;
    const reply = await endpoint.send({ method: req.method, target, headers: { ...signed.headers, 'user-agent': this.userAgent }, body: req.body, ...body }, signal);
    if (reply.status < 200 || reply.status >= 300) throw errorOf(reply);
    return reply;
  }

  close(): void {
    this.target?.then((t) => t.endpoint.close(), () => undefined);
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
    const config = this.client.config;
    if (Number.isNaN(offset) || Math.abs(offset - config.systemClockOffset) < CLOCK_SKEW_MS) return false;
    config.systemClockOffset = offset;
    return true;
  }

  private async resolve(): Promise<Target> {
    const config = this.client.config;
    const signer = (await config.signer({ name: 'sigv4', properties: {} } as never)) as unknown as Signer;
    const url = new URL(await this.endpoint());
    return { url, signer, endpoint: new HttpEndpoint(url, this.client.requestTimeoutMs, this.client.httpsAgent) };
  }
}

function isClockSkew(err: unknown): boolean {
  return CLOCK_SKEW_ERRORS.has((err as { name?: string } | undefined)?.name ?? '');
}

/** An XML element's text, its entities decoded. */
export function xmlText(raw: string): string {
  return raw.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (_, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[e.toLowerCase()]!;
  });
}

/**
 * An error reply as the SDK would raise it: the type from x-amzn-ErrorType or the body (EBS's
 * JSON, or EC2's XML: <Response><Errors><Error><Code>, <Message>).
 */
function errorOf(reply: Reply): Error {
  const text = reply.body.toString('utf8');
  const status = reply.status;
  let body: { message?: string; Message?: string; Reason?: string; __type?: string; code?: string } = {};
  try {
    body = JSON.parse(text);
  } catch {
    const code = /<Code>([^<]*)<\/Code>/.exec(text);
    const message = /<Message>([^<]*)<\/Message>/.exec(text);
    // Neither JSON nor XML (a proxy's HTML page, say): the status and the text say what there is to say.
    if (code) body = { code: xmlText(code[1]), message: message ? xmlText(message[1]) : undefined };
  }
  const type = reply.headers['x-amzn-errortype'] ?? body.__type ?? body.code ?? `HTTP ${status}`;
  const name = type.split(':')[0].replace(/^.*#/, '');
  const message = body.message ?? body.Message ?? (text.trim().slice(0, 200) || `HTTP ${status}`);
  return Object.assign(new Error(message), { name, Reason: body.Reason, $metadata: { httpStatusCode: status }, serverTime: reply.headers.date });
}
