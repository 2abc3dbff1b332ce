// The AWS side shared by every EBS command: the flags that choose region, profile, endpoint and
// concurrency, and the EBS client built from them. EC2 DescribeSnapshots goes without the EC2
// client, signed by the EBS client's signer (ebs-describe.ts).
//
// The SDK makes one attempt per call (maxAttempts 1): retries are done in ebs-retry.ts, where
// they are classified, counted and shaped by the adaptive rate. Connections are kept alive and
// there are enough sockets for every job plus the listings beside them, so a job never waits
// for a socket behind another job.
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { EBSClient } from '@aws-sdk/client-ebs';
import { quietSdkWarnings } from './aws-credentials';
import { intFlag, stringFlag, type Args, type Context, type FlagSpec } from './command';
import { AdaptiveRate } from './ebs-rate';
import { Retrier } from './ebs-retry';

/** Flags every EBS command takes, merged into its own. */
export function ebsFlags(own: FlagSpec = {}): FlagSpec {
  return {
    ...own,
    string: ['region', 'profile', 'endpoint-url', 'jobs', ...(own.string ?? [])],
    boolean: ['dry-run', ...(own.boolean ?? [])],
    alias: { j: 'jobs', ...(own.alias ?? {}) },
  };
}

/** The usage lines of those flags; JOBS is the command's default for -j. */
export function ebsOptionsText(jobs: number): string {
  return `  --region R           AWS region (default: AWS_REGION, or the profile's region)
  --profile NAME       profile from the shared config and credentials files (default:
                       AWS_PROFILE, or the standard chain: environment, files, SSO, instance role)
  --endpoint-url URL   EBS endpoint, e.g. an ebs-emulator; EC2 DescribeSnapshots goes there
                       too (default: AWS_ENDPOINT_URL_EBS and AWS_ENDPOINT_URL_EC2, or AWS's)
  -j, --jobs N         requests in flight, 1 to ${MAX_JOBS} (default ${jobs}); the request rate adapts
                       to throttling below that, up to the per-snapshot quota of 1,000/s
  --dry-run            check access, print a "plan" record (calls, blocks, bytes), write nothing`;
}

export const MAX_JOBS = 256;

// A request that sends or receives nothing for this long is dropped and retried.
const REQUEST_TIMEOUT_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface EbsSettings {
  region?: string;
  profile?: string;
  endpoint?: string;
  jobs: number;
  dryRun: boolean;
}

export function ebsSettings(args: Args, defaultJobs: number): EbsSettings {
  return {
    // The SDK reads AWS_REGION and the profile; aws-cli users often set AWS_DEFAULT_REGION.
    region: stringFlag(args, 'region') ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || undefined),
    profile: stringFlag(args, 'profile'),
    endpoint: stringFlag(args, 'endpoint-url'),
    jobs: intFlag(args, 'jobs', defaultJobs, 1, MAX_JOBS),
    dryRun: Boolean(args['dry-run']),
  };
}

/** The client and the retry policy of one command run. */
export class EbsSession {
  readonly ebs: EBSClient;
  readonly retry: Retrier;
  /** Block reads and writes share the per-snapshot budget: one adaptive rate each way. */
  readonly blockRate = new AdaptiveRate();
  /** Keep-alive sockets, shared by the SDK's client and the requests it signs (ebs-signed.ts). */
  readonly httpAgent: http.Agent;
  readonly httpsAgent: https.Agent;
  readonly requestTimeoutMs = REQUEST_TIMEOUT_MS;

  constructor(
    readonly ctx: Context,
    readonly settings: EbsSettings,
  ) {
    quietSdkWarnings();
    // Every request in flight listens on the command's abort signal.
    setMaxListeners(0, ctx.signal);
    const sockets = settings.jobs + 8;
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: sockets });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: sockets });
    const requestHandler = {
      httpAgent: this.httpAgent,
      httpsAgent: this.httpsAgent,
      requestTimeout: REQUEST_TIMEOUT_MS,
      connectionTimeout: CONNECT_TIMEOUT_MS,
    };
    this.ebs = new EBSClient({
      region: settings.region,
      profile: settings.profile,
      endpoint: settings.endpoint,
      maxAttempts: 1,
      requestHandler,
    });
    this.retry = new Retrier(ctx);
  }

  close(): void {
    this.ebs.destroy();
  }
}
