// How s3-put joins the pieces of an object larger than a frame (src/core/object-pieces.ts): the
// pieces are checked in input order as they are sorted, written several at once (each one a
// part of the store's write), hashed in order once written (on the hashing thread), and the
// object is committed by the job of its last piece, after every piece was written and the
// whole SHA-256 matched the one the records give.
// A run that fails, or an input that stops between two pieces, aborts the write: no object
// is ever made of part of its pieces.
import type { Context } from '../core/command';
import { MIN_PIECE_SIZE, MAX_PIECE_SIZE, OrderedHash } from '../core/object-pieces';
import type { SerialSha } from '../core/serial-sha';
import { LINE, PAYLOAD, type Rec } from '../core/records';
import { badRecord } from '../core/stage';
import type { ObjectStore, PieceWrite, PutOptions, PutResult } from '../core/store';

interface PiecedObject {
  key: string;
  size: number;
  pieceSize: number;
  sha256: string | undefined;
  /** Bytes sorted so far. */
  next: number;
  hash: OrderedHash;
  started: Promise<PieceWrite>;
  writes: Promise<void>[];
  /** Where its first piece was, for messages. */
  first: Rec;
}

interface Piece {
  object: PiecedObject;
  index: number;
  last: boolean;
}

export class PieceJoiner {
  /** The object whose pieces are coming in. */
  private open: PiecedObject | undefined;
  /** Objects begun and not yet committed or aborted. */
  private readonly unfinished = new Set<PiecedObject>();
  private readonly pieces = new WeakMap<Rec, Piece>();

  constructor(
    private readonly ctx: Context,
    private readonly store: ObjectStore,
    private readonly putOptions: (sha256: string | undefined) => PutOptions,
    /** Where each object is hashed, in order (off this thread). */
    private readonly serial?: SerialSha,
  ) {}

  /** Checks a piece, in input order; throws to refuse it before anything of it is written. */
  accept(rec: Rec): void {
    const data: Buffer | undefined = rec[PAYLOAD];
    const key = rec.key as string;
    const shown = JSON.stringify(key);
    const { size, offset } = rec;
    if (rec.commit === true) throw badRecord(this.ctx, rec, `object ${shown}: a commit object cannot come in pieces`);
    if (!(Number.isSafeInteger(size) && (size as number) > 0)) throw badRecord(this.ctx, rec, `object ${shown}: a piece needs the whole object's "size", a positive integer, got ${JSON.stringify(size)}`);
    if (!(Number.isSafeInteger(offset) && (offset as number) >= 0)) throw badRecord(this.ctx, rec, `object ${shown}: "offset" must be a non-negative integer, got ${JSON.stringify(offset)}`);
    if (!data?.length) throw badRecord(this.ctx, rec, `object ${shown}: a piece (with "offset") has no data`);
    if (rec.sha256 !== undefined && typeof rec.sha256 !== 'string') throw badRecord(this.ctx, rec, `object ${shown}: "sha256" must be a base64 string`);
    const object = this.open ?? this.begin(rec, data);
    if (object.key !== key || object.size !== size) this.interrupt(rec);
    if (offset !== object.next) throw badRecord(this.ctx, rec, `object ${shown}: the piece at offset ${offset} came where the one at ${object.next} was due`);
    const expected = Math.min(object.pieceSize, object.size - object.next);
    if (data.length !== expected) throw badRecord(this.ctx, rec, `object ${shown}: the piece at offset ${offset} holds ${data.length} bytes; every piece but the last holds ${object.pieceSize} (the first one's length), so this one should hold ${expected}`);
    if ((rec.sha256 ?? object.sha256) !== object.sha256) throw badRecord(this.ctx, rec, `object ${shown}: the pieces disagree on the object's "sha256"`);
    object.next += data.length;
    const last = object.next === object.size;
    this.pieces.set(rec, { object, index: (offset as number) / object.pieceSize, last });
    if (last) this.open = undefined;
  }

  /** Throws when a record comes while an object's pieces are still due. */
  interrupt(rec: Rec): void {
    const open = this.open;
    if (!open) return;
    throw badRecord(this.ctx, rec, `object ${JSON.stringify(open.key)} (pieces from line ${open.first[LINE] ?? '?'}) stopped after ${open.next} of ${open.size} bytes: the pieces of an object must follow one another to its end`);
  }

  /** At the end of the input: an object still missing pieces is an error. */
  endOfInput(): void {
    const open = this.open;
    if (open) throw badRecord(this.ctx, open.first, `object ${JSON.stringify(open.key)}: the input ended after ${open.next} of its ${open.size} bytes`);
  }

  /** Writes a piece; for the last one, commits the object and gives what was stored. */
  async write(rec: Rec): Promise<PutResult | undefined> {
    const piece = this.pieces.get(rec);
    if (!piece) throw new Error('a piece written before it was accepted');
    const { object } = piece;
    const data = rec[PAYLOAD] as Buffer;
    const writing = object.started.then((target) => target.write(piece.index, data));
    object.writes.push(writing);
    // Hashed in piece order (the calls come in input order), each piece once it is written:
    // its bytes may move to the hashing thread. The job holds them until then.
    await object.hash.add(writing.then(() => ({ data })));
    if (!piece.last) return undefined;
    await Promise.all(object.writes);
    const target = await object.started;
    // The store checks it against the records' "sha256" (given to putPieces()) and discards the
    // write on a mismatch, a journaled upload too: its content is wrong.
    const result = await target.commit(await object.hash.digest());
    this.unfinished.delete(object);
    return result;
  }

  /** Aborts every object begun and not committed (a failed or interrupted run). */
  async abandon(): Promise<void> {
    const left = [...this.unfinished];
    this.unfinished.clear();
    await Promise.all(left.map((object) => object.started.then((target) => target.abort()).catch(() => {})));
  }

  private begin(rec: Rec, data: Buffer): PiecedObject {
    const key = rec.key as string;
    const size = rec.size as number;
    if (rec.offset !== 0) throw badRecord(this.ctx, rec, `object ${JSON.stringify(key)}: its first piece has "offset" ${rec.offset}, not 0`);
    if (data.length < size && (data.length < MIN_PIECE_SIZE || data.length > MAX_PIECE_SIZE)) {
      throw badRecord(this.ctx, rec, `object ${JSON.stringify(key)}: pieces must hold ${MIN_PIECE_SIZE} to ${MAX_PIECE_SIZE} bytes (all but the last), the first holds ${data.length}`);
    }
    const sha256 = rec.sha256 as string | undefined;
    const started = this.store.putPieces(key, size, data.length, this.putOptions(sha256));
    // Its failure is reported by the pieces' writes; this keeps it from going unhandled meanwhile.
    started.catch(() => {});
    const object: PiecedObject = { key, size, pieceSize: data.length, sha256, next: 0, hash: new OrderedHash(this.serial), started, writes: [], first: rec };
    this.unfinished.add(object);
    this.open = object;
    return object;
  }
}
