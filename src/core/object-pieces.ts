// Objects larger than one frame carries travel as pieces: consecutive object frames of one key,
// each with "offset" (where its bytes go in the object) and the whole object's "size"; every
// piece but the last has the same length, the piece size. `s3-get` reads such an object in
// ranges, one piece each, and checks the whole object's SHA-256 before it lets the last piece
// go; `s3-put` stores the pieces as the parts of one multipart upload (in a directory, into one
// temporary file) and makes the object appear only once the last piece came and the bytes
// match. Nothing else reads pieces: a stage that needs whole objects refuses them.
import { createHash, type Hash } from 'node:crypto';
import { DEFAULT_MAX_PAYLOAD } from './decode';
import type { Rec } from './records';
import type { ObjectInfo } from './store';
import type { SerialSha } from './serial-sha';
import { MAX_PARTS, MIN_PART_SIZE } from './store-s3-limits';

/** The least piece size: S3's least part, since every piece but the last becomes one part. */
export const MIN_PIECE_SIZE = MIN_PART_SIZE;
/** The largest piece: the largest frame. */
export const MAX_PIECE_SIZE = DEFAULT_MAX_PAYLOAD;
export const DEFAULT_PIECE_SIZE = 8 << 20;
/** The most pieces of one object (S3's most parts of one upload). */
export const MAX_PIECES = MAX_PARTS;

/**
 * The piece size for an object of `size` bytes: `preferred`, grown in whole MiB to stay within
 * MAX_PIECES; undefined when even the largest pieces would be too many.
 */
export function pieceSizeFor(size: number, preferred: number): number | undefined {
  const least = Math.ceil(size / MAX_PIECES / (1 << 20)) * (1 << 20);
  const pieceSize = Math.max(preferred, least);
  return pieceSize <= MAX_PIECE_SIZE ? pieceSize : undefined;
}

/** The largest object that pieces can carry. */
export const MAX_PIECED_SIZE = MAX_PIECE_SIZE * MAX_PIECES;

/** Whether a record is a piece of an object (it has "offset"). */
export function isPiece(rec: Rec): boolean {
  return rec.type === 'object' && rec.offset !== undefined;
}

/** The refusal of a stage that reads whole objects only. */
export function pieceRefusal(rec: Rec): string {
  return `object ${JSON.stringify(rec.key)} comes in pieces ("offset" ${JSON.stringify(rec.offset)} of ${JSON.stringify(rec.size)} bytes): only s3-put joins the pieces of an object larger than a frame; read whole objects (s3-get --pieces-above)`;
}

/**
 * The SHA-256 of an object whose pieces are read at once and out of order: each piece is added
 * in its turn (add() calls chain in the order they are made), so the whole digest is ready
 * when the last piece's turn has come. With a SerialSha the hashing is done on its thread (the
 * piece's bytes move there and back: add() gives them in `data` again).
 */
export class OrderedHash {
  private readonly hash: Hash | undefined;
  private readonly id: number;
  private turn: Promise<void> = Promise.resolve();

  constructor(private readonly serial?: SerialSha) {
    this.id = serial ? serial.open() : -1;
    if (!serial) this.hash = createHash('sha256');
  }

  /** Adds the bytes `piece` resolves to after every piece added before; `check` runs first, in turn. */
  add<T extends { data: Buffer }>(piece: Promise<T>, check?: (got: T) => void): Promise<T> {
    const done = Promise.all([piece, this.turn]).then(async ([got]) => {
      check?.(got);
      if (this.serial) got.data = await this.serial.update(this.id, got.data);
      else this.hash!.update(got.data);
      return got;
    });
    // A failed piece fails the ones after it as well: the object cannot be whole. The failure
    // is reported through `done` and through the next add() or digest(); when neither comes,
    // the turn must not be left as an unhandled rejection.
    this.turn = done.then(() => undefined);
    this.turn.catch(() => {});
    return done;
  }

  /** The digest (base64), once every piece added so far was hashed. */
  async digest(): Promise<string> {
    await this.turn;
    return this.serial ? this.serial.digest(this.id) : this.hash!.digest('base64');
  }
}

/**
 * How the object a piece was read from differs from the one the first piece (or a HEAD) saw, or
 * undefined if it is the same: its size, ETag or modification time. Pieces are separate reads;
 * an object replaced between them (a directory's file without a checksum has no ETag) must
 * not pass as one.
 */
export function changedSince(first: ObjectInfo, now: ObjectInfo): string | undefined {
  if (now.size !== first.size) return `its size went from ${first.size} to ${now.size} bytes`;
  if (now.etag !== first.etag) return `its ETag went from ${first.etag} to ${now.etag}`;
  if (now.mtime?.getTime() !== first.mtime?.getTime()) return `it was modified at ${now.mtime?.toISOString()}, after ${first.mtime?.toISOString()}`;
  return undefined;
}
