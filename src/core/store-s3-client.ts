// The S3 client of the object commands, built from their settings (store-s3-flags.ts) and the
// environment. The SDK's modules are loaded when a first call needs them: requests that go
// without the SDK (store-s3-raw.ts) do not wait for them.
//
// The SDK makes one attempt per call (maxAttempts 1): retries are done in store-s3-errors.ts,
// where they are classified and every final failure names the store and key. Connections are
// kept alive; one client (and its sockets) serves every store of a run with the same settings.
import http from 'node:http';
import https from 'node:https';
import type { S3Client } from '@aws-sdk/client-s3';
import { quietSdkWarnings } from './aws-credentials';
import type { S3Settings } from './store-s3-flags';

type S3Sdk = typeof import('@aws-sdk/client-s3');
let sdk: S3Sdk | undefined;

/** The SDK's S3 module (its client and commands), loaded on first use. */
export function s3Sdk(): S3Sdk {
  if (!sdk) {
    quietSdkWarnings();
    sdk = require('@aws-sdk/client-s3') as S3Sdk;
  }
  return sdk;
}

/** An endpoint that is not AWS's own: S3-compatible servers rarely serve bucket subdomains. */
export function isCustomEndpoint(endpoint: string | undefined): boolean {
  if (endpoint === undefined) return false;
  return !/\.amazonaws\.com(\.cn)?$/i.test(new URL(endpoint).hostname);
}

// A request that sends or receives nothing for this long is dropped and retried.
export const REQUEST_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;
// Objects read or written at once (-j up to 64) times ranges or parts of each in flight.
const MAX_SOCKETS = 256;

const clients = new Map<string, S3Client>();

/** Settings with what the flags left out taken from the environment. */
export interface ResolvedS3Settings {
  endpoint: string | undefined;
  /** Undefined: the SDK finds it (the profile's); a non-AWS endpoint's is us-east-1. */
  region: string | undefined;
  profile: string | undefined;
  /** Not AWS's endpoint: buckets are addressed path style. */
  custom: boolean;
  /** The same for every store of a run with these settings. */
  id: string;
}

export function resolveS3Settings(given: S3Settings): ResolvedS3Settings {
  const endpoint = given.endpoint ?? (process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined);
  // The SDK reads AWS_REGION and the profile; aws-cli users often set AWS_DEFAULT_REGION.
  const region = given.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined);
  const custom = isCustomEndpoint(endpoint);
  return { endpoint, region: region ?? (custom ? 'us-east-1' : undefined), profile: given.profile, custom, id: JSON.stringify([endpoint, region, given.profile]) };
}

/** The client for these settings, made once per process. */
export function s3Client(given: S3Settings): S3Client {
  const settings = resolveS3Settings(given);
  let client = clients.get(settings.id);
  if (client) return client;
  const custom = settings.custom;
  client = new (s3Sdk().S3Client)({
    endpoint: settings.endpoint,
    region: settings.region,
    profile: settings.profile,
    forcePathStyle: custom,
    // A bucket in another region than the one configured is still reached.
    followRegionRedirects: true,
    maxAttempts: 1,
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      requestTimeout: REQUEST_TIMEOUT_MS,
      connectionTimeout: CONNECT_TIMEOUT_MS,
    },
  });
  clients.set(settings.id, client);
  return client;
}
