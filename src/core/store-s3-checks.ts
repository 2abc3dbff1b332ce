// The checks of S3 object bytes that need no call: what a whole object read can be checked
// against, and the SHA-256 a single PUT declares to its signature.
import type { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Digest } from './sha-pool';
import type { ObjectInfo } from './store';
import { SHA256_META } from './store-s3-records';

/** What a whole object read is checked against, and how. */
export interface ObjectCheck {
  kind: Digest;
  expected: string;
}

/**
 * What a whole object's bytes can be checked against: the SHA-256 the store kept, or else the
 * MD5 that a single-part object's ETag is (unless S3 encrypted it with KMS or a customer key);
 * undefined when neither is there.
 */
export function checkOf(info: ObjectInfo, sse: string | undefined, sseCustomer: string | undefined): ObjectCheck | undefined {
  if (info.sha256 !== undefined) return { kind: 'sha256', expected: info.sha256 };
  const etag = /^"([0-9a-f]{32})"$/.exec(info.etag ?? '');
  if (!etag || (sse ?? '').startsWith('aws:kms') || sseCustomer) return undefined;
  return { kind: 'md5', expected: etag[1] };
}

/** What is wrong with a whole object's bytes, judged by what the store kept. */
export function mismatch(data: Buffer, info: ObjectInfo, check: ObjectCheck | undefined, actual: string | undefined): string | undefined {
  if (data.length !== info.size) return `${data.length} bytes read, the object has ${info.size}`;
  if (!check || actual === check.expected) return undefined;
  return check.kind === 'sha256'
    ? `the data's SHA-256 is ${actual}, the object's ${SHA256_META} says ${check.expected}`
    : `the data's MD5 is ${actual}, the object's ETag says ${check.expected}`;
}

/**
 * Gives the SigV4 signer the body's SHA-256 (x-amz-content-sha256, hex), known already: else it
 * hashes every body again, on the main thread, which took a third of an upload's time.
 */
export function declarePayloadHash(put: PutObjectCommand, sha256: string): void {
  const hex = Buffer.from(sha256, 'base64').toString('hex');
  put.middlewareStack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request?.headers) request.headers['x-amz-content-sha256'] = hex;
      return next(args);
    },
    { step: 'build', name: 'sluicePayloadHash' },
  );
}
