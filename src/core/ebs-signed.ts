// The endpoint of EBS as the SDK's EBS client would call it, and the parameters of the SDK's
// endpoint rules, which EC2's take too (ebs-describe.ts); and requests signed with the EBS
// client's signer (signed-requests.ts).
import type { EbsSession } from './ebs-client';
import { SignedRequests } from './signed-requests';

export { escapeUri, xmlText, type Reply } from './signed-requests';

/** Requests to `service` at `endpoint`, signed with the session's EBS client's signer. */
export function ebsSignedRequests(session: EbsSession, service: string, endpoint: () => Promise<string>, userAgent: string): SignedRequests {
  return new SignedRequests({ config: session.ebs.config, requestTimeoutMs: session.requestTimeoutMs, httpsAgent: session.httpsAgent }, service, endpoint, userAgent);
}

/** The endpoint the EBS client would call: --endpoint-url, the configured one, or its rules'. */
export async function ebsEndpoint(session: EbsSession): Promise<string> {
  const config = session.ebs.config;
  return config.endpointProvider(await endpointParams(session, async () => config.serviceConfiguredEndpoint?.())).url.href;
}

/** The parameters of the SDK's endpoint rules, which EBS and EC2 take alike. */
export async function endpointParams(session: EbsSession, configured: () => Promise<string | undefined>) {
  const config = session.ebs.config;
  return {
    Region: await config.region(),
    UseFIPS: await config.useFipsEndpoint(),
    UseDualStack: await config.useDualstackEndpoint(),
    Endpoint: session.settings.endpoint ?? (await configured()),
  };
}

