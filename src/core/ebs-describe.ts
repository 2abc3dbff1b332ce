// EC2 DescribeSnapshots of one snapshot, without the EC2 client: its module takes about 60 MiB
// of memory once loaded, as much again as everything else ebs-blocks holds. The call is one
// signed form POST of the EC2 Query API (signed-requests.ts) whose XML reply is read for the few
// fields the commands use. The endpoint is the one the EC2 client would call: --endpoint-url,
// AWS_ENDPOINT_URL_EC2 (or the profile's services section), else the SDK's rules for EC2,
// which are EBS's with "ec2" for "ebs" and one exception (FIPS in GovCloud).
import { EBSClient } from '@aws-sdk/client-ebs';
import type { EbsSession } from './ebs-client';
import { ebsSignedRequests, endpointParams, xmlText, type Reply } from './ebs-signed';
import type { SignedRequests } from './signed-requests';

/** The API version the Query API request names; the reply's fields are those of this version. */
const EC2_VERSION = '2016-11-15';
// A reply about one snapshot is a few KiB, with its tags; anything this large is not one.
const MAX_REPLY = 1 << 20;

/** The child elements with text of a snapshot in the reply, by name (`status`, `volumeSize`, ...). */
export type SnapshotFields = Record<string, string>;

const describers = new WeakMap<EbsSession, SignedRequests>();

/** DescribeSnapshots of one id: the fields of the snapshot the reply holds, or undefined when none. */
export async function describeSnapshotFields(session: EbsSession, snapshotId: string): Promise<SnapshotFields | undefined> {
  let requests = describers.get(session);
  if (!requests) describers.set(session, (requests = ebsSignedRequests(session, 'ec2', () => ec2Endpoint(session), `sluice ${session.ctx.command}`)));
  const body = new URLSearchParams({ Action: 'DescribeSnapshots', Version: EC2_VERSION, 'SnapshotId.1': snapshotId }).toString();
  const req = { method: 'POST', path: '/', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body } as const;
  const items = readSnapshots(await requests.send(req, session.ctx.signal, { maxBody: MAX_REPLY }));
  return items.find((s) => s.snapshotId === snapshotId) ?? items[0];
}

function readSnapshots(reply: Reply): SnapshotFields[] {
  const text = reply.body.toString('utf8');
  const items = snapshotItems(text);
  // Retried as a reply the SDK fails to parse is (ebs-retry.ts: $metadata, no status).
  if (!items) throw Object.assign(new Error(`the reply is not a DescribeSnapshotsResponse: ${JSON.stringify(text.slice(0, 120))}`), { name: 'MalformedReply', $metadata: {} });
  return items;
}

// A start tag, an end tag or an empty element (attributes quoted as XML allows), or anything
// else in angle brackets: the declaration, comments.
const TAG = /<(\/?)([A-Za-z_][\w.:-]*)(?:\s(?:"[^"]*"|'[^']*'|[^'">/]|\/(?!>))*)?(\/?)>|<[?!][^>]*>/g;

/**
 * The snapshots of a DescribeSnapshotsResponse: for each <item> of <snapshotSet>, its child
 * elements that hold text; nested sets (tagSet) are left out. Undefined when the text is not
 * a well-formed DescribeSnapshotsResponse.
 */
export function snapshotItems(xml: string): SnapshotFields[] | undefined {
  const open: { name: string; at: number; leaf: boolean }[] = [];
  const items: SnapshotFields[] = [];
  let root: string | undefined;
  for (const m of xml.matchAll(TAG)) {
    const [whole, close, name, empty] = m;
    if (name === undefined) continue;
    const end = m.index + whole.length;
    if (!close) {
      const parent = open.at(-1);
      if (parent) parent.leaf = false;
      else if (root === undefined) root = name;
      else return undefined; // a second root
      if (name === 'item' && parent?.name === 'snapshotSet' && open.length === 2) items.push({});
      open.push({ name, at: end, leaf: true });
      if (!empty) continue;
    }
    const el = open.pop();
    if (!el || el.name !== name) return undefined;
    // A child of a snapshot: root > snapshotSet > item > name.
    if (el.leaf && open.length === 3 && open[1].name === 'snapshotSet' && open[2].name === 'item') {
      items[items.length - 1][name] = empty ? '' : xmlText(xml.slice(el.at, m.index));
    }
  }
  return open.length === 0 && root === 'DescribeSnapshotsResponse' ? items : undefined;
}

async function ec2Endpoint(session: EbsSession): Promise<string> {
  const params = await endpointParams(session, () => ec2ConfiguredEndpoint(session));
  const url = new URL(session.ebs.config.endpointProvider(params).url.href);
  if (params.Endpoint === undefined) url.hostname = ec2Host(url.hostname, params);
  return url.href;
}

/**
 * EC2's host where the rules give EBS's: ebs[-fips].REGION.SUFFIX becomes ec2[-fips].REGION.SUFFIX,
 * but EC2 in GovCloud is FIPS at its usual name (ec2.us-gov-west-1.amazonaws.com).
 */
export function ec2Host(ebsHost: string, params: { Region?: string; UseFIPS?: boolean; UseDualStack?: boolean }): string {
  const govFips = params.UseFIPS && !params.UseDualStack && /^(aws-)?us-gov-/.test(params.Region ?? '');
  return ebsHost.replace(/^ebs(-fips)?\./, (_, fips?: string) => (fips && !govFips ? 'ec2-fips.' : 'ec2.'));
}

/**
 * AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL or the shared config's endpoint for EC2, looked up by
 * the SDK itself: a client of the (already loaded) EBS module given EC2's service id resolves
 * its configured endpoint as the EC2 client would. It is never sent anything.
 */
async function ec2ConfiguredEndpoint(session: EbsSession): Promise<string | undefined> {
  const lookup = new EBSClient({ serviceId: 'EC2', region: session.settings.region, profile: session.settings.profile });
  try {
    return await lookup.config.serviceConfiguredEndpoint?.();
  } finally {
    lookup.destroy();
  }
}
