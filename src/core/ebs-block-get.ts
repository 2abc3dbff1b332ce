// GetSnapshotBlock without the SDK's per-request machinery. A block read is the one EBS call
// made hundreds of times a second, and through the SDK each cost about 1.5 ms of CPU on top of
// the transfer (middleware stack, endpoint rules, body stream collected chunk by chunk and
// copied again). Here the endpoint is resolved once, the request is signed by the SDK's own
// SigV4 signer and sent on keep-alive sockets (signed-requests.ts), and the body lands in the buffer
// that leaves as the block's payload: read there by the socket itself on plain http
// (raw-http.ts), copied there once on https.
import type { EbsSession } from './ebs-client';
import { CorruptReply } from './ebs-retry';
import { ebsEndpoint, ebsSignedRequests, escapeUri } from './ebs-signed';
import type { SignedRequests } from './signed-requests';
import { BLOCK_SIZE } from './records';

export interface BlockReply {
  /** The block's bytes, in a buffer that owns its ArrayBuffer. */
  body: Buffer;
  /** x-amz-Checksum: the service's base64 SHA-256 of the block. */
  checksum: string | undefined;
}

export class BlockGetter {
  private readonly requests: SignedRequests;

  constructor(session: EbsSession) {
    this.requests = ebsSignedRequests(session, 'ebs', () => ebsEndpoint(session), 'sluice ebs-get');
  }

  /** Reads a block into `into` (a BLOCK_SIZE buffer that owns its ArrayBuffer) or a new buffer. */
  async get(snapshotId: string, index: number, token: string, signal: AbortSignal, into?: Buffer): Promise<BlockReply> {
    const req = { method: 'GET', path: `/snapshots/${escapeUri(snapshotId)}/blocks/${index}`, query: { blockToken: token } } as const;
    const bodyBuffer = (length: number) => {
      if (length !== BLOCK_SIZE) throw new CorruptReply(`the reply announces ${length} bytes; a block has ${BLOCK_SIZE}`);
      return into ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
    };
    const reply = await this.requests.send(req, signal, { bodyBuffer, maxBody: BLOCK_SIZE });
    const dataLength = reply.headers['x-amz-data-length'];
    if (reply.body.length !== BLOCK_SIZE || (dataLength !== undefined && Number(dataLength) !== BLOCK_SIZE)) {
      throw new CorruptReply(`${reply.body.length} bytes received, x-amz-Data-Length ${dataLength}; a block has ${BLOCK_SIZE}`);
    }
    return { body: reply.body, checksum: reply.headers['x-amz-checksum'] };
  }
}
