// How s3-copy moves a large object through this process (a local directory on either side):
// in pieces, read as ranges a few at once (from a plain-http endpoint, as the consecutive
// segments of one GET) and written as they come (src/core/object-pieces.ts), so that memory
// holds a few pieces, not the object. The pieces are hashed in order; every one
// must come from the version the copy began with (the same ETag), and the object appears at the
// destination only once the whole SHA-256 matched what the source keeps and the record says.
import type { BufferPool } from '../core/buffer-pool';
import type { BodySegments } from '../core/raw-http';
import { eachLimited } from '../core/each-limited';
import { IntegrityError } from '../core/errors';
import { changedSince, DEFAULT_PIECE_SIZE, MAX_PIECED_SIZE, OrderedHash, pieceSizeFor } from '../core/object-pieces';
import type { ObjectInfo, ObjectStore, PieceWrite, PutResult } from '../core/store';
import type { SerialSha } from '../core/serial-sha';

/** Objects larger than this are copied in pieces. */
export const PIECES_ABOVE = 64 << 20;
/** Pieces of one object in flight. */
export const PIECE_JOBS = 4;
/** What a copy in pieces holds in memory. */
export const PIECED_BYTES = PIECE_JOBS * DEFAULT_PIECE_SIZE;

export interface PieceCopy {
  from: ObjectStore;
  to: ObjectStore;
  key: string;
  /** The version to copy (s3-list --versions); the current object when undefined. */
  versionId?: string;
  /** The source's description (a HEAD): its size, ETag, SHA-256 and metadata. */
  info: ObjectInfo;
  /** The SHA-256 the record gives, if any. */
  sha256?: string;
  storageClass?: string;
  /** Where the whole object is hashed, in order. */
  serial?: SerialSha;
  /** Buffers of one piece's size to read pieces into, used again once a piece is written. */
  buffers?: BufferPool;
}

export async function copyInPieces(c: PieceCopy): Promise<PutResult & { size: number }> {
  const { from, to, key, info } = c;
  const shown = `${from.url}: object ${JSON.stringify(key)}`;
  const size = info.size;
  const pieceSize = pieceSizeFor(size, DEFAULT_PIECE_SIZE);
  if (pieceSize === undefined) throw new IntegrityError(`${shown} is ${size} bytes; pieces carry at most ${MAX_PIECED_SIZE}`);
  if (c.sha256 !== undefined && info.sha256 !== undefined && c.sha256 !== info.sha256) {
    throw new IntegrityError(`${shown}: the record's SHA-256 is ${c.sha256}, the store keeps ${info.sha256}; nothing was copied`);
  }
  const expected = c.sha256 ?? info.sha256;
  const metadata = info.metadata && Object.keys(info.metadata).length ? info.metadata : undefined;
  const target: PieceWrite = await to.putPieces(key, size, pieceSize, { sha256: expected, storageClass: c.storageClass, metadata, batch: true });
  const hash = new OrderedHash(c.serial);
  const indexes = Array.from({ length: Math.ceil(size / pieceSize) }, (_, i) => i);
  try {
    const streamed = info.etag !== undefined && c.versionId === undefined ? await streamPieces(c, target, hash, pieceSize, info.etag) : undefined;
    if (streamed) {
      const changed = changedSince(info, streamed);
      if (changed) throw new IntegrityError(`${shown} changed while it was copied (${changed}); nothing was copied`);
    } else await eachLimited(indexes, PIECE_JOBS, async (i) => {
      const start = i * pieceSize;
      const end = Math.min(size, start + pieceSize);
      // add() is called before the first await: the pieces are hashed in index order.
      const got = await hash.add(
        from.get(key, { range: { start, end }, versionId: c.versionId, buffer: c.buffers?.takeFor }),
        (r) => {
          const changed = changedSince(info, r.info);
          if (changed) throw new IntegrityError(`${shown} changed while it was copied (at offset ${start}: ${changed}); nothing was copied`);
          if (r.data.length !== end - start) throw new IntegrityError(`${shown}: ${r.data.length} bytes read at offset ${start}, ${end - start} were asked for; nothing was copied`);
        },
      );
      await target.write(i, got.data);
      // Written: its buffer (back from the hashing thread, the same memory) can take another.
      c.buffers?.lend(got.data, 0);
    });
    const actual = await hash.digest();
    if (expected !== undefined && actual !== expected) {
      throw new IntegrityError(`${shown}: the SHA-256 of its ${size} bytes is ${actual}, ${c.sha256 === undefined ? 'the store keeps' : 'the record says'} ${expected}; nothing was copied`);
    }
    return { ...(await target.commit(actual)), size };
  } catch (err) {
    await target.abort();
    throw err;
  }
}

/**
 * Reads the object as one GET (where the store streams reads: a plain-http endpoint), its pieces
 * coming in order through a few buffers: each hashed in turn and written as it comes, at most
 * PIECE_JOBS of them at once, the socket waiting for a buffer meanwhile. One request per object
 * instead of one per piece: servers that spend a request's worth of work per range (moto reads
 * the whole object for each) go many times faster. Undefined when the store reads ranges.
 */
async function streamPieces(c: PieceCopy, target: PieceWrite, hash: OrderedHash, pieceSize: number, etag: string): Promise<ObjectInfo | undefined> {
  if (!c.from.readSegments) return undefined;
  const inflight = new Set<Promise<void>>();
  let failure: unknown;
  let index = 0;
  const buffer = () => c.buffers?.takeFor(pieceSize) ?? Buffer.allocUnsafeSlow(pieceSize);
  const room = async (): Promise<Buffer> => {
    while (inflight.size >= PIECE_JOBS && failure === undefined) await Promise.race(inflight);
    if (failure !== undefined) throw failure;
    return buffer();
  };
  const reader: BodySegments = {
    size: pieceSize,
    length: c.info.size,
    next: () => (inflight.size < PIECE_JOBS && failure === undefined ? buffer() : room()),
    filled(data) {
      const i = index++;
      const job = hash.add(Promise.resolve({ data })).then(async (got) => {
        await target.write(i, got.data);
        c.buffers?.lend(got.data, 0);
      });
      const tracked: Promise<void> = job.catch((err: unknown) => void (failure ??= err)).finally(() => inflight.delete(tracked));
      inflight.add(tracked);
    },
  };
  const read = await c.from.readSegments(c.key, { start: 0, end: c.info.size }, reader, etag).catch((err: unknown) => {
    // A write that failed stopped the read: its error is the one to report.
    failure ??= err;
    return undefined;
  });
  // Nothing is left writing into the file when the caller commits or removes it.
  while (inflight.size) await Promise.all(inflight);
  if (failure !== undefined) throw failure;
  return read;
}
