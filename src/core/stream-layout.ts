// The stream layout: any byte stream cut into numbered objects (stream-chunk) and joined back
// (stream-join). Specified in docs/LAYOUTS.md.
//
// Part keys are NAME/ and a 10-digit part number, so that the store's key order (s3-list) is
// the stream's order; the stream's manifest, NAME/stream.json, sorts after every part and is
// written last (a commit object), so a store that has it has every part it counts.
import { FORMAT_VERSION } from './records';

export const PART_DIGITS = 10;
export const MAX_PARTS = 10 ** PART_DIGITS;
export const MANIFEST_NAME = 'stream.json';

/** The content of NAME/stream.json. */
export interface StreamManifest {
  type: 'stream';
  format: number;
  /** Bytes of the whole stream. */
  size: number;
  /** base64 SHA-256 of the whole stream. */
  sha256: string;
  parts: number;
  /** Bytes of every part but the last, which holds 1 to partSize bytes. */
  partSize: number;
  source?: string;
}

export function partKey(name: string, index: number): string {
  return `${name}/${String(index).padStart(PART_DIGITS, '0')}`;
}

export function manifestKey(name: string): string {
  return `${name}/${MANIFEST_NAME}`;
}

export function manifestOf(fields: Omit<StreamManifest, 'type' | 'format'>): StreamManifest {
  return { type: 'stream', format: FORMAT_VERSION, ...fields };
}

/** What a key of the layout is: a part (with its number) or the manifest, under NAME. */
export type LayoutKey = { name: string; part: number } | { name: string; manifest: true };

export function parseLayoutKey(key: string): LayoutKey | undefined {
  const m = /^(.+)\/(?:([0-9]{10})|stream\.json)$/s.exec(key);
  if (!m) return undefined;
  return m[2] === undefined ? { name: m[1], manifest: true } : { name: m[1], part: Number(m[2]) };
}

/** What is wrong with a manifest's content, or undefined if it is one this reader can take. */
export function manifestProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const m = value as Record<string, unknown>;
  if (m.type !== 'stream') return `"type" is ${JSON.stringify(m.type)}, not "stream"`;
  if (!Number.isSafeInteger(m.format) || (m.format as number) < 1) return `"format" must be a positive integer`;
  if ((m.format as number) > FORMAT_VERSION) return `format ${m.format} is newer than this reader's (${FORMAT_VERSION})`;
  for (const field of ['size', 'parts', 'partSize']) {
    if (!Number.isSafeInteger(m[field]) || (m[field] as number) < 0) return `"${field}" must be a non-negative integer, got ${JSON.stringify(m[field])}`;
  }
  if (typeof m.sha256 !== 'string') return `"sha256" must be a base64 string`;
  return undefined;
}

/** The name a --name flag gives: not empty, no leading or trailing slash. */
export function nameProblem(name: string): string | undefined {
  if (name === '' || name.startsWith('/') || name.endsWith('/')) return `${JSON.stringify(name)} is not a name: give one like "db" or "backups/db", without a slash at either end`;
  return undefined;
}
