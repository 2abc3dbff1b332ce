// GetSnapshotBlock without the SDK's per-request machinery. A block read is the one EBS call
// made hundreds of times a second, and through the SDK each cost about 1.5 ms of CPU on top of
// the transfer (middleware stack, endpoint rules, body stream collected chunk by chunk and
// copied again). Here the endpoint is resolved once, the request is signed by the SDK's own
// SigV4 signer and sent on the session's keep-alive sockets (ebs-signed.ts), and the body is
// copied once, straight into the buffer that leaves as the block's payload.
import type http from 'node:http';
import type { EbsSession } from './ebs-client';
import { CorruptReply } from './ebs-retry';
import { ebsEndpoint, escapeUri, header, SignedRequests } from './ebs-signed';
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
    this.requests = new SignedRequests(session, 'ebs', () => ebsEndpoint(session), 'sluice ebs-get');
  }

  /** Reads a block into `into` (a BLOCK_SIZE buffer that owns its ArrayBuffer) or a new buffer. */
  get(snapshotId: string, index: number, token: string, signal: AbortSignal, into?: Buffer): Promise<BlockReply> {
    const body = into ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
    const req = { method: 'GET', path: `/snapshots/${escapeUri(snapshotId)}/blocks/${index}`, query: { blockToken: token } } as const;
    return this.requests.send(req, signal, (res) => receiveBlock(res, body));
  }
}

function receiveBlock(res: http.IncomingMessage, body: Buffer): Promise<BlockReply> {
  return new Promise<BlockReply>((resolve, reject) => {
    let received = 0;
    res.on('data', (chunk: Buffer) => {
      if (received + chunk.length <= BLOCK_SIZE) chunk.copy(body, received);
      received += chunk.length;
    });
    res.on('end', () => {
      const dataLength = res.headers['x-amz-data-length'];
      if (received !== BLOCK_SIZE || (dataLength !== undefined && Number(dataLength) !== BLOCK_SIZE)) {
        reject(new CorruptReply(`${received} bytes received, x-amz-Data-Length ${dataLength}; a block has ${BLOCK_SIZE}`));
        return;
      }
      resolve({ body, checksum: header(res, 'x-amz-checksum') });
    });
  });
}
