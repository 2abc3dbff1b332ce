import { createReadStream } from 'node:fs';
import { Bitmap } from './bitmap';
import type { Context } from './command';
import { decode } from './decode';
import { InvalidInputError, SluiceError } from './errors';
import { LINE, type Rec } from './records';

// 2^30 blocks of 512 KiB is 512 TiB, eight times the largest EBS volume; the bitmap of that
// is 128 MiB. A larger index in a journal is an error, not a reason to allocate.
export const MAX_BLOCK_INDEX = 2 ** 30 - 1;

// Block checksums are remembered as a 60-bit fingerprint (the first 10 base64 characters of
// the SHA-256), in pages allocated only where the journal has blocks: 8 bytes per block, so a
// fully written 16 TiB volume costs 256 MiB instead of gigabytes of strings.
const PAGE_BITS = 16;
const PAGE_SIZE = 1 << PAGE_BITS;
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const SIXBITS = new Uint8Array(128).fill(64);
for (let i = 0; i < BASE64.length; i++) SIXBITS[BASE64.charCodeAt(i)] = i;

/** The first 60 bits of a base64 SHA-256 as two 30-bit numbers, or undefined if it is not base64. */
function fingerprint(sha: unknown): [number, number] | undefined {
  if (typeof sha !== 'string' || sha.length < 10) return undefined;
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < 10; i++) {
    const code = sha.charCodeAt(i);
    const v = code < 128 ? SIXBITS[code] : 64;
    if (v === 64) return undefined;
    if (i < 5) hi = hi * 64 + v;
    else lo = lo * 64 + v;
  }
  return [hi, lo];
}

export function isBlockIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * What a journal says is done: object keys (with their SHA-256 when the journal gave one) and
 * block indices (with a fingerprint of their SHA-256 when given). A later journal record for the
 * same key or block replaces an earlier one.
 */
export class DoneSet {
  readonly keys = new Map<string, string | null>();
  readonly blocks = new Bitmap(MAX_BLOCK_INDEX + 1);
  private readonly hasSha = new Bitmap(MAX_BLOCK_INDEX + 1);
  private readonly pages = new Map<number, Uint32Array>();

  addObject(key: string, sha256: unknown): void {
    this.keys.set(key, typeof sha256 === 'string' ? sha256 : null);
  }

  /** A range of blocks committed as one object (a compressed chunk): done, checksums unknown. */
  addRange(first: number, count: number): void {
    for (let i = first; i < first + count; i++) {
      this.blocks.add(i);
      this.hasSha.delete(i);
    }
  }

  addBlock(index: number, sha256: unknown): void {
    this.blocks.add(index);
    const fp = fingerprint(sha256);
    if (!fp) {
      this.hasSha.delete(index);
      return;
    }
    this.hasSha.add(index);
    let page = this.pages.get(index >>> PAGE_BITS);
    if (!page) this.pages.set(index >>> PAGE_BITS, (page = new Uint32Array(PAGE_SIZE * 2)));
    const at = (index & (PAGE_SIZE - 1)) * 2;
    page[at] = fp[0];
    page[at + 1] = fp[1];
  }

  /** True when `rec` is an object or block the journal has, with the same SHA-256 if both know it. */
  isDone(rec: Rec): boolean {
    if (rec.type === 'object') {
      if (typeof rec.key !== 'string') return false;
      const sha = this.keys.get(rec.key);
      if (sha === undefined) return false;
      return sha === null || typeof rec.sha256 !== 'string' || sha === rec.sha256;
    }
    if (rec.type === 'block') {
      const index = rec.index;
      if (!isBlockIndex(index) || !this.blocks.has(index)) return false;
      if (!this.hasSha.has(index)) return true;
      const fp = fingerprint(rec.sha256);
      if (!fp) return typeof rec.sha256 !== 'string'; // no checksum on our side: the index decides
      const page = this.pages.get(index >>> PAGE_BITS)!;
      const at = (index & (PAGE_SIZE - 1)) * 2;
      return page[at] === fp[0] && page[at + 1] === fp[1];
    }
    return false;
  }
}

/**
 * Reads the journal of an earlier run (the record output of a sink). It is usually from a run
 * that was killed, so a missing trailer and a partial last line are accepted; anything invalid
 * before that is an error.
 */
export async function readJournal(ctx: Context, path: string, done = new DoneSet()): Promise<DoneSet> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  const opened = new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (err) => reject(new SluiceError(`${ctx.command}: cannot read journal ${path}: ${err.message}`)));
  });
  await opened;
  const bad = (rec: Rec, what: string) => new InvalidInputError(`${ctx.command}: ${path}:${rec[LINE] ?? '?'}: ${what}`);
  for await (const batch of decode(stream, { command: ctx.command, source: path, allowIncomplete: true })) {
    for (const rec of batch) {
      if (rec.type === 'object') {
        if (typeof rec.key !== 'string') throw bad(rec, 'object record has no string "key"');
        done.addObject(rec.key, rec.sha256);
        if (rec.firstBlock !== undefined || rec.blockCount !== undefined) {
          const { firstBlock, blockCount } = rec;
          if (!isBlockIndex(firstBlock) || !isBlockIndex(blockCount) || firstBlock + blockCount > MAX_BLOCK_INDEX + 1) {
            throw bad(rec, `object ${JSON.stringify(rec.key)} has an invalid block range (firstBlock ${JSON.stringify(firstBlock)}, blockCount ${JSON.stringify(blockCount)})`);
          }
          done.addRange(firstBlock, blockCount);
        }
      } else if (rec.type === 'block') {
        if (!isBlockIndex(rec.index) || rec.index > MAX_BLOCK_INDEX) {
          throw bad(rec, `block record has an invalid "index": ${JSON.stringify(rec.index)}`);
        }
        done.addBlock(rec.index, rec.sha256);
      }
    }
  }
  return done;
}
