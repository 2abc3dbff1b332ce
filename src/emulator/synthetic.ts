// Synthetic snapshots: blocks computed on demand from a pattern spec, so a 64 TiB snapshot
// costs neither memory nor disk.
import { createCipheriv, createHash } from 'node:crypto';
import { BLOCK_SIZE, BLOCKS_PER_GIB, MAX_VOLUME_GIB } from './limits';

export const PATTERNS = ['every', 'every2nd', 'every4th', 'every3rd4th', 'random', 'zeros'] as const;
export type Pattern = (typeof PATTERNS)[number];

export interface SyntheticSpec {
  pattern: Pattern;
  seed: number;
  /** Fraction of listed blocks whose data is zeros. */
  zero: number;
  /** Fraction of blocks never written: unlisted, read as zeros. */
  sparse: number;
}

const SECTOR = 512;
const SECTORS_PER_BLOCK = BLOCK_SIZE / SECTOR;

/** A 32-bit mix of (seed, index, salt) into [0, 1): the deterministic choice of sparse and zero blocks. */
function unit(seed: number, index: number, salt: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + salt, 0xc2b2ae35) ^ Math.imul(Math.floor(index / 4294967296), 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

export function isListed(spec: SyntheticSpec, index: number): boolean {
  return spec.sparse <= 0 || unit(spec.seed, index, 0x51ed) >= spec.sparse;
}

export function isZero(spec: SyntheticSpec, index: number): boolean {
  return spec.pattern === 'zeros' || (spec.zero > 0 && unit(spec.seed, index, 0x2e70) < spec.zero);
}

function selects(pattern: Pattern, sector: number): boolean {
  switch (pattern) {
    case 'every':
      return true;
    case 'every2nd':
      return sector % 2 === 0;
    case 'every4th':
      return sector % 4 === 0;
    case 'every3rd4th':
      return sector % 3 === 0 || sector % 4 === 0;
    default:
      return false;
  }
}

/** Writes the pattern of block `index` into `out`. */
export function writePatternBlock(pattern: Pattern, index: number, out: Buffer): void {
  out.fill(0, 0, BLOCK_SIZE);
  const first = index * SECTORS_PER_BLOCK;
  for (let k = 0; k < SECTORS_PER_BLOCK; k++) {
    const sector = first + k;
    out.writeUInt32LE(selects(pattern, sector) ? sector % 4294967296 : 0, k * SECTOR);
  }
}

/** Zeros to encrypt: AES-CTR over a 64 KiB piece at a time runs twice as fast as over a whole block. */
const ZERO_PIECE = Buffer.alloc(64 * 1024);

/** The AES-128 key of a random-data stream ("synthetic:SEED", "unwritten:SNAPSHOT"). */
export function randomKey(keyMaterial: string): Buffer {
  return createHash('sha256').update(keyMaterial).digest().subarray(0, 16);
}

/** Writes the deterministic pseudo-random bytes of block `index` into `out`: AES-128-CTR over zeros. */
export function writeRandomBlock(key: Buffer, index: number, out: Buffer): void {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(Math.floor(index / 4294967296), 8);
  iv.writeUInt32BE(index >>> 0, 12);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  for (let at = 0; at < BLOCK_SIZE; at += ZERO_PIECE.length) cipher.update(ZERO_PIECE).copy(out, at);
}

export function parseFraction(what: string, text: string): number {
  const n = Number(text);
  if (text === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new Error(`${what} must be a fraction between 0 and 1, got ${JSON.stringify(text)}`);
  return n;
}

export interface SyntheticRequest {
  id?: string;
  size: number;
  parent?: string;
  spec: SyntheticSpec;
}

/** Parses `id=snap-...,size=GiB,pattern=...,seed=N,zero=F,sparse=F,parent=snap-...`. */
export function parseSyntheticSpec(text: string): SyntheticRequest {
  const out: SyntheticRequest = { size: 0, spec: { pattern: 'every2nd', seed: 1, zero: 0, sparse: 0 } };
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new Error(`expected key=value, got ${JSON.stringify(part)}`);
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    if (key === 'id') out.id = value;
    else if (key === 'size') out.size = wholeNumber('size', value);
    else if (key === 'pattern') out.spec.pattern = parsePattern(value);
    else if (key === 'seed') out.spec.seed = wholeNumber('seed', value);
    else if (key === 'zero') out.spec.zero = parseFraction('zero', value);
    else if (key === 'sparse') out.spec.sparse = parseFraction('sparse', value);
    else if (key === 'parent') out.parent = value;
    else throw new Error(`unknown key ${JSON.stringify(key)}`);
  }
  if (out.size < 1 || out.size > MAX_VOLUME_GIB) throw new Error(`size must be 1..${MAX_VOLUME_GIB} GiB, got ${out.size}`);
  return out;
}

export function parsePattern(value: string): Pattern {
  if (!(PATTERNS as readonly string[]).includes(value)) throw new Error(`pattern must be one of ${PATTERNS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as Pattern;
}

function wholeNumber(what: string, text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new Error(`${what} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

export function blockCount(volumeGiB: number): number {
  return volumeGiB * BLOCKS_PER_GIB;
}
