// How s3-get reads the pieces of a large object from a store that streams reads (a plain-http
// S3 endpoint: ObjectStore.readSegments): by one GET, each piece a segment of its body, instead
// of one ranged GET per piece. Pieces are asked for in order, as the output has room for them;
// the socket reads a segment only once its piece was asked for (its buffer is taken then), so
// the pace of the output is the pace of the socket, and memory holds what the output allows.
import type { BodySegments } from '../core/raw-http';
import type { GetResult, ObjectInfo, ObjectStore } from '../core/store';

interface Asked {
  range: { start: number; end: number };
  resolve: (got: GetResult) => void;
  reject: (err: unknown) => void;
}

export class StreamedPieces {
  private readonly asked: Asked[] = [];
  /** Pieces whose buffer went to the socket; pieces whose segment came. */
  private handed = 0;
  private filled = 0;
  private wantsBuffer: ((buffer: Buffer) => void) | undefined;
  private started = false;
  /** Set when the store reads ranges after all, or the stream failed. */
  private ranges = false;
  private failure: unknown;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    /** The object's HEAD: its size, and the ETag every byte must be of. */
    private readonly info: ObjectInfo & { etag: string },
    private readonly pieceSize: number,
    /** A buffer for a piece (of the command's pool). */
    private readonly takeBuffer: () => Buffer,
    /** A ranged read, where the store does not stream. */
    private readonly ranged: (range: { start: number; end: number }) => Promise<GetResult>,
  ) {}

  /** The next piece, whose range must follow the one asked before. */
  read(range: { start: number; end: number }): Promise<GetResult> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ranges) return this.ranged(range);
    if (range.start !== this.asked.length * this.pieceSize) return Promise.reject(new RangeError(`piece at ${range.start} asked for out of turn`));
    return new Promise<GetResult>((resolve, reject) => {
      this.asked.push({ range, resolve, reject });
      if (!this.started) this.start();
      else this.giveBuffer();
    });
  }

  private start(): void {
    this.started = true;
    const reader: BodySegments = {
      size: this.pieceSize,
      length: this.info.size,
      next: () => {
        if (this.handed < this.asked.length) return this.nextBuffer();
        return new Promise<Buffer>((resolve) => (this.wantsBuffer = resolve));
      },
      filled: (segment) => {
        const piece = this.asked[this.filled++];
        piece.resolve({ data: segment, info: this.info });
      },
    };
    this.store.readSegments!(this.key, { start: 0, end: this.info.size }, reader, this.info.etag).then(
      (read) => {
        if (read !== undefined) return;
        // Not streamed after all (nothing was read): every piece is a ranged read.
        this.ranges = true;
        for (const piece of this.asked.splice(0)) this.ranged(piece.range).then(piece.resolve, piece.reject);
      },
      (err: unknown) => {
        this.failure = err;
        for (const piece of this.asked.splice(this.filled)) piece.reject(err);
      },
    );
  }

  private nextBuffer(): Buffer {
    this.handed++;
    return this.takeBuffer();
  }

  /** A piece was asked for: the socket, if it waits for a buffer, gets one. */
  private giveBuffer(): void {
    const give = this.wantsBuffer;
    if (!give || this.handed >= this.asked.length) return;
    this.wantsBuffer = undefined;
    give(this.nextBuffer());
  }
}
