// Record types of the one stream format (docs/FORMAT.md is the specification).

/** The major version of the format. Readers refuse a stream that declares a higher one. */
export const FORMAT_VERSION = 1;

/** EBS and every block stream use 512 KiB blocks. */
export const BLOCK_SIZE = 524288;

/**
 * The payload travels beside the record under a symbol, so JSON.stringify never sees it and a
 * record can be serialized as it is.
 */
export const PAYLOAD: unique symbol = Symbol('payload');

/** The input line a record was read from, for error messages. */
export const LINE: unique symbol = Symbol('line');

/**
 * The bytes of the input line a record stands for, newline included: set by a decoder asked to
 * pass lines on (DecodeOptions.passLines), for records it checked but did not build. Such a
 * record has only its `type`, and the encoder writes these bytes instead of serializing it.
 */
export const SOURCE: unique symbol = Symbol('source');

/** bytes[start, end): a line inside an input chunk, kept as offsets to spare a view per line. */
export interface LineBytes {
  bytes: Buffer;
  start: number;
  end: number;
}

export interface Rec {
  type: string;
  len?: number;
  [field: string]: unknown;
  [PAYLOAD]?: Buffer;
  [LINE]?: number;
  [SOURCE]?: LineBytes;
}

export interface VolumeRec extends Rec {
  type: 'volume';
  source?: string;
  size?: number;
  blockSize: number;
  blocks?: number;
  parent?: string;
  snapshotId?: string;
}

export interface BlockRec extends Rec {
  type: 'block';
  index: number;
  sha256?: string;
  zero?: boolean;
}

export interface ObjectRec extends Rec {
  type: 'object';
  key: string;
  size?: number;
}

export interface EndRec extends Rec {
  type: 'end';
  records: number;
  bytes: number;
  digest: string;
}

export function isBlock(rec: Rec): rec is BlockRec {
  return rec.type === 'block';
}
export function isVolume(rec: Rec): rec is VolumeRec {
  return rec.type === 'volume';
}
export function isObject(rec: Rec): rec is ObjectRec {
  return rec.type === 'object';
}

/** base64 SHA-256 of 512 KiB of zeros: how EBS and FSP recognise a zero block. */
export const ZERO_BLOCK_SHA256 = 'B4VNL+8pega6gWheZgwzLeNtXRjVRpJ9MNqtbX/aFUE=';
