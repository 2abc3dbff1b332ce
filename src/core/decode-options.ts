// What a reader of the format can be told, and the limits it keeps by default.
import type { Rec } from './records';
export interface DecodeOptions {
  /** The command name that starts every error message. */
  command: string;
  /** `stdin` or a file name, for error messages. */
  source: string;
  /** Longest line accepted, in bytes (the newline excluded). */
  maxLine?: number;
  /** Largest payload accepted, in bytes. */
  maxPayload?: number;
  /**
   * Accept an input that stops without its trailer, dropping a partial last line or payload: for
   * journals of runs that were killed. The trailer is still checked when it is there.
   */
  allowIncomplete?: boolean;
  /**
   * For a stage that passes records on unchanged and reads nothing but their `type`. A line
   * without a top-level "len" or "format" is checked (as strictly as JSON.parse, and for its
   * string "type": src/core/line-scan.ts) but not built into an object: its record has only
   * `type`, and its bytes under SOURCE, which the encoder writes as they were read. Every other
   * line is parsed as usual.
   */
  passLines?: boolean;
  /**
   * Where a payload spread over several input chunks is put together: a buffer of exactly
   * `length` bytes for `rec`'s payload (payload-pool.ts), or undefined for a new one.
   */
  payloadBuffer?: (length: number, rec: Rec) => Buffer | undefined;
}

export const DEFAULT_MAX_LINE = 1 << 20;
// The largest frame any command writes is a 32 MiB chunk that did not compress; leave room.
export const DEFAULT_MAX_PAYLOAD = 256 << 20;
