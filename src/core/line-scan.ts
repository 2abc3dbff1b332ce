// A check of one line as strict as JSON.parse, without building the object: for stages that pass
// records on unchanged, where building and re-serializing every record was most of the cost.
//
// The contract is one-sided. `LineScanner.type` returns a string only when JSON.parse would
// accept the line, would return an object, and that object's `type` is that string and it has no
// top-level `len` or `format` (the fields the decoder checks or acts on). For anything else
// (invalid JSON, and also valid lines outside the common shape: escaped keys, an escaped or
// non-ASCII type, deep nesting) it returns undefined and the caller parses the line with
// JSON.parse, which decides and words the error. A line is never accepted here that JSON.parse
// would refuse; test/codec.test.js compares the two on mutated lines.
//
// It reads bytes, not decoded text. That is equivalent: outside strings only ASCII is valid JSON
// (any other byte is refused here and by JSON.parse after decoding), and inside a string every
// character from U+0020 up is allowed, so whatever UTF-8 decoding makes of bytes >= 0x80 (a
// character or U+FFFD) is accepted by both; decoding never merges an ASCII byte into a
// multi-byte sequence, so quotes and backslashes are seen the same way.

const TAB = 0x09;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
const LOWER_U = 0x75;

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');
// The characters that may follow a backslash in a JSON string (u is checked with its 4 digits).
const SIMPLE_ESCAPES = new Set([...'"\\/bfnrt'].map((c) => c.charCodeAt(0)));
// 1 for the bytes that stand for themselves inside a string: all but quote, backslash and controls.
const ORDINARY = new Uint8Array(256).map((_, c) => (c >= SPACE && c !== QUOTE && c !== BACKSLASH ? 1 : 0));

// Containers nested deeper than this are left to JSON.parse (records are flat).
const MAX_DEPTH = 32;

// What a top-level key means to the decoder.
const OTHER_KEY = 0;
const TYPE_KEY = 1;
const CHECKED_KEY = 2; // "len" or "format": the decoder needs their values, so parse the line

export class LineScanner {
  // The container at each depth: true for an object, false for an array.
  private readonly inObject: boolean[] = new Array<boolean>(MAX_DEPTH).fill(false);
  // Set by string(): whether the string just read had an escape.
  private escaped = false;
  // The last type read, reused while lines keep the same one (most streams have one or two).
  private typeBytes = Buffer.alloc(0);
  private typeText = '';

