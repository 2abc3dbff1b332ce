// How keys live in a local store's directory tree: the names that store them, and the walk
// that lists them in key order.
//
// Keys to paths. Any S3 key (1 to 1024 UTF-8 bytes) is stored, and none can name a path outside
// the root. The key is split at "/" into segments; each segment becomes one or more names:
//   - the characters U+0000-U+001F, U+007F, "%" and "\" are written as %XX (hex, upper case);
//     everything else, unicode included, is written as it is;
//   - a segment that is empty, "." or ".." is written "%", "%2E", "%2E%2E";
//   - a segment whose written form exceeds 238 bytes is cut into pieces of at most 238 bytes
//     (between characters, never inside an escape); every piece but the last ends with "%+" and
//     is a directory holding the rest of the segment (file names are limited to 255 bytes).
// So a name without "%" is the key segment itself, and the mapping reverses exactly. Names that
// begin with "%." are never the result of it: they are reserved for this store's own files,
// temporary files ("%.tmp.*") and checksum sidecars ("%.meta.NAME"), and listings skip them.
// Example: key "a/../b c/%x/" is stored as ROOT/a/%2E%2E/b c/%25x/%.
//
// One clash cannot be designed away without giving up plain files: an object "a" and objects
// under "a/" need the same name as a file and as a directory. Such a put fails with an error
// naming both keys (S3 holds both; a store copied from S3 with such keys needs an S3 target).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { errorCode } from './errors';
import { StoreError, compareKeys } from './store';

const RESERVED = '%.';
export const TEMP = '%.tmp.';
export const META = '%.meta.';
const CONTINUES = '%+';
// 238 + "%+" = 240; "%.meta." + 240 = 247: every name this store makes fits in NAME_MAX (255).
const PIECE_BYTES = 238;

function mustEscape(code: number): boolean {
  return code < 0x20 || code === 0x7f || code === 0x25 || code === 0x5c;
}

function escapeChars(text: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    out += mustEscape(code) ? '%' + code.toString(16).toUpperCase().padStart(2, '0') : ch;
  }
  return out;
}

const WHOLE_NAMES: Record<string, string> = { '': '%', '.': '%2E', '..': '%2E%2E' };
const WHOLE_SEGMENTS: Record<string, string> = { '%': '', '%2E': '.', '%2E%2E': '..' };

/** The names (one, or pieces of a long segment) that store one segment of a key. */
export function encodeSegment(segment: string): string[] {
  const pieces: string[] = [];
  let piece = '';
  let bytes = 0;
  for (const ch of segment) {
    const code = ch.codePointAt(0)!;
    const unit = mustEscape(code) ? '%' + code.toString(16).toUpperCase().padStart(2, '0') : ch;
    const unitBytes = code < 0x80 ? unit.length : Buffer.byteLength(unit);
    if (bytes + unitBytes > PIECE_BYTES) {
      pieces.push(piece + CONTINUES);
      piece = '';
      bytes = 0;
    }
    piece += unit;
    bytes += unitBytes;
  }
  pieces.push(WHOLE_NAMES[piece] ?? piece);
  return pieces;
}

/** The path components, relative to the root, that store `key`. */
export function encodeKey(key: string): string[] {
  return key.split('/').flatMap(encodeSegment);
}

/**
 * What a directory entry holds: a fragment of a key, followed by "/" unless the name is a piece
 * that continues; null for this store's own files; undefined for a name this store never writes.
 */
export function decodeName(name: string): { fragment: string; continues: boolean } | null | undefined {
  if (name.startsWith(RESERVED)) return null;
  if (!name.includes('%')) return { fragment: name, continues: false };
  if (name in WHOLE_SEGMENTS) return { fragment: WHOLE_SEGMENTS[name], continues: false };
  const continues = name.endsWith(CONTINUES);
  const body = continues ? name.slice(0, -CONTINUES.length) : name;
  const fragment = body.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  // Only the canonical form is ours: two names must never give one key.
  if (escapeChars(fragment) !== body || fragment === '') return undefined;
  return { fragment, continues };
}

