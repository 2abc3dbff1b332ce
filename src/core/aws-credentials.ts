// The credentials of requests signed without an SDK client (sigv4.ts): the SDK's standard chain,
// with its first link taken without loading the chain. With no profile named (--profile,
// AWS_PROFILE), that link is the environment's keys, and the chain stops there when they are
// set; then so does this, and a pipeline's processes start without loading the SDK's modules.

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Gives the credentials to sign with now (the chain's are refreshed before they expire). */
export type CredentialSource = () => Promise<AwsCredentials>;

/**
 * Called before the SDK's modules are loaded. The SDK warns on stderr, once per process, that
 * its releases from 2027 need Node 22: news about future releases of a dependency, not about
 * this run, in the middle of a pipeline.
 */
export function quietSdkWarnings(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
}

const sources = new Map<string, CredentialSource>();

/** The credentials for `profile` (undefined: the default chain), found once per process. */
export function credentialSource(profile: string | undefined): CredentialSource {
  const id = profile ?? '';
  let source = sources.get(id);
  if (!source) sources.set(id, (source = sourceFor(profile)));
  return source;
}

function sourceFor(profile: string | undefined): CredentialSource {
  const env = process.env;
  if (profile === undefined && !env.AWS_PROFILE && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    const credentials: AwsCredentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY };
    if (env.AWS_SESSION_TOKEN) credentials.sessionToken = env.AWS_SESSION_TOKEN;
    return () => Promise.resolve(credentials);
  }
  // Files, SSO, web identity, container and instance roles: the SDK's own chain, which keeps
  // what it found until shortly before it expires.
  let chain: CredentialSource | undefined;
  return () => {
    if (!chain) {
      quietSdkWarnings();
      const { defaultProvider } = require('@aws-sdk/credential-provider-node') as typeof import('@aws-sdk/credential-provider-node');
      chain = defaultProvider({ profile });
    }
    return chain();
  };
}
