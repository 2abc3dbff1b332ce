// Object key layouts of compressed block chunks (docs/LAYOUTS.md is the specification).
//
// Both layouts cut a volume the same way: a chunk is a run of at most 64 consecutive listed
// blocks, and a new chunk starts at every gap in the indices and at every index divisible by
// 64. Boundaries depend only on which blocks are listed, so a rerun makes the same chunks.
import { BLOCK_SIZE, FORMAT_VERSION, type VolumeRec } from './records';

export const CHUNK_BLOCKS = 64;
export const GIB = 2 ** 30;

export type LayoutName = 'default' | 'fsp';

export function layoutName(value: string | undefined): LayoutName {
  if (value === undefined || value === 'default' || value === 'sluice') return 'default';
  if (value === 'fsp') return 'fsp';
  throw new Error(`unknown layout ${JSON.stringify(value)} (expected "default" or "fsp")`);
}

/** Does block `index` start a new chunk, given the previous listed index of the chunk? */
export function startsChunk(index: number, previous: number | undefined): boolean {
  return previous === undefined || index !== previous + 1 || index % CHUNK_BLOCKS === 0;
}

export function toBase64Url(b64: string): string {
  return b64.replace(/\+/g, '-').replace(/\//g, '_');
}

export function fromBase64Url(b64url: string): string {
  return b64url.replace(/-/g, '+').replace(/_/g, '/');
}

/** A chunk as named by a key. */
export interface ChunkKey {
  firstBlock: number;
  blockCount: number;
  /**
   * base64 (standard alphabet, padded) checksum of the chunk: the default layout's
   * blocksSha256 (SHA-256 of the blocks' SHA-256 digests), FSP's SHA-256 of the raw chunk.
   */
  checksum: string;
}

// ---- the default layout ----------------------------------------------------------------

export const DEFAULT_LAYOUT_ID = 'sluice-zstd';
export const DEFAULT_LAYOUT_VERSION = 1;
export const VOLUME_KEY = 'volume.json';

const INDEX_DIGITS = 10;
const DEFAULT_CHUNK = /^(.*?)zstd\/([0-9]{10})-([1-9][0-9]?)-([A-Za-z0-9_-]{43})\.zst$/;
const DEFAULT_VOLUME = /^(.*?)volume\.json$/;

export function defaultChunkKey(chunk: ChunkKey): string {
  const first = String(chunk.firstBlock).padStart(INDEX_DIGITS, '0');
  return `zstd/${first}-${chunk.blockCount}-${toBase64Url(chunk.checksum).replace(/=+$/, '')}.zst`;
}

export type DefaultKey = { kind: 'volume'; prefix: string } | ({ kind: 'chunk'; prefix: string } & ChunkKey);

/** Parses a key of the default layout (possibly below a common prefix), or returns null. */
export function parseDefaultKey(key: string): DefaultKey | null {
  const vol = DEFAULT_VOLUME.exec(key);
  if (vol && (vol[1] === '' || vol[1].endsWith('/'))) return { kind: 'volume', prefix: vol[1] };
  const m = DEFAULT_CHUNK.exec(key);
  if (!m || (m[1] !== '' && !m[1].endsWith('/'))) return null;
  const blockCount = Number(m[3]);
  if (blockCount > CHUNK_BLOCKS) return null;
  return { kind: 'chunk', prefix: m[1], firstBlock: Number(m[2]), blockCount, checksum: fromBase64Url(m[4]) + '=' };
}

/** What volume.json counts besides the header: the chunk objects and the blocks in them. */
export interface VolumeTotals {
  chunks: number;
  dataBlocks: number;
}

const DOC_ONLY = ['layout', 'layoutVersion', 'chunks', 'dataBlocks'];

/** The body of volume.json: the layout, the volume header's fields, and the totals. */
export function volumeDocument(header: VolumeRec, totals: VolumeTotals): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(header)) {
    if (k !== 'type' && k !== 'format' && k !== 'len' && !DOC_ONLY.includes(k)) fields[k] = v;
  }
  return { layout: DEFAULT_LAYOUT_ID, layoutVersion: DEFAULT_LAYOUT_VERSION, ...fields, ...totals };
}

