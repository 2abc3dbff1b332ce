// AWS Signature Version 4 for S3 requests sent without the SDK's client (store-s3-raw.ts): the
// same signature the SDK's signer makes (test/sigv4.test.js compares the two), from node:crypto
// alone. Loading the SDK's S3 client costs a process about 0.14 s of CPU before its first
// request; a listing piped into a download waited for that twice, once per process.
//
// S3's rules: the path is signed as it is sent (its segments escaped once, by the caller), and
// the payload's hash is the x-amz-content-sha256 header the request carries.
import { createHash, createHmac } from 'node:crypto';
import type { AwsCredentials, CredentialSource } from './aws-credentials';

export interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body?: string;
}

// Headers a proxy may add, drop or change on the way: never signed (the SDK's list).
const UNSIGNED = new Set(['authorization', 'cache-control', 'connection', 'expect', 'from', 'keep-alive', 'max-forwards', 'pragma', 'referer', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'x-amzn-trace-id']);
const EMPTY_SHA256 = createHash('sha256').digest('hex');

/** Signs requests to one region's `service` with the credentials `source` gives. */
export class SigV4Signer {
  // The key of the last day, region and secret signed for: it changes once a day.
  private keyFor = '';
  private key: Buffer = Buffer.alloc(0);

  constructor(
    private readonly source: CredentialSource,
    private readonly region: string,
  ) {}

  async sign(request: SignableRequest, options: { signingDate: Date; signingService?: string }): Promise<SignableRequest> {
    const credentials = await this.source();
    const service = options.signingService ?? 's3';
    const amzDate = options.signingDate.toISOString().replace(/[-:]|\.\d{3}/g, '');
    const day = amzDate.slice(0, 8);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value;
    headers['x-amz-date'] = amzDate;
    if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
    const names = Object.keys(headers)
      .filter((name) => !UNSIGNED.has(name) && !name.startsWith('proxy-') && !name.startsWith('sec-'))
      .sort();
    const payloadHash = headers['x-amz-content-sha256'] ?? (request.body === undefined ? EMPTY_SHA256 : createHash('sha256').update(request.body).digest('hex'));
    const canonical = [
      request.method,
      request.path,
      canonicalQuery(request.query),
      ...names.map((name) => `${name}:${headers[name].trim().replace(/\s+/g, ' ')}`),
      '',
      names.join(';'),
      payloadHash,
    ].join('\n');
    const scope = `${day}/${this.region}/${service}/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
    const signature = createHmac('sha256', this.signingKey(credentials, day, service)).update(toSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
    return { ...request, headers };
  }

  private signingKey(credentials: AwsCredentials, day: string, service: string): Buffer {
    const id = `${day}/${service}/${credentials.accessKeyId}/${credentials.secretAccessKey}`;
    if (id !== this.keyFor) {
      let key = hmac(`AWS4${credentials.secretAccessKey}`, day);
      for (const part of [this.region, service, 'aws4_request']) key = hmac(key, part);
      this.key = key;
      this.keyFor = id;
    }
    return this.key;
  }
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** RFC 3986 escaping, as SigV4 canonicalises the path and query it signs. */
export function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The query as sent and as signed: escaped names and values, in the order of the names. */
export function canonicalQuery(query: Record<string, string>): string {
  return Object.entries(query)
    .map(([name, value]) => [escapeUri(name), escapeUri(value)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}