  /**
   * The `type` of the record on bytes[start, end) (the line without its newline), or undefined
   * when the line must be left to JSON.parse: see the contract at the top of this file.
   */
  type(b: Buffer, start: number, end: number): string | undefined {
    const inObject = this.inObject;
    let i = space(b, start, end);
    if (i >= end || b[i] !== OPEN_OBJECT) return undefined;
    inObject[0] = true;
    let depth = 1;
    i++;
    let type: string | undefined;
    // Each turn reads one member of an object or one element of an array, then what follows it.
    for (;;) {
      i = space(b, i, end);
      if (i >= end) return undefined;
      let key = OTHER_KEY;
      if (inObject[depth - 1]) {
        if (b[i] !== QUOTE) return undefined;
        const keyStart = i + 1;
        i = this.string(b, i, end);
        if (i < 0) return undefined;
        if (depth === 1) {
          if (this.escaped) return undefined;
          key = topLevelKey(b, keyStart, i - 1);
          if (key === CHECKED_KEY) return undefined;
        }
        i = space(b, i, end);
        if (i >= end || b[i] !== COLON) return undefined;
        i = space(b, i + 1, end);
        if (i >= end) return undefined;
      }
      const c = b[i];
      if (c === QUOTE) {
        const valueStart = i + 1;
        i = this.string(b, i, end);
        if (i < 0) return undefined;
        if (key === TYPE_KEY) {
          // An empty, escaped or non-ASCII type goes to JSON.parse, which words the error or decodes it.
          if (this.escaped || i - 1 === valueStart) return undefined;
          type = this.text(b, valueStart, i - 1);
          if (type === undefined) return undefined;
        }
      } else {
        if (key === TYPE_KEY) return undefined;
        if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
          const close = c === OPEN_OBJECT ? CLOSE_OBJECT : CLOSE_ARRAY;
          const next = space(b, i + 1, end);
          if (next < end && b[next] === close) {
            i = next + 1; // an empty container is a whole value
          } else {
            if (depth === MAX_DEPTH) return undefined;
            inObject[depth++] = c === OPEN_OBJECT;
            i++;
            continue;
          }
        } else if (c === 0x74) {
          i = literal(b, i, end, TRUE);
        } else if (c === 0x66) {
          i = literal(b, i, end, FALSE);
        } else if (c === 0x6e) {
          i = literal(b, i, end, NULL);
        } else {
          i = number(b, i, end);
        }
        if (i < 0) return undefined;
      }
      // After a value: a comma, or the ends of containers.
      for (;;) {
        i = space(b, i, end);
        if (i >= end) return undefined;
        if (b[i] === COMMA) {
          i++;
          break;
        }
        if (b[i] !== (inObject[depth - 1] ? CLOSE_OBJECT : CLOSE_ARRAY)) return undefined;
        i++;
        if (--depth === 0) return space(b, i, end) === end ? type : undefined;
      }
    }
  }

  /** Reads the string whose opening quote is at i; returns the position after its closing quote, or -1. */
  private string(b: Buffer, i: number, end: number): number {
    let escaped = false;
    i++;
    for (;;) {
      while (i < end && ORDINARY[b[i]] === 1) i++;
      if (i >= end) return -1;
      const c = b[i];
      if (c === QUOTE) break;
      if (c !== BACKSLASH) return -1; // a control character
      escaped = true;
      if (i + 1 >= end) return -1;
      const e = b[i + 1];
      if (e === LOWER_U) {
        if (i + 5 >= end || !hex(b[i + 2]) || !hex(b[i + 3]) || !hex(b[i + 4]) || !hex(b[i + 5])) return -1;
        i += 6;
      } else if (SIMPLE_ESCAPES.has(e)) {
        i += 2;
      } else {
        return -1;
      }
    }
    this.escaped = escaped;
    return i + 1;
  }

  /** ASCII bytes as a string, reusing the last one when the bytes are the same; undefined if not ASCII. */
  private text(b: Buffer, start: number, end: number): string | undefined {
    const cached = this.typeBytes;
    const length = end - start;
    if (length === cached.length) {
      let same = true;
      for (let k = 0; k < length; k++) {
        if (b[start + k] !== cached[k]) {
          same = false;
          break;
        }
      }
      if (same) return this.typeText;
    }
    for (let k = start; k < end; k++) if (b[k] >= 0x80) return undefined;
    this.typeBytes = Buffer.from(b.subarray(start, end));
    this.typeText = b.toString('latin1', start, end);
    return this.typeText;
  }
}

function space(b: Buffer, i: number, end: number): number {
  while (i < end) {
    const c = b[i];
    if (c > SPACE || (c !== SPACE && c !== TAB && c !== CR)) break;
    i++;
  }
  return i;
}

function topLevelKey(b: Buffer, start: number, end: number): number {
  const length = end - start;
  if (length === 4 && b[start] === 0x74 && b[start + 1] === 0x79 && b[start + 2] === 0x70 && b[start + 3] === 0x65) return TYPE_KEY;
  if (length === 3 && b[start] === 0x6c && b[start + 1] === 0x65 && b[start + 2] === 0x6e) return CHECKED_KEY;
  if (length === 6 && b[start] === 0x66 && b[start + 1] === 0x6f && b[start + 2] === 0x72 && b[start + 3] === 0x6d && b[start + 4] === 0x61 && b[start + 5] === 0x74) return CHECKED_KEY;
  return OTHER_KEY;
}

function literal(b: Buffer, i: number, end: number, word: Buffer): number {
  if (i + word.length > end) return -1;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
}

/** A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? ; returns the position after it, or -1. */
function number(b: Buffer, i: number, end: number): number {
  if (b[i] === MINUS) i++;
  if (i >= end) return -1;
  if (b[i] === ZERO) i++;
  else if (b[i] > ZERO && b[i] <= NINE) i = digits(b, i, end);
  else return -1;
  if (i < end && b[i] === DOT) {
    const first = i + 1;
    i = digits(b, first, end);
    if (i === first) return -1;
  }
  if (i < end && (b[i] === LOWER_E || b[i] === UPPER_E)) {
    i++;
    if (i < end && (b[i] === PLUS || b[i] === MINUS)) i++;
    const first = i;
    i = digits(b, first, end);
    if (i === first) return -1;
  }
  return i;
}

function digits(b: Buffer, i: number, end: number): number {
  while (i < end && b[i] >= ZERO && b[i] <= NINE) i++;
  return i;
}

function hex(c: number): boolean {
  return (c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}