/** Reads volume.json back into a volume header and its totals; throws a message on anything wrong. */
export function parseVolumeDocument(body: Buffer): { header: VolumeRec; totals: VolumeTotals } {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    throw new Error('volume.json is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('volume.json is not a JSON object');
  if (doc.layout !== DEFAULT_LAYOUT_ID) throw new Error(`volume.json names layout ${JSON.stringify(doc.layout)}, expected ${JSON.stringify(DEFAULT_LAYOUT_ID)}`);
  const version = doc.layoutVersion;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) throw new Error('volume.json has no valid "layoutVersion"');
  if (version > DEFAULT_LAYOUT_VERSION) throw new Error(`volume.json is layout version ${version}, newer than this reader (${DEFAULT_LAYOUT_VERSION})`);
  if (doc.blockSize !== BLOCK_SIZE) throw new Error(`volume.json gives blockSize ${JSON.stringify(doc.blockSize)}, expected ${BLOCK_SIZE}`);
  for (const name of ['size', 'blocks', 'chunks', 'dataBlocks']) {
    const v = doc[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`volume.json has no valid ${JSON.stringify(name)}`);
  }
  if (doc.blocks !== Math.ceil((doc.size as number) / BLOCK_SIZE)) throw new Error(`volume.json: ${doc.blocks} blocks do not make ${doc.size} bytes`);
  const header: VolumeRec = { type: 'volume', format: FORMAT_VERSION, blockSize: BLOCK_SIZE };
  for (const [k, v] of Object.entries(doc)) if (!DOC_ONLY.includes(k)) header[k] = v;
  header.type = 'volume';
  header.format = FORMAT_VERSION;
  return { header, totals: { chunks: doc.chunks as number, dataBlocks: doc.dataBlocks as number } };
}

// ---- the Flexible Snapshot Proxy layout (movetos3 / getfroms3) -----------------------------

const FSP_CHUNK = /^([0-9]+)\.([A-Za-z0-9_-]{43}=)\.([1-9][0-9]?)\.zstd$/;
const FSP_PREFIX = /^(.+)\.([0-9]+)$/;

export function gibOf(size: number): number {
  return Math.ceil(size / GIB);
}

/** `{snapshotId}.{GiB}`: the folder FSP writes a snapshot's objects to. */
export function fspPrefix(snapshotId: string, size: number): string {
  return `${snapshotId}.${gibOf(size)}`;
}

/** `{firstBlock}.{urlsafe base64 of the raw SHA-256, padded}.{blockCount}.zstd`, below the prefix. */
export function fspChunkName(chunk: ChunkKey): string {
  return `${chunk.firstBlock}.${toBase64Url(chunk.checksum)}.${chunk.blockCount}.zstd`;
}

export interface FspKey extends ChunkKey {
  /** The folder part of the key (`snap-....8`), or '' when the key has none. */
  folder: string;
  /** The number as written in the key, which orders a store listing. */
  firstText: string;
}

export function parseFspKey(key: string): FspKey | null {
  const slash = key.lastIndexOf('/');
  const name = key.slice(slash + 1);
  const m = FSP_CHUNK.exec(name);
  if (!m) return null;
  if (m[1].length > 1 && m[1].startsWith('0')) return null;
  const blockCount = Number(m[3]);
  if (blockCount > CHUNK_BLOCKS) return null;
  return { folder: slash < 0 ? '' : key.slice(0, slash), firstBlock: Number(m[1]), firstText: m[1], blockCount, checksum: fromBase64Url(m[2]) };
}

/** `snap-0123.8` (the last segment of a folder or URL) -> its snapshot id and size in GiB. */
export function parseFspFolder(folder: string): { snapshotId: string; gib: number } | null {
  const segment = folder.replace(/\/+$/, '').split('/').pop() ?? '';
  const m = FSP_PREFIX.exec(segment);
  if (!m) return null;
  return { snapshotId: m[1], gib: Number(m[2]) };
}
