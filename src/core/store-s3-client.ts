// The S3 client of the object commands, built from their settings (store-s3-flags.ts) and the
// environment.
//
// The SDK makes one attempt per call (maxAttempts 1): retries are done in store-s3-errors.ts,
// where they are classified and every final failure names the store and key. Connections are
// kept alive; one client (and its sockets) serves every store of a run with the same settings.
import http from 'node:http';
import https from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from './store-s3-flags';

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

/** The client for these settings, made once per process. */
export function s3Client(given: S3Settings): S3Client {
  const settings = {
    endpoint: given.endpoint ?? (process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined),
    // The SDK reads AWS_REGION and the profile; aws-cli users often set AWS_DEFAULT_REGION.
    region: given.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined),
    profile: given.profile,
  };
  const id = JSON.stringify([settings.endpoint, settings.region, settings.profile]);
  let client = clients.get(id);
  if (client) return client;
  // The SDK warns on stderr, once per process, that SDK releases from 2027 need Node 22: news
  // about future releases of a dependency, not about this run, in the middle of a pipeline.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const custom = isCustomEndpoint(settings.endpoint);
  client = new S3Client({
    endpoint: settings.endpoint,
    region: settings.region ?? (custom ? 'us-east-1' : undefined),
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
  clients.set(id, client);
  return client;
}
