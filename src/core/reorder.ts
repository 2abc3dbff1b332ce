// Puts the chunks of a layout whose keys do not sort in block order (FSP writes block numbers
// without leading zeros: a listing goes 0, 1024, 10240, ..., 128, ...) back into block order,
// holding the frames that come early in a temporary file rather than in memory.
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeAll } from './write-all';

export interface Placed<T> {
  first: number;
  count: number;
  /** The block number as written in the key, which is what a key-ordered listing sorts by. */
  text: string;
  meta: T;
}

interface Held<T> extends Placed<T> {
  offset: number;
  length: number;
}

/** Thrown when chunks arrive in neither order, or overlap. */
export class OrderError extends Error {}

/**
 * Accepts chunks in store-listing order (keys ascending as strings) or in block order, and
 * releases them in block order as soon as no earlier chunk can still come. In listing order,
 * after the key for block number s has been seen, a chunk starting at m can still come only
 * if the text of m sorts after that of s; a gap that no such m fits is a hole.
 */
export class Reorder<T> {
  private readonly heap: Held<T>[] = [];
  private mode: 'unknown' | 'listing' | 'blocks' = 'unknown';
  private lastText: string | undefined;
  private lastFirst = -1;
  private next = 0; // first block not yet released
  private spool: fsp.FileHandle | undefined;
  private spoolSize = 0;
  spooledBytes = 0;

  constructor(private readonly dir = tmpdir()) {}

  /**
   * Takes a chunk and its frame; yields the chunks now released, in block order, reading each
   * back from the spool only when asked for the next (so memory holds one at a time).
   */
  async *add(item: Placed<T>, frame: Buffer): AsyncGenerator<Placed<T> & { frame: Buffer }> {
    this.checkOrder(item);
    if ((!this.heap.length || item.first < this.heap[0].first) && this.canRelease(item.first)) {
      this.advance(item);
      yield { ...item, frame };
    } else {
      await this.hold(item, frame);
    }
    while (this.heap.length && this.canRelease(this.heap[0].first)) yield await this.take();
  }

  /** The end of input: everything held, in block order. */
  async *finish(): AsyncGenerator<Placed<T> & { frame: Buffer }> {
    while (this.heap.length) yield await this.take();
  }

  async close(): Promise<void> {
    await this.spool?.close().catch(() => {});
    this.spool = undefined;
  }

  private checkOrder(item: Placed<T>): void {
    const prevText = this.lastText;
    const prev = this.lastFirst;
    this.lastText = item.text;
    this.lastFirst = item.first;
    if (prevText === undefined) return;
    if (item.first === prev) throw new OrderError(`block ${item.first} starts two chunks`);
    const byBlocks = item.first > prev;
    const byListing = sortKey(item.text) > sortKey(prevText);
    if (!byBlocks && !byListing) throw new OrderError(`the chunk at block ${item.first} comes after the one at block ${prev}: the input is in neither key nor block order`);
    if (byBlocks && byListing) return;
    const mode = byBlocks ? 'blocks' : 'listing';
    if (this.mode !== 'unknown' && this.mode !== mode) {
      throw new OrderError(`the chunk at block ${item.first} comes after the one at block ${prev}: the input is in neither key nor block order`);
    }
    this.mode = mode;
  }

  /** No chunk starting in [next, first) can still arrive. */
  private canRelease(first: number): boolean {
    if (first < this.next) return true; // an overlap: take() reports it
    if (first === this.next || this.mode === 'blocks') return true;
    if (this.lastText === undefined) return false;
    const latest = lexMax(this.next, first - 1);
    return sortKey(latest) <= sortKey(this.lastText);
  }

  private advance(item: Placed<T>): void {
    if (item.first < this.next) throw new OrderError(`the chunk at block ${item.first} overlaps the one before it, which ends at block ${this.next - 1}`);
    this.next = item.first + item.count;
  }

  private async hold(item: Placed<T>, frame: Buffer): Promise<void> {
    if (!this.spool) {
      const file = path.join(this.dir, `.sluice-reorder-${process.pid}-${randomBytes(4).toString('hex')}`);
      this.spool = await fsp.open(file, 'w+', 0o600);
      // Unlinked at once: the space goes back when the process ends, however it ends.
      await fsp.unlink(file);
    }
    const offset = this.spoolSize;
    this.spoolSize += frame.length;
    this.spooledBytes += frame.length;
    await writeAll(this.spool, frame, offset);
    heapPush(this.heap, { ...item, offset, length: frame.length });
  }

  private async take(): Promise<Placed<T> & { frame: Buffer }> {
    const held = heapPop(this.heap)!;
    this.advance(held);
    const frame = Buffer.allocUnsafe(held.length);
    let done = 0;
    while (done < held.length) {
      const { bytesRead } = await this.spool!.read(frame, done, held.length - done, held.offset + done);
      if (bytesRead === 0) throw new Error('the reorder spool file is shorter than what was written to it');
      done += bytesRead;
    }
    return { first: held.first, count: held.count, text: held.text, meta: held.meta, frame };
  }
}

// Keys compare as `{number}.` strings: the '.' after the number sorts before any digit.
function sortKey(text: string): string {
  return text + '.';
}

/** The number in [a, b] whose decimal text sorts last as a key (b >= a >= 0). */
export function lexMax(a: number, b: number): string {
  let best = String(b);
  // For each shorter length, the largest number of that length in range ends in all nines.
  for (let digits = String(a).length; digits < String(b).length; digits++) {
    const top = 10 ** digits - 1;
    if (top >= a && sortKey(String(top)) > sortKey(best)) best = String(top);
  }
  return best;
}

function heapPush<T extends { first: number }>(heap: T[], item: T): void {
  heap.push(item);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent].first <= heap[i].first) break;
    [heap[parent], heap[i]] = [heap[i], heap[parent]];
    i = parent;
  }
}

function heapPop<T extends { first: number }>(heap: T[]): T | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length && last) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l].first < heap[m].first) m = l;
      if (r < heap.length && heap[r].first < heap[m].first) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  }
  return top;
}
