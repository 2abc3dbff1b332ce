// How s3-get reads an object too large for one frame: as pieces (src/core/object-pieces.ts),
// one ranged read each, several at once. The pieces are hashed in order as they arrive; every
// one must come from the same object (its ETag, and the record's when it has one), and the last
// piece goes out only once the whole object's SHA-256 matched the one the store kept and the
// record gives, so that a stage after s3-get never completes an object from bytes that fail
// their check.
import type { Context } from '../core/command';
import { changedSince, OrderedHash, pieceSizeFor, MAX_PIECED_SIZE } from '../core/object-pieces';
import { PAYLOAD, type Rec } from '../core/records';
import { integrityError, recordAt } from '../core/stage';
import { type GetResult, type ObjectInfo, type ObjectStore } from '../core/store';
import { SluiceError } from '../core/errors';
import type { SerialSha } from '../core/serial-sha';

export interface PieceJob {
  /** Starts the piece's read; resolves to its record with data. */
  start(): Promise<Rec[]>;
  bytes: number;
}

/**
 * The jobs that read `rec`'s object of `size` bytes in pieces of about `preferred` bytes. Each
 * job's read begins when it is started; start them in order. `read` makes a ranged read and
 * gives its errors their place in the input.
 */
export function pieceJobs(ctx: Context, store: ObjectStore, rec: Rec, size: number, preferred: number, read: (range: { start: number; end: number }) => Promise<GetResult>, head?: ObjectInfo, serial?: SerialSha): PieceJob[] {
  const key = rec.key as string;
  const shown = JSON.stringify(key);
  const pieceSize = pieceSizeFor(size, preferred);
  if (pieceSize === undefined) throw new SluiceError(`${recordAt(ctx, rec)}: object ${shown} is ${size} bytes; pieces carry at most ${MAX_PIECED_SIZE}`);
  const hash = new OrderedHash(serial);
  // What the pieces must all have been read from: the HEAD that gave the size, or the first piece.
  let first: ObjectInfo | undefined = head;
  const count = Math.ceil(size / pieceSize);
  const jobs: PieceJob[] = [];
  for (let index = 0; index < count; index++) {
    const start = index * pieceSize;
    const end = Math.min(size, start + pieceSize);
    const last = index === count - 1;
    const check = ({ data, info }: GetResult) => {
      const said = head ? 'its HEAD said' : 'the record says';
      if (info.size !== size) throw integrityError(ctx, rec, `object ${shown} is ${info.size} bytes now, ${said} ${size}: it changed since (read at offset ${start})`);
      if (data.length !== end - start) throw integrityError(ctx, rec, `object ${shown}: ${data.length} bytes read at offset ${start}, ${end - start} were asked for`);
      first ??= info;
      const changed = changedSince(first, info) ?? (typeof rec.etag === 'string' && info.etag !== undefined && info.etag !== rec.etag ? `its ETag is ${info.etag}, the record says ${rec.etag}` : undefined);
      if (changed) throw integrityError(ctx, rec, `object ${shown} changed while it was read in pieces (at offset ${start}: ${changed})`);
    };
    jobs.push({
      bytes: end - start,
      start: async () => {
        const got = await hash.add(read({ start, end }), check);
        const out: Rec = { ...rec, [PAYLOAD]: got.data, size, offset: start, store: store.url };
        const etag = first!.etag ?? rec.etag;
        if (etag !== undefined) out.etag = etag;
        const expected = expectedSha(ctx, rec, first!);
        if (expected !== undefined) out.sha256 = expected;
        if (last) {
          const actual = await hash.digest();
          if (expected !== undefined && actual !== expected) throw integrityError(ctx, rec, `object ${shown}: the SHA-256 of its ${size} bytes is ${actual}, ${rec.sha256 === undefined ? 'the store keeps' : 'the record says'} ${expected}`);
        }
        return [out];
      },
    });
  }
  return jobs;
}

/** The whole object's SHA-256 as the record and the store give it; they must agree. */
function expectedSha(ctx: Context, rec: Rec, info: ObjectInfo): string | undefined {
  const given = typeof rec.sha256 === 'string' ? rec.sha256 : undefined;
  if (given !== undefined && info.sha256 !== undefined && given !== info.sha256) {
    throw integrityError(ctx, rec, `object ${JSON.stringify(rec.key)}: the record's SHA-256 is ${given}, the store keeps ${info.sha256}`);
  }
  return given ?? info.sha256;
}
