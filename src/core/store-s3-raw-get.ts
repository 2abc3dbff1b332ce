// GetObject without the SDK's client where the endpoint is plain http (an S3-compatible server,
// addressed path style: http://HOST:PORT/BUCKET/KEY): signed by sigv4.ts (signed-requests.ts)
// and read by raw-http.ts straight into the buffer the range belongs in.
// Through the SDK, every 64 KiB of a reply came in a buffer of its own and was copied again
// into place, and each request went through the middleware stack: for a download at hundreds
// of MiB/s, most of a CPU core.
//
// Replies are described as the SDK describes them (the fields of GetObjectCommandOutput the
// store reads), and errors are shaped as its errors are, so store-s3-errors.ts treats both ways
// alike. Reads of a given version still go through the SDK (store-s3-versions.ts).
import type { GetObjectCommandOutput, StorageClass } from '@aws-sdk/client-s3';
import { credentialSource } from './aws-credentials';
import type { BodySegments } from './raw-http';
import { SignedRequests, type Reply } from './signed-requests';
import { escapeUri, SigV4Signer } from './sigv4';
import { REQUEST_TIMEOUT_MS, resolveS3Settings } from './store-s3-client';
import type { S3Settings } from './store-s3-flags';

// The SHA-256 of an empty body, which a GET signs for.
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const META = 'x-amz-meta-';

export type GetHead = Omit<GetObjectCommandOutput, 'Body'>;

const requests = new Map<string, SignedRequests | undefined>();

/**
 * Signed requests to the settings' endpoint when it is plain http, addressed path style (not
 * AWS's); else undefined. They are signed here (sigv4.ts), with the credentials of the SDK's
 * chain (aws-credentials.ts), and need none of the SDK's modules loaded.
 */
export function rawRequests(given: S3Settings): SignedRequests | undefined {
  const settings = resolveS3Settings(given);
  if (requests.has(settings.id)) return requests.get(settings.id);
  let made: SignedRequests | undefined;
  if (settings.custom && settings.endpoint !== undefined && new URL(settings.endpoint).protocol === 'http:') {
    const signer = new SigV4Signer(credentialSource(settings.profile), settings.region ?? 'us-east-1');
    const url = settings.endpoint;
    made = new SignedRequests({ config: { signer: async () => signer, systemClockOffset: 0 }, requestTimeoutMs: REQUEST_TIMEOUT_MS }, 's3', async () => url, 'sluice');
  }
  requests.set(settings.id, made);
  return made;
}

export interface RawGet {
  bucket: string;
  key: string;
  range?: string;
  ifMatch?: string;
  /** Where a reply of `length` bytes is read (raw-http.ts); may throw to refuse it. */
  bodyBuffer?: (length: number) => Buffer;
  /** Or the segments it is read in (raw-http.ts), its length known. */
  bodySegments?: BodySegments;
  /** The most bytes the reply may hold when it comes without a Content-Length. */
  maxBody: number;
  signal?: AbortSignal;
}

/** One GetObject: the reply's headers as the SDK gives them, and its body. */
export async function rawGetObject(requests: SignedRequests, get: RawGet): Promise<{ head: GetHead; body: Buffer }> {
  const path = `/${escapeUri(get.bucket)}/${get.key.split('/').map(escapeUri).join('/')}`;
  const headers: Record<string, string> = { 'x-amz-content-sha256': EMPTY_SHA256 };
  if (get.range !== undefined) headers.range = get.range;
  if (get.ifMatch !== undefined) headers['if-match'] = get.ifMatch;
  const reply = await requests.send({ method: 'GET', path, headers }, get.signal, { bodyBuffer: get.bodyBuffer, bodySegments: get.bodySegments, maxBody: get.maxBody });
  return { head: headOf(reply), body: reply.body };
}

function headOf(reply: Reply): GetHead {
  const h = reply.headers;
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) if (name.startsWith(META)) metadata[name.slice(META.length)] = value;
  const length = h['content-length'];
  const modified = h['last-modified'];
  return {
    $metadata: { httpStatusCode: reply.status },
    ContentLength: length === undefined ? undefined : Number(length),
    ContentRange: h['content-range'],
    ContentType: h['content-type'],
    ETag: h.etag,
    LastModified: modified === undefined ? undefined : new Date(modified),
    StorageClass: h['x-amz-storage-class'] as StorageClass | undefined,
    VersionId: h['x-amz-version-id'],
    ServerSideEncryption: h['x-amz-server-side-encryption'] as GetHead['ServerSideEncryption'],
    SSECustomerAlgorithm: h['x-amz-server-side-encryption-customer-algorithm'],
    Metadata: metadata,
  };
}