/** The key stored at these path components (relative to the root). */
export function keyOf(components: string[]): string {
  let key = '';
  for (const name of components) {
    const part = decodeName(name);
    if (!part) return components.join('/');
    key += part.fragment + (part.continues ? '' : '/');
  }
  return key.endsWith('/') ? key.slice(0, -1) : key;
}

export interface Found {
  key: string;
  file: string;
  /** Whether the folder had the object's sidecar when it was read. */
  hasMeta: boolean;
}

/**
 * The objects under `dir` in key order. A directory's entries are sorted by the smallest key
 * each can hold (a file: its key; a folder: its key prefix) and merged by their next key: a
 * piece of a long segment can hold keys on both sides of a sibling's, so a plain depth-first
 * walk in sorted order would not do. Only the folders whose keys are due are open at once.
 */
export async function* walkKeys(dir: string, keyPrefix: string, prefix: string, startAfter: string | undefined, fail: (err: unknown) => Error): AsyncGenerator<Found> {
  const entries: { low: string; file: string; folder: boolean; hasMeta?: boolean }[] = [];
  let dirents;
  try {
    dirents = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errorCode(err) === 'ENOENT' && keyPrefix !== '') return; // deleted while listing
    throw fail(err);
  }
  const sidecars = new Set(dirents.filter((d) => d.name.startsWith(META)).map((d) => d.name.slice(META.length)));
  for (const d of dirents) {
    const part = decodeName(d.name);
    if (part === null) continue;
    const file = path.join(dir, d.name);
    const foreign = () => new StoreError(`${file}: not a name this store writes: move it out of the store`, 'permanent');
    if (part === undefined) throw foreign();
    if (d.isDirectory()) {
      const low = keyPrefix + part.fragment + (part.continues ? '' : '/');
      const inPrefix = low.startsWith(prefix) || prefix.startsWith(low);
      const allBefore = startAfter !== undefined && compareKeys(low, startAfter) <= 0 && !startAfter.startsWith(low);
      if (inPrefix && !allBefore) entries.push({ low, file, folder: true });
    } else if (d.isFile()) {
      if (part.continues) throw foreign();
      const key = keyPrefix + part.fragment;
      if (key.startsWith(prefix) && (startAfter === undefined || compareKeys(key, startAfter) > 0)) entries.push({ low: key, file, folder: false, hasMeta: sidecars.has(d.name) });
    } else {
      throw new StoreError(`${file}: not a regular file or a directory: a local store holds only the files it writes`, 'permanent');
    }
  }
  entries.sort((a, b) => compareKeys(a.low, b.low) || Number(a.folder) - Number(b.folder));
  // Usually one source is active (a file, or the folder being read); a linear scan is enough.
  const active: { head: Found; rest?: AsyncIterator<Found> }[] = [];
  let next = 0;
  const smallest = () => active.reduce((m, s, i) => (compareKeys(s.head.key, active[m].head.key) < 0 ? i : m), 0);
  for (;;) {
    while (next < entries.length && (active.length === 0 || compareKeys(entries[next].low, active[smallest()].head.key) <= 0)) {
      const e = entries[next++];
      if (!e.folder) {
        active.push({ head: { key: e.low, file: e.file, hasMeta: e.hasMeta === true } });
        continue;
      }
      const rest = walkKeys(e.file, e.low, prefix, startAfter, fail);
      const first = await rest.next();
      if (!first.done) active.push({ head: first.value, rest });
    }
    if (!active.length) return;
    const i = smallest();
    const source = active[i];
    yield source.head;
    const step = source.rest ? await source.rest.next() : { done: true as const, value: undefined };
    if (step.done) active.splice(i, 1);
    else source.head = step.value;
  }
}
