// ListObjectsV2 without the SDK's client, on the endpoints GetObject goes without it
// (store-s3-raw-get.ts): a listing is the first request of most pipelines, and the SDK's S3
// modules took longer to load than the listing of a thousand keys took to arrive.
//
// The reply is read for what a listing gives (store-s3-records.ts: key, size, ETag, time,
// storage class), entries shaped as the SDK's so that both ways give the same records.
import type { _Object, StorageClass } from '@aws-sdk/client-s3';
import { escapeUri, xmlText, type SignedRequests } from './signed-requests';
import { EMPTY_SHA256 } from './store-s3-raw-get';

export interface ListPageAsk {
  bucket: string;
  prefix: string;
  maxKeys: number;
  startAfter?: string;
  token?: string;
  signal?: AbortSignal;
}

export interface ListPage {
  contents: _Object[];
  /** The token of the next page; undefined on the last (a reply that says it goes on without one is refused). */
  next: string | undefined;
  /** Whether the keys came URL-encoded (the server did as asked). */
  encoded: boolean;
}

// The biggest listing page S3 sends is 1,000 entries of about 1 KiB of XML each.
const MAX_REPLY = 64 << 20;

export async function rawListPage(requests: SignedRequests, ask: ListPageAsk): Promise<ListPage> {
  const query: Record<string, string> = { 'list-type': '2', prefix: ask.prefix, 'max-keys': String(ask.maxKeys), 'encoding-type': 'url' };
  if (ask.token !== undefined) query['continuation-token'] = ask.token;
  else if (ask.startAfter !== undefined) query['start-after'] = ask.startAfter;
  const reply = await requests.send({ method: 'GET', path: `/${escapeUri(ask.bucket)}`, query, headers: { 'x-amz-content-sha256': EMPTY_SHA256 } }, ask.signal, { maxBody: MAX_REPLY });
  return parseListPage(reply.body.toString('utf8'));
}

/** A ListBucketResult; a reply that is not one is refused rather than read as an empty page. */
export function parseListPage(xml: string): ListPage {
  const start = xml.indexOf('<ListBucketResult');
  if (start < 0) throw invalid(`the listing's reply is not a ListBucketResult: ${JSON.stringify(xml.slice(0, 120))}`);
  const contents: _Object[] = [];
  const entry = /<Contents>([\s\S]*?)<\/Contents>/g;
  const field = /<(Key|LastModified|ETag|Size|StorageClass)>([^<]*)<\/\1>/g;
  for (let found = entry.exec(xml); found; found = entry.exec(xml)) {
    const o: _Object = {};
    for (let f = field.exec(found[1]); f; f = field.exec(found[1])) {
      const value = xmlText(f[2]);
      if (f[1] === 'Key') o.Key = value;
      else if (f[1] === 'LastModified') o.LastModified = new Date(value);
      else if (f[1] === 'ETag') o.ETag = value;
      else if (f[1] === 'Size') o.Size = Number(value);
      else o.StorageClass = value as StorageClass;
    }
    field.lastIndex = 0;
    if (o.Key === undefined || !Number.isSafeInteger(o.Size)) throw invalid(`a listing entry without a key or a size: ${JSON.stringify(found[0].slice(0, 200))}`);
    contents.push(o);
  }
  const token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml);
  let next: string | undefined;
  if (/<IsTruncated>\s*true\s*<\/IsTruncated>/.test(xml)) {
    // A listing that goes on without saying where would end here, incomplete and unnoticed.
    if (!token || token[1] === '') throw invalid(`the listing says it goes on, without a continuation token`);
    next = xmlText(token[1]);
  }
  return { contents, next, encoded: /<EncodingType>\s*url\s*<\/EncodingType>/.test(xml) };
}

function invalid(message: string): Error {
  return Object.assign(new Error(message), { name: 'InvalidReply' });
}
