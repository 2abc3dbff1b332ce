// The AWS side shared by every EBS command: the flags that choose region, profile, endpoint and
// concurrency, and the EBS and EC2 clients built from them.
//
// The SDK makes one attempt per call (maxAttempts 1): retries are done in ebs-retry.ts, where
// they are classified, counted and shaped by the adaptive rate. Connections are kept alive and
// there are enough sockets for every job plus the listings beside them, so a job never waits
// for a socket behind another job.
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { intFlag, stringFlag, type Args, type Context, type FlagSpec } from './command';
import { AdaptiveRate } from './ebs-rate';
import { Retrier } from './ebs-retry';

type Ec2Module = typeof import('@aws-sdk/client-ec2');
let ec2Module: Ec2Module | undefined;

/**
 * The EC2 client's module, loaded when first needed: it is large (about 60 MiB of memory once
 * loaded, more than ebs-get needs for all its blocks in flight), and only DescribeSnapshots
 * uses it.
 */
export function loadEc2(): Ec2Module {
  return (ec2Module ??= require('@aws-sdk/client-ec2') as Ec2Module);
}

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

/** The clients and the retry policy of one command run. */
export class EbsSession {
  readonly ebs: EBSClient;
  private ec2Client: EC2Client | undefined;
  private readonly clientConfig;
  readonly retry: Retrier;
  /** Block reads and writes share the per-snapshot budget: one adaptive rate each way. */
  readonly blockRate = new AdaptiveRate();
  /** Keep-alive sockets, shared by the SDK's clients and the lean block reader (ebs-block-get.ts). */
  readonly httpAgent: http.Agent;
  readonly httpsAgent: https.Agent;
  readonly requestTimeoutMs = REQUEST_TIMEOUT_MS;

  constructor(
    readonly ctx: Context,
    readonly settings: EbsSettings,
  ) {
    // The SDK warns on stderr, once per process, that SDK releases from 2027 need Node 22: news
    // about future releases of a dependency, not about this run, in the middle of a pipeline.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
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
    const common = {
      region: settings.region,
      profile: settings.profile,
      endpoint: settings.endpoint,
      maxAttempts: 1,
      requestHandler,
    };
    this.clientConfig = common;
    this.ebs = new EBSClient(common);
    this.retry = new Retrier(ctx);
  }

  /** The EC2 client, made on first use (DescribeSnapshots; block reads never need it). */
  get ec2(): EC2Client {
    return (this.ec2Client ??= new (loadEc2().EC2Client)(this.clientConfig));
  }

  close(): void {
    this.ebs.destroy();
    this.ec2Client?.destroy();
  }
}
