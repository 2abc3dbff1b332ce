/**
 * A set of block indices, one bit each: a 16 TiB volume has 33 M blocks, which is 4 MiB here and
 * gigabytes as a Set of numbers. Grows on demand up to `limit` indices.
 */
export class Bitmap {
  private bits = new Uint8Array(0);

  constructor(readonly limit: number) {}

  has(index: number): boolean {
    const byte = index >>> 3;
    return index < this.limit && byte < this.bits.length && (this.bits[byte] & (1 << (index & 7))) !== 0;
  }

  add(index: number): void {
    this.ensure(index);
    this.bits[index >>> 3] |= 1 << (index & 7);
  }

  delete(index: number): void {
    const byte = index >>> 3;
    if (byte < this.bits.length) this.bits[byte] &= ~(1 << (index & 7));
  }

  /** Number of indices in the set. */
  count(): number {
    let n = 0;
    for (let i = 0; i < this.bits.length; i++) {
      let b = this.bits[i];
      while (b) {
        b &= b - 1;
        n++;
      }
    }
    return n;
  }

  private ensure(index: number): void {
    if (index >= this.limit) throw new RangeError(`index ${index} beyond ${this.limit}`);
    const need = (index >>> 3) + 1;
    if (need <= this.bits.length) return;
    const grown = new Uint8Array(Math.min(Math.ceil(this.limit / 8), Math.max(need, this.bits.length * 2, 4096)));
    grown.set(this.bits);
    this.bits = grown;
  }
}
