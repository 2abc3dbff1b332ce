// The flags that choose an S3 store's endpoint, region and profile, shared by every command that
// opens a store. Kept apart from the client: a command on local directories never loads the SDK.
import { stringFlag, type Args, type FlagSpec } from './command';
import { UsageError } from './errors';
import type { ShaPool } from './sha-pool';

/** Flags of every command that opens a store, merged into its own. */
export function storeFlags(own: FlagSpec = {}): FlagSpec {
  return { ...own, string: ['endpoint-url', 'region', 'profile', ...(own.string ?? [])] };
}

/** The usage lines of those flags. */
export const STORE_OPTIONS_TEXT = `  --endpoint-url URL       S3 endpoint, for an S3-compatible server (default:
                           AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS's); buckets are
                           then addressed path-style (http://host/bucket/key)
  --region R               AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's
                           region; us-east-1 for a non-AWS endpoint)
  --profile NAME           profile from the shared config and credentials files (default:
                           AWS_PROFILE, or the standard chain: environment, files, SSO, role)`;

export interface S3Settings {
  endpoint?: string;
  region?: string;
  profile?: string;
  /** Aborts every request in flight (a command's SIGINT). */
  signal?: AbortSignal;
  /**
   * Threads that hash whole objects read or written, off the main thread (which then keeps the
   * sockets busy); the command that gives it closes it. Without it, hashing is done inline.
   */
  sha?: ShaPool;
  /** A local directory written without flushing to disk (s3-put --no-fsync); default true. */
  fsync?: boolean;
}

/** Settings from a command's flags; what they leave out comes from the environment (s3Client). */
export function s3Settings(args: Args, signal?: AbortSignal): S3Settings {
  const endpoint = stringFlag(args, 'endpoint-url');
  if (endpoint !== undefined && !/^https?:\/\/[^/]/i.test(endpoint)) throw new UsageError(`--endpoint-url: ${JSON.stringify(endpoint)} is not an http:// or https:// URL`);
  return { endpoint, region: stringFlag(args, 'region'), profile: stringFlag(args, 'profile'), signal };
}

