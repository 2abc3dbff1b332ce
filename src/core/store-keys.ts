// The keys every store can hold, and the order in which stores list them.
export const MAX_KEY_BYTES = 1024;

/** What is wrong with a key, or undefined if any store can hold it. */
export function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return `a key must be a string, got ${JSON.stringify(key)}`;
  if (key === '') return 'a key must not be empty';
  // Lone surrogates have no UTF-8 form: such a key could not be stored and read back.
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(key)) return `key ${JSON.stringify(key)} is not valid Unicode`;
  const bytes = Buffer.byteLength(key);
  if (bytes > MAX_KEY_BYTES) return `key ${JSON.stringify(key.slice(0, 40) + '...')} is ${bytes} bytes long, the limit is ${MAX_KEY_BYTES}`;
  return undefined;
}

/**
 * Orders keys as S3 lists them: by the UTF-8 bytes, which is code point order. JavaScript's `<`
 * compares UTF-16 units and puts U+10000 and above (surrogate pairs) before U+E000-U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}
